"""The raw text of a bridged custom tool call, decoded from its JSON arguments as the fragments stream in.

A Responses client's custom (freeform) tool, such as Codex's apply_patch, reaches a chat provider as a
function with one string argument, `{"input": "..."}`; the client expects the raw text back as
custom_tool_call_input deltas while the model writes it. This scanner turns argument fragments into those
deltas without waiting for the whole JSON, in one pass over each fragment.
"""

from __future__ import annotations

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_START, _KEY_OPEN, _KEY, _COLON, _VALUE_OPEN, _VALUE, _END, _FAIL = range(8)


class CustomInputStream:
    """Decodes the `input` string of `{"input": "..."}` arguments as the fragments arrive.

    A bridged custom tool (apply_patch) streams its raw text as custom_tool_call_input deltas; the model
    writes it JSON-escaped inside the function arguments. Anything else (other keys first, raw text)
    stops the streamer, and the done event then carries the input recovered from the whole arguments.
    """

    __slots__ = ("_state", "_key", "_hold", "_sent")

    def __init__(self) -> None:
        self._state = _START
        self._key: list[str] = []
        self._hold = ""  # an escape sequence split across fragments
        self._sent: list[str] = []

    @property
    def sent(self) -> str:
        return "".join(self._sent)

    def feed(self, fragment: str) -> str:
        if self._state >= _END:
            return ""
        if self._hold:
            fragment, self._hold = self._hold + fragment, ""
        out: list[str] = []
        i, n = 0, len(fragment)
        while i < n and self._state < _END:
            if self._state == _VALUE:
                i = self._value(fragment, i, out)
                continue
            ch = fragment[i]
            i += 1
            state = self._state
            if state == _KEY:
                if ch == '"':
                    self._state = _COLON if "".join(self._key) == "input" else _FAIL
                elif ch == "\\":
                    self._state = _FAIL
                else:
                    self._key.append(ch)
            elif ch in " \t\r\n":
                continue
            elif state == _START:
                self._state = _KEY_OPEN if ch == "{" else _FAIL
            elif state == _KEY_OPEN:
                self._state = _KEY if ch == '"' else _FAIL
            elif state == _COLON:
                self._state = _VALUE_OPEN if ch == ":" else _FAIL
            else:  # _VALUE_OPEN
                self._state = _VALUE if ch == '"' else _FAIL
        text = "".join(out)
        if text:
            self._sent.append(text)
        return text

    def _value(self, s: str, i: int, out: list[str]) -> int:
        """Copy a run of the JSON string value; returns where scanning continues."""
        quote = s.find('"', i)
        slash = s.find("\\", i)
        stop = quote if slash < 0 else slash if quote < 0 else min(quote, slash)
        if stop < 0:
            out.append(s[i:])
            return len(s)
        if stop > i:
            out.append(s[i:stop])
        if stop == quote:
            self._state = _END
            return stop + 1
        n = len(s)
        if stop + 1 >= n:
            self._hold = s[stop:]
            return n
        code = s[stop + 1]
        if code != "u":
            char = _ESCAPES.get(code)
            if char is None:
                self._state = _FAIL
                return n
            out.append(char)
            return stop + 2
        if stop + 6 > n:
            self._hold = s[stop:]
            return n
        try:
            point = int(s[stop + 2 : stop + 6], 16)
        except ValueError:
            self._state = _FAIL
            return n
        if 0xD800 <= point < 0xDC00:  # a surrogate pair spans two escapes
            if stop + 12 > n:
                self._hold = s[stop:]
                return n
            if s[stop + 6 : stop + 8] != "\\u":
                self._state = _FAIL
                return n
            try:
                low = int(s[stop + 8 : stop + 12], 16)
            except ValueError:
                self._state = _FAIL
                return n
            out.append(chr(0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00)))
            return stop + 12
        out.append(chr(point))
        return stop + 6
