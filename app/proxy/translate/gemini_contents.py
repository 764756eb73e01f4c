"""Gemini contents -> chat messages: systemInstruction, user and model turns, function calls and responses.

A "model" content becomes an assistant message (text parts joined, `thought` parts as the target's
reasoning field where it wants reasoning back, functionCall parts as tool_calls); any other role a user
message (text, inlineData images / PDF / audio / text, fileData with an http(s) image URL) with its
functionResponse parts first, as role "tool" messages.

Tool-call ids: Gemini CLI echoes the id we gave a functionCall with the tool name and `__` in front
(`write_file__call_abc`); that prefix is taken off again, so the provider sees its own ids and the log
can attribute failed results. A functionCall or functionResponse without an id is paired by name and
order with a deterministic id (`call_<turn>_<n>`), so the same history always translates the same way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from app.core.toolcheck import gemini_call_id as client_call_id
from app.proxy.profiles import Profile
from app.proxy.translate.anthropic_response import (
    TOOL_ERROR_PREFIX,
    encode_tool_input,
    openai_tool_id,
    upstream_tool_name,
)
from app.proxy.translate.errors import TranslationError
from app.proxy.translate.pivot import TOOL_IMAGES_NOTE, collapse_text

_AUDIO = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}
_CONTENT_KEYS = ("text", "functionCall", "functionResponse", "inlineData", "fileData", "executableCode",
                 "codeExecutionResult", "toolCall", "toolResponse")  # fmt: skip


def contents_to_messages(body: Mapping[str, Any], profile: Profile) -> list[dict[str, Any]]:
    """systemInstruction and contents as chat messages for the `profile` target."""
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if system:
        try:
            text = _system_text(system)
        except TranslationError as exc:
            raise exc.within("systemInstruction") from None
        if text:
            messages.append({"role": "system", "content": text})
    builder = _Messages(profile)
    contents = body.get("contents")
    for i, content in enumerate(contents if isinstance(contents, list) else ()):
        try:
            builder.add(content, i)
        except TranslationError as exc:
            raise exc.within(f"contents[{i}]") from None
    return messages + builder.messages


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, Mapping):
        raise TranslationError("systemInstruction must be a Content object")
    texts = []
    for j, part in enumerate(system.get("parts") or ()):
        if not isinstance(part, Mapping) or not isinstance(part.get("text"), str):
            raise TranslationError("only text parts are supported in systemInstruction", f"parts[{j}]")
        texts.append(part["text"])
    return "\n\n".join(texts)


class _Messages:
    """Chat messages from Gemini contents, keeping track of the tool calls still waiting for a response."""

    __slots__ = ("profile", "messages", "pending")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.messages: list[dict[str, Any]] = []
        # (client name, chat id, whether the client gave the id) of the last model turn's unanswered calls
        self.pending: list[tuple[str, str, bool]] = []

    def add(self, content: Any, turn: int) -> None:
        if not isinstance(content, Mapping):
            raise TranslationError("every content must be an object with 'parts'")
        parts = content.get("parts")
        if parts is None:
            parts = []
        elif not isinstance(parts, list):
            raise TranslationError("'parts' must be a list of Part objects")
        if content.get("role") == "model":
            self._model(parts, turn)
        else:  # "user", "function" (older clients' function results), or none (the API's default: user)
            self._user(parts, turn)

    def _model(self, parts: list[Any], turn: int) -> None:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        self.pending = []
        for j, part in enumerate(parts):
            if not isinstance(part, Mapping):
                raise TranslationError("every part must be an object", f"parts[{j}]")
            call = part.get("functionCall")
            if isinstance(call, Mapping):
                calls.append(self._call(call, turn, len(calls), j))
            elif isinstance(part.get("text"), str):
                (thoughts if part.get("thought") is True else texts).append(part["text"])
            elif not _ignorable(part):
                raise TranslationError(f"model part {_kind(part)!r} is not supported", f"parts[{j}]")
        text = "".join(texts)
        if not text and not calls:
            return  # an empty model turn (or thoughts alone) carries nothing a chat target can take
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        field_name = self.profile.reasoning_field
        if field_name and (thoughts or (calls and self.profile.reasoning_echo)):
            # DeepSeek rejects a tool-call turn without it, even when there was no reasoning text.
            message[field_name] = "".join(thoughts)
        self.messages.append(message)

    def _call(self, call: Mapping[str, Any], turn: int, n: int, j: int) -> dict[str, Any]:
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("functionCall needs a name", f"parts[{j}].functionCall")
        chat_id = self._chat_id(call.get("id"), name, f"call_{turn}_{n}")
        self.pending.append((name, chat_id, bool(client_call_id(call.get("id"), name))))
        args = call.get("args")
        return {
            "id": chat_id,
            "type": "function",
            "function": {
                "name": upstream_tool_name(name, self.profile.tool_name_max),
                "arguments": encode_tool_input(args if args is not None else {}),
            },
        }

    def _chat_id(self, given: Any, name: str, fallback: str) -> str:
        call_id = client_call_id(given, name) or fallback
        if self.profile.tool_call_id_len:
            return openai_tool_id(call_id, self.profile.tool_call_id_len)
        return call_id

    def _user(self, parts: list[Any], turn: int) -> None:
        content: list[dict[str, Any]] = []
        images: list[dict[str, Any]] = []
        answered = 0
        for j, part in enumerate(parts):
            if not isinstance(part, Mapping):
                raise TranslationError("every part must be an object", f"parts[{j}]")
            response = part.get("functionResponse")
            try:
                if isinstance(response, Mapping):
                    self.messages.append(self._result(response, turn, answered, images))
                    answered += 1
                elif isinstance(part.get("text"), str):
                    if part.get("thought") is not True:
                        content.append({"type": "text", "text": part["text"]})
                elif part.get("inlineData") is not None:
                    content.append(_inline(part["inlineData"], self.profile))
                elif part.get("fileData") is not None:
                    content.append(_file(part["fileData"], self.profile))
                elif not _ignorable(part):
                    raise TranslationError(
                        f"part {_kind(part)!r} is not supported by a chat-completions target"
                    )
            except TranslationError as exc:
                raise exc.within(f"parts[{j}]") from None
        if images:
            content[:0] = [{"type": "text", "text": TOOL_IMAGES_NOTE}, *images]
        if content:
            self.messages.append({"role": "user", "content": collapse_text(content)})

    def _result(
        self, response: Mapping[str, Any], turn: int, n: int, images: list[dict[str, Any]]
    ) -> dict[str, Any]:
        name = response.get("name")
        name = name if isinstance(name, str) else ""
        given = client_call_id(response.get("id"), name)
        chat_id = self._answered(self._chat_id(given, name, "") if given else "", name)
        if chat_id is None:
            chat_id = self._chat_id(given, name, f"call_{turn}_{n}")
        text = function_response_text(response)
        for k, part in enumerate(response.get("parts") or ()):  # multimodal function responses
            data = part.get("inlineData") if isinstance(part, Mapping) else None
            if data is None:
                raise TranslationError(
                    "functionResponse parts other than inlineData are not supported",
                    f"functionResponse.parts[{k}]",
                )
            images.append(_inline(data, self.profile))
        return {"role": "tool", "tool_call_id": chat_id, "content": text}

    def _answered(self, wanted: str, name: str) -> str | None:
        """The pending call a functionResponse answers: the one with its id, else the first call of that
        name that came without an id (a client makes one up for those)."""
        pending = self.pending
        for k, (_, chat_id, _given) in enumerate(pending):
            if wanted and chat_id == wanted:
                del pending[k]
                return chat_id
        for k, (pending_name, chat_id, given) in enumerate(pending):
            if pending_name == name and not given:
                del pending[k]
                return chat_id
        return None


def function_response_text(response: Mapping[str, Any]) -> str:
    """The text a chat target gets for a functionResponse: `output` (or the whole object) as text; an
    `error` key (how Gemini clients report a failed call) as TOOL_ERROR_PREFIX + its text."""
    payload = response.get("response")
    if not isinstance(payload, Mapping):
        return "" if payload is None else _as_text(payload)
    if "error" in payload and payload["error"] not in (None, ""):
        return TOOL_ERROR_PREFIX + _as_text(payload["error"])
    if "output" in payload:
        return _as_text(payload["output"])
    if "content" in payload and len(payload) == 1:
        return _as_text(payload["content"])
    return _as_text(payload) if payload else ""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, Mapping) and isinstance(v.get("text"), str) for v in value)
    ):
        return "\n".join(v["text"] for v in value)
    return orjson.dumps(value).decode()


def _ignorable(part: Mapping[str, Any]) -> bool:
    """A part that carries nothing for a chat target: only metadata (thoughtSignature, videoMetadata...)."""
    return not any(key in part for key in _CONTENT_KEYS)


def _kind(part: Mapping[str, Any]) -> str:
    return next((key for key in part if key not in ("thought", "thoughtSignature")), "empty")


def _inline(data: Any, profile: Profile) -> dict[str, Any]:
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), str):
        raise TranslationError("inlineData needs mimeType and base64 data")
    mime = str(data.get("mimeType") or "").lower()
    payload = data["data"]
    if mime.startswith("image/"):
        if not profile.images:
            raise TranslationError(f"images are not supported by {profile.kind} targets")
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{payload}"}}
    if mime == "application/pdf":
        if not profile.pdf:
            raise TranslationError(f"PDF documents are not supported by {profile.kind} targets")
        file = {"file_data": f"data:{mime};base64,{payload}"}
        if data.get("displayName"):
            file["filename"] = str(data["displayName"])
        return {"type": "file", "file": file}
    if mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": payload, "format": _AUDIO[mime]}}
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        try:
            return {
                "type": "text",
                "text": base64.b64decode(payload, validate=False).decode("utf-8", "replace"),
            }
        except (binascii.Error, ValueError):
            raise TranslationError("inlineData is not valid base64") from None
    raise TranslationError(
        f"inlineData of type {mime or 'unknown'!r} is not supported by a chat-completions target"
    )


def _file(data: Any, profile: Profile) -> dict[str, Any]:
    uri = data.get("fileUri") if isinstance(data, Mapping) else None
    mime = str(data.get("mimeType") or "").lower() if isinstance(data, Mapping) else ""
    if (
        isinstance(uri, str)
        and uri.startswith(("http://", "https://"))
        and (mime.startswith("image/") or not mime)
    ):
        if not profile.images:
            raise TranslationError(f"images are not supported by {profile.kind} targets")
        return {"type": "image_url", "image_url": {"url": uri}}
    raise TranslationError(
        "fileData (a file stored at Google) is not supported; send the bytes as inlineData"
    )
