"""Every failure the window shows, in plain words: what went wrong and what to do, never a library's repr.

Pages call `plain_error("Not saved", exc)` wherever a job fails. Downshift's own errors (ConfigError,
SecretStoreError, ProviderCheckError, ...) are already phrased for the user and pass through; exceptions
from libraries (httpx, keyring, SQLAlchemy, the OS, the JSON and TOML parsers) are turned into a sentence
here. The exception itself, with its traceback, goes to the log, where a bug report can quote it.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import tomllib
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Downshift's own exception classes, by name: their messages are written for the user (see each class's
# docstring). Matched by name so this module imports none of them (some pull in the proxy or httpx).
OWN_ERRORS = frozenset(
    {
        "ConfigError",
        "SecretStoreError",
        "ProviderCheckError",
        "ConnectError",
        "DatabaseOpenError",
        "AutostartError",
        "MemberError",
        "DirectEnvError",
        "RoutingError",
        "TranslationError",
    }
)


@dataclass(frozen=True)
class Explanation:
    """Why it failed (a clause) and what the user can do about it (a sentence, may be empty)."""

    reason: str
    advice: str = ""

    def sentence(self, what: str) -> str:
        text = f"{what}: {self.reason}" if what else self.reason[:1].upper() + self.reason[1:]
        text = text.rstrip(".") + "."
        return f"{text} {self.advice}" if self.advice else text


def _own(exc: BaseException) -> bool:
    """An exception raised by Downshift's code with a message meant for the user."""
    cls = type(exc)
    if cls.__module__.startswith("app.") and any(c.__name__ in OWN_ERRORS for c in cls.__mro__):
        return True
    # a plain ValueError raised by Downshift itself (validation: "choose a model for cheapco")
    if cls in (ValueError, LookupError, KeyError) and exc.args and isinstance(exc.args[0], str):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("app.")
    return False


def _os_error(exc: OSError) -> Explanation:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if isinstance(exc, ConnectionRefusedError):
        return Explanation(
            "nothing answers at that address (connection refused)",
            "Check the address and port, and that the server is running.",
        )
    if isinstance(exc, TimeoutError):
        return Explanation("it did not answer in time", "Check the network, then try again.")
    if isinstance(exc, FileNotFoundError):
        return Explanation(f"the file or folder does not exist{where}", "Check the path.")
    if isinstance(exc, PermissionError):
        return Explanation(f"Downshift is not allowed to use this file{where}", "Check its permissions.")
    if exc.errno == errno.EADDRINUSE:
        return Explanation("that port is already in use by another program", "Choose another port.")
    if exc.errno == errno.ENOSPC:
        return Explanation(f"the disk is full{where}", "Free some space, then try again.")
    if isinstance(exc, ConnectionError):
        return Explanation("the connection was lost", "Try again; if it keeps failing, check the server.")
    reason = (exc.strerror or "the system refused the operation").rstrip(".")
    return Explanation(f"{reason[:1].lower()}{reason[1:]}{where}", "")


def _httpx(exc: BaseException) -> Explanation | None:
    if "httpx" not in sys.modules:  # not loaded: the exception cannot be one of its
        return None
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return Explanation(
            "could not connect to the server", "Check the base URL, and that the server is running."
        )
    if isinstance(exc, httpx.TimeoutException):
        return Explanation("the server did not answer in time", "Try again later, or raise the timeout.")
    if isinstance(exc, httpx.HTTPStatusError):
        return Explanation(f"the server answered HTTP {exc.response.status_code}", "")
    if isinstance(exc, httpx.HTTPError):
        return Explanation("the request to the server failed", "Check the base URL and the network.")
    return None


def _keyring(exc: BaseException) -> Explanation | None:
    if "keyring" not in sys.modules:
        return None
    from keyring.errors import KeyringError, KeyringLocked

    if isinstance(exc, KeyringLocked):
        return Explanation("the system keyring is locked", "Unlock it (log in to it), then try again.")
    if isinstance(exc, KeyringError):
        return Explanation(
            "the system keyring refused the request",
            "Check that it is unlocked and running, then try again.",
        )
    return None


def _sqlalchemy(exc: BaseException) -> Explanation | None:
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    if isinstance(exc, OperationalError) and "locked" in str(exc.orig):
        return Explanation("the call log is busy (another program holds it)", "Try again in a moment.")
    if isinstance(exc, SQLAlchemyError):
        return Explanation(
            "the call log database could not be read or written",
            "Check the disk and the database file; the log has the details.",
        )
    return None


def _own_explained(exc: BaseException) -> Explanation:
    """Downshift's message, with the library error it wraps (`raise ... from exc`, its text often tacked on
    at the end: "Could not store 'x' in the keyring: <the backend's words>") said plainly instead."""
    text, cause = str(exc).strip() or "it failed", exc.__cause__
    if cause is None or _own(cause):
        return Explanation(text, "")
    inner = explain(cause)
    raw = str(cause).strip()
    if raw and text.endswith(raw):
        text = text[: -len(raw)].rstrip(" :")
    return Explanation(f"{text}: {inner.reason}", inner.advice)


def explain(exc: BaseException) -> Explanation:
    """The plain-words reason for `exc` and what to do. Never the exception's repr."""
    if _own(exc):
        return _own_explained(exc)
    for special in (_httpx, _keyring, _sqlalchemy):
        found = special(exc)
        if found is not None:
            return found
    if isinstance(exc, json.JSONDecodeError):
        return Explanation(
            f"the file is not valid JSON (line {exc.lineno}, column {exc.colno})", "Fix or replace the file."
        )
    if isinstance(exc, tomllib.TOMLDecodeError):
        return Explanation("the file is not valid TOML", "Fix the line the log names, or replace the file.")
    if isinstance(exc, UnicodeDecodeError):
        return Explanation("the file is not text (not UTF-8)", "Choose a text file.")
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, MemoryError):
        return Explanation("the computer ran out of memory", "Close some programs, then try again.")
    return Explanation("something unexpected went wrong", "The log has the details; please report it.")


def plain_error(what: str, exc: BaseException) -> str:
    """`What: why. What to do.` for a message line, dialog or tooltip; the exception goes to the log."""
    log.warning("%s: %s", what or "error", exc, exc_info=(type(exc), exc, exc.__traceback__))
    return explain(exc).sentence(what)
