"""Offline token counts for whole requests: Anthropic `count_tokens` bodies and OpenAI chat bodies.

Why this tokenizer: tiktoken (1.2 MB wheels for Linux, macOS and Windows on every CPython we support)
with OpenAI's cl100k_base ranks vendored in resources/ as `cl100k_base.tiktoken.gz` (776 KB), checked
against tiktoken's published SHA-256 when loaded, so nothing is downloaded at run time. Alternatives
measured: `bpe-openai` embeds the tables but its wheel is 41 MB and has no Intel-macOS build; HF
`tokenizers` needs a 4-7 MB tokenizer.json on top of a 3 MB wheel. Loading takes 0.2-0.3 s once (lazily,
on first use); a 30 KB body then counts in 1.5-5 ms (plain code is fastest, whitespace- and
Unicode-heavy text slowest), and repeated long strings (the system prompt and tool list an agent
resends every turn) hit a small cache.

How close it is: no open-weight or Anthropic tokenizer is cl100k, so this is an estimate. For code and
English, cl100k counts land within ~10% of Qwen/DeepSeek/GLM/Kimi tokenizers; Claude's tokenizer
counts more (about 5-15% on code/English, and Claude Opus 4.7+ switched to a tokenizer that uses up to
~35% more), so Anthropic counts are an estimate of what an open-weight target will see, not of
Claude's bill. Structure is counted on purpose, since an agent that compacts on this number must not
overflow the target's context:

- Anthropic: every block kind (text, tool_use input JSON, tool_result content, thinking, images by
  their pixel size as width*height/750 after Claude's resize, PDFs by page count), the system prompt,
  each tool's name/description/input_schema as JSON (spaced the way chat templates print it), plus the tool-use system prompt Anthropic
  documents (346 tokens with tool_choice auto/none, 313 with any/tool), and small per-message framing.
- OpenAI chat: the cookbook framing (3 tokens per message, 1 per name, 3 to prime the reply), tool
  calls as name + arguments JSON, images by OpenAI's tile rule, and tools rendered the way open-weight
  chat templates embed them (a Hermes/Qwen style `<tools>` block of JSON, preamble text included).
  OpenAI's own models render tools in a terser TypeScript-like form, so for gpt-* targets the tool
  part is over-counted by roughly 20-40%.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import math
import struct
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson
import tiktoken

from app.paths import resource

ENCODING_FILE = "cl100k_base.tiktoken.gz"
ENCODING_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"  # tiktoken's own pin
CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""

# Anthropic framing, calibrated on the token-counting guide's examples (system + one short user turn).
ANTHROPIC_REQUEST = 3
ANTHROPIC_SYSTEM = 1
ANTHROPIC_MESSAGE = 3
ANTHROPIC_BLOCK = 1
ANTHROPIC_TOOL_USE = 8  # the wrapper around a tool call in the rendered transcript
ANTHROPIC_TOOL_RESULT = 6
ANTHROPIC_TOOL = 3
ANTHROPIC_TOOLS_AUTO = 346  # documented tool-use system prompt, tool_choice auto / none
ANTHROPIC_TOOLS_FORCED = 313  # tool_choice any / tool
PDF_PAGE_TOKENS = 2000  # text plus page image; Anthropic documents 1,500-3,000 per page
IMAGE_FALLBACK_ANTHROPIC = 1600  # a full-size image after Claude's resize (1.15 MP / 750)

# OpenAI chat framing, from OpenAI's cookbook.
OPENAI_MESSAGE = 3
OPENAI_NAME = 1
OPENAI_REPLY = 3
OPENAI_TOOL_CALL = 3
IMAGE_FALLBACK_OPENAI = 765  # 1024x1024 at detail high
TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
)

_encoding: tiktoken.Encoding | None = None
_lock = threading.Lock()


def encoding() -> tiktoken.Encoding:
    """The cl100k_base encoding, built from the vendored ranks on first use."""
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                _encoding = _load_encoding()
    return _encoding


def _load_encoding() -> tiktoken.Encoding:
    raw = gzip.decompress(resource(ENCODING_FILE).read_bytes())
    if hashlib.sha256(raw).hexdigest() != ENCODING_SHA256:
        raise RuntimeError(f"{ENCODING_FILE} does not match tiktoken's published cl100k_base ranks")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    )


_CACHE_FROM = 512  # strings this long are worth remembering: agents resend them every turn


@lru_cache(maxsize=512)
def _count_long(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def count_text(text: str) -> int:
    """Tokens in plain text; special-token strings in the text count as ordinary text."""
    if not text:
        return 0
    if len(text) >= _CACHE_FROM:
        return _count_long(text)
    return len(encoding().encode_ordinary(text))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if not isinstance(value, str) else value


def _template_json(value: Any) -> str:
    """JSON the way chat templates print it (Jinja `tojson`: `, ` and `: ` separators)."""
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- images and documents


def image_size(data: str | bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a base64 (or raw) PNG, JPEG, GIF or WebP; None if unknown."""
    chunk = data[:87384]  # a multiple of 4: enough base64 for any header, even a JPEG after its EXIF
    try:
        head = base64.b64decode(chunk[: len(chunk) - len(chunk) % 4], validate=False)
    except (binascii.Error, ValueError):
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        kind = head[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", head[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def anthropic_image_tokens(width: int, height: int) -> int:
    """Claude resizes to a long edge <= 1568 px and <= ~1.15 MP, then bills width*height/750."""
    if width <= 0 or height <= 0:
        return IMAGE_FALLBACK_ANTHROPIC
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return max(1, math.ceil(width * scale * height * scale / 750))


def openai_image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """OpenAI's tile rule: fit 2048x2048, shortest side to 768, 170 per 512-px tile plus 85."""
    if detail == "low":
        return 85
    if width <= 0 or height <= 0:
        return IMAGE_FALLBACK_OPENAI
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _pdf_pages(data: str) -> int:
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return 1
    pages = raw.count(b"/Type /Page") + raw.count(b"/Type/Page")
    pages -= raw.count(b"/Type /Pages") + raw.count(b"/Type/Pages")
    return max(pages, 1)


# --------------------------------------------------------------------------- Anthropic


def _anthropic_text_of(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    if isinstance(content, list):
        return sum(_anthropic_block(block) for block in content if isinstance(block, Mapping))
    return 0


def _anthropic_block(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return ANTHROPIC_BLOCK + count_text(block.get("text") or "")
    if kind in ("tool_use", "server_tool_use"):
        arguments = _template_json(block.get("input") or {})
        return ANTHROPIC_TOOL_USE + count_text(block.get("name") or "") + count_text(arguments)
    if kind == "tool_result" or (isinstance(kind, str) and kind.endswith("_tool_result")):
        return ANTHROPIC_TOOL_RESULT + _anthropic_text_of(block.get("content"))
    if kind == "thinking":
        return ANTHROPIC_BLOCK + count_text(block.get("thinking") or "")
    if kind == "redacted_thinking":
        return ANTHROPIC_BLOCK + len(block.get("data") or "") // 4  # encrypted: only its size is known
    if kind == "image":
        source = block.get("source") or {}
        size = image_size(source.get("data") or "") if source.get("type") == "base64" else None
        return anthropic_image_tokens(*size) if size else IMAGE_FALLBACK_ANTHROPIC
    if kind == "document":
        source = block.get("source") or {}
        extra = count_text(block.get("title") or "") + count_text(block.get("context") or "")
        if source.get("type") == "text":
            return ANTHROPIC_BLOCK + extra + count_text(source.get("data") or "")
        if source.get("type") == "content":
            return ANTHROPIC_BLOCK + extra + _anthropic_text_of(source.get("content"))
        if source.get("type") == "base64":
            return extra + PDF_PAGE_TOKENS * _pdf_pages(source.get("data") or "")
        return extra + PDF_PAGE_TOKENS
    if kind == "search_result":
        return (
            ANTHROPIC_BLOCK + count_text(block.get("title") or "") + _anthropic_text_of(block.get("content"))
        )
    # anything else (new block kinds): count what it would cost as JSON, minus its cache hints
    rest = {k: v for k, v in block.items() if k not in ("cache_control", "citations")}
    return ANTHROPIC_BLOCK + count_text(_json(rest))


def _anthropic_tools(tools: Iterable[Any], tool_choice: Any) -> int:
    total = 0
    any_tool = False
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        any_tool = True
        if "input_schema" in tool:
            shown = {k: tool[k] for k in ("name", "description", "input_schema") if k in tool}
        else:  # server tools (web_search, bash, text_editor...) are described by Anthropic, not the client
            shown = {k: v for k, v in tool.items() if k != "cache_control"}
        total += ANTHROPIC_TOOL + count_text(_template_json(shown))
    if not any_tool:
        return 0
    forced = isinstance(tool_choice, Mapping) and tool_choice.get("type") in ("any", "tool")
    return total + (ANTHROPIC_TOOLS_FORCED if forced else ANTHROPIC_TOOLS_AUTO)


def count_anthropic_request(body: Mapping[str, Any]) -> int:
    """Estimated input tokens of an Anthropic Messages / count_tokens request body."""
    total = ANTHROPIC_REQUEST
    system = body.get("system")
    if system:
        total += ANTHROPIC_SYSTEM + _anthropic_text_of(system)
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            total += ANTHROPIC_MESSAGE + _anthropic_text_of(message.get("content"))
    return total + _anthropic_tools(body.get("tools") or (), body.get("tool_choice"))


# --------------------------------------------------------------------------- OpenAI chat


def _openai_content(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text", "refusal"):
            total += count_text(part.get("text") or part.get("refusal") or "")
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            detail = (
                (image.get("detail") if isinstance(image, Mapping) else None) or part.get("detail") or "auto"
            )
            size = None
            if isinstance(url, str) and url.startswith("data:") and "," in url:
                size = image_size(url.split(",", 1)[1])
            total += (
                openai_image_tokens(*size, detail)
                if size
                else (85 if detail == "low" else IMAGE_FALLBACK_OPENAI)
            )
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data") or ""
            total += PDF_PAGE_TOKENS * (_pdf_pages(data.split(",", 1)[-1]) if data else 1)
        else:
            total += count_text(_json(part))
    return total


def _openai_tools(tools: Iterable[Any]) -> int:
    parts = []
    for tool in tools:
        if isinstance(tool, Mapping):
            parts.append(_template_json({k: v for k, v in tool.items() if k != "cache_control"}))
    if not parts:
        return 0
    return count_text(TOOLS_PREAMBLE) + count_text("\n".join(parts)) + len(parts)


def count_openai_request(body: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of an OpenAI chat completions request body."""
    total = OPENAI_REPLY
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        total += OPENAI_MESSAGE + count_text(str(message.get("role") or ""))
        total += _openai_content(message.get("content"))
        if message.get("name"):
            total += OPENAI_NAME + count_text(str(message["name"]))
        reasoning = message.get("reasoning_content")
        if isinstance(reasoning, str):
            total += count_text(reasoning)
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping):
                total += (
                    OPENAI_TOOL_CALL
                    + count_text(str(fn.get("name") or ""))
                    + count_text(_json(fn.get("arguments") or ""))
                )
    tools = list(body.get("tools") or ())
    tools += [
        {"type": "function", "function": f} for f in body.get("functions") or () if isinstance(f, Mapping)
    ]
    return total + _openai_tools(tools)
