"""The one error a translator raises: the request holds something the target format cannot carry.

Translators never drop user content silently; when they cannot map it they raise this, and the server
answers the client with a 400 whose message names what was unsupported and where.
"""

from __future__ import annotations


class TranslationError(ValueError):
    """Unsupported content in a request; `str(err)` is the user-facing reason, `where` its JSON path."""

    def __init__(self, message: str, where: str = "") -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
