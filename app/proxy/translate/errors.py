"""The error a translator raises; error bodies between the APIs live in app.proxy.errors (re-exported here).

Translators never drop user content silently; when they cannot map it they raise `TranslationError`, and
the server answers the client with a 400 whose message names what was unsupported and where.
"""

from __future__ import annotations

from app.proxy.errors import (
    ANTHROPIC_ERROR_TYPES,
    anthropic_error_to_openai,
    anthropic_error_type,
    error_message,
    error_type,
    openai_error,
    openai_error_to_anthropic,
    openai_stream_error_to_anthropic,
)

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "TranslationError",
    "anthropic_error_to_openai",
    "anthropic_error_type",
    "error_message",
    "error_type",
    "openai_error",
    "openai_error_to_anthropic",
    "openai_stream_error_to_anthropic",
]


class TranslationError(ValueError):
    """Unsupported content in a request; `str(err)` is the user-facing reason, `where` its JSON path."""

    def __init__(self, message: str, where: str = "") -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def within(self, outer: str) -> TranslationError:
        """The same error located inside `outer` (paths are built only when something fails)."""
        if not self.where:
            return TranslationError(self.message, outer)
        joiner = "" if self.where.startswith("[") else "."
        return TranslationError(self.message, f"{outer}{joiner}{self.where}")
