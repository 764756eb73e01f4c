"""Masking secrets in text that came from a provider or an agent, before it is stored, shown or passed on.

Two kinds of masking, both to `[REDACTED]`:

- the exact secret values Downshift holds (provider keys, the local token), in every encoding a provider
  may echo them in: raw, JSON `\\u00XX` escapes (any mix of escaped and plain characters, any number of
  backslashes for JSON inside a JSON string), escaped slashes (`\\/`) and URL `%XX` escapes. Text that
  was decoded (an error message taken out of a JSON body) is masked the same way, so a key never survives
  by changing its spelling on the way;
- key-like values whatever their value: Authorization-like fields, Bearer tokens, well-known key prefixes
  (sk-, sk-ant-, gsk_, AIza...), for keys Downshift does not hold (an agent pasting its .env).

Cost: the pattern search costs milliseconds on a 64 KB body, so it runs on error text and on the log
writer's thread, never on the proxy's success path. The success path only uses `scrub_known`, a `bytes in`
search per literal form of the exact values (~0.5 us per KB of answer in all, on a shared 2-core machine).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

REDACTED = b"[REDACTED]"
MIN_SECRET = 8  # shorter values are not secrets worth masking (and would mask ordinary words)

# ------------------------------------------------------------------------------------------- key-like values

_NAMES = (
    rb"authorization|proxy-authorization|x-api-key|api[_-]?key|apikey|access[_-]?token|auth[_-]?token"
    rb"|refresh[_-]?token|id[_-]?token|token|password|passwd|secret|client[_-]?secret|private[_-]?key"
)
_KEY_PREFIXES = (
    rb"sk-(?:ant-|or-|proj-)?|ds-|gsk_|xai-|hf_|ghp_|gho_|github_pat_|AIza|AKIA|fw_|nvapi-|pplx-|r8_"
)
_SECRET_RE = re.compile(
    # "authorization": "Bearer x", "api_key": "x", also inside JSON-in-a-string (\"token\": \"x\")
    rb"(?P<kv>\\?[\"'](?i:" + _NAMES + rb")\\?[\"']\s*:\s*\\?[\"'](?:[Bb]earer\s+)?)(?P<v1>[^\"'\\\s,}]+)"
    # OPENAI_API_KEY=value (env files); Authorization: Bearer x, x-api-key: x (headers written out as text)
    rb"|(?P<env>(?:API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD)=[\"']?"
    rb"|(?i:authorization|x-api-key|api-key):[ \t]*(?:[Bb]earer[ \t]+)?)(?P<v2>[A-Za-z0-9._~+/\-]{8,})"
    rb"|(?P<bearer>\b[Bb](?:earer|EARER)[ \t]+)(?P<v3>[A-Za-z0-9._~+/\-]{8,}=*)"
    rb"|(?P<pfx>\b(?:" + _KEY_PREFIXES + rb"))(?P<v4>[A-Za-z0-9_\-]{16,})"
)
# Every pattern above contains one of these (lower-cased): only the text around them is searched.
_TRIGGERS = (
    b"sk-",
    b"ds-",
    b"bearer",
    b"authorization",
    b"api_key",
    b"api-key",
    b"apikey",
    b'token"',
    b"token'",
    b'token\\"',
    b"token=",
    b"secret",
    b"passw",
    b"private_key",
    b"private-key",
    b"aiza",
    b"akia",
    b"gsk_",
    b"xai-",
    b"hf_",
    b"ghp_",
    b"gho_",
    b"github_pat_",
    b"fw_",
    b"nvapi-",
    b"pplx-",
    b"r8_",
)
_BEFORE, _AFTER = 48, 160  # the longest field name + separators fits before a trigger, a key-ish run after
_DELIMS = frozenset(b"\"' \t\r\n,{}[]\\")


def _mask(match: re.Match[bytes]) -> bytes:
    for prefix, value in (("kv", "v1"), ("env", "v2"), ("bearer", "v3"), ("pfx", "v4")):
        head = match.group(prefix)
        if head is not None:
            return head + REDACTED if match.group(value) is not None else match.group(0)
    return match.group(0)


def _mask_patterns(data: bytes, pause: Callable[[], None] | None = None) -> bytes:
    """Key-like values. A regex over a whole 64 KB body costs milliseconds, so the body is searched for a few
    literal triggers (fast) and the patterns run only on the text around them, cut at characters no key or
    field name contains; `pause` (time.sleep(0)) hands the GIL back between triggers' regions."""
    n = len(data)
    if n <= _BEFORE + _AFTER:
        return _SECRET_RE.sub(_mask, data)
    lowered = data.lower()
    hits: list[int] = []
    for trigger in _TRIGGERS:
        at = lowered.find(trigger)
        while at >= 0:
            hits.append(at)
            at = lowered.find(trigger, at + len(trigger))
    if not hits:
        return data
    hits.sort()
    regions: list[list[int]] = []
    for at in hits:
        lo, hi = max(0, at - _BEFORE), min(n, at + _AFTER)
        if regions and lo <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], hi)
        else:
            regions.append([lo, hi])
    out: list[bytes] = []
    done = 0
    for lo, hi in regions:
        lo = max(lo, done)
        while lo > done and data[lo - 1] not in _DELIMS:  # start and end where no match can be cut in two
            lo -= 1
        while hi < n and data[hi] not in _DELIMS:
            hi += 1
        out.append(data[done:lo])
        out.append(_SECRET_RE.sub(_mask, data[lo:hi]))
        done = hi
        if pause is not None:
            pause()
    out.append(data[done:])
    return b"".join(out)


# ------------------------------------------------------------------------------------------- exact values

# One escaped character: JSON \u00XX (any number of backslashes: JSON inside a JSON string), \/ and URL %XX.
_ESCAPE = re.compile(rb"\\+u00([0-9a-fA-F]{2})|\\+(/)|%([0-9a-fA-F]{2})")


def _unescape(match: re.Match[bytes]) -> bytes:
    hex_digits = match.group(1) or match.group(3)
    return bytes([int(hex_digits, 16)]) if hex_digits else b"/"


def _char_forms(byte: int) -> bytes:
    """A regex matching one character of a secret in any of the spellings `_ESCAPE` decodes."""
    hex_digits = f"{byte:02x}"
    spelled = b"".join(
        b"[" + re.escape(c.lower()).encode() + re.escape(c.upper()).encode() + b"]"
        if c.isalpha()
        else c.encode()
        for c in hex_digits
    )
    literal = re.escape(bytes([byte]))
    return rb"(?:\\*" + literal + rb"|\\+u00" + spelled + rb"|%" + spelled + rb")"


@functools.lru_cache(maxsize=64)
def _compiled(
    secrets: tuple[bytes, ...],
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], re.Pattern[bytes] | None]:
    """(plain literal forms, all-\\u-escaped forms, one regex for every spelling of every secret)."""
    literal: list[bytes] = []
    escaped: list[bytes] = []
    spellings: list[bytes] = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        literal.append(secret)
        if b"/" in secret:
            literal.append(secret.replace(b"/", b"\\/"))
        if secret.isascii():
            escaped.append(b"".join(b"\\u%04x" % c for c in secret))
            escaped.append(b"".join(b"\\u%04X" % c for c in secret))
        spellings.append(b"".join(_char_forms(c) for c in secret))
    return tuple(literal), tuple(escaped), re.compile(b"|".join(spellings)) if spellings else None


def _usable(secrets: Iterable[bytes | str]) -> tuple[bytes, ...]:
    out = []
    for secret in secrets:
        value = secret.encode("utf-8", "surrogateescape") if isinstance(secret, str) else bytes(secret)
        if len(value) >= MIN_SECRET:
            out.append(value)
    return tuple(out)


def mask_secrets(data: bytes, secrets: Iterable[bytes | str]) -> bytes:
    """`data` with every spelling of every exact secret value replaced. Linear in `data`; the full search
    runs only when a literal form, or a secret in the decoded text, is present."""
    usable = _usable(secrets)
    if not usable or not data:
        return data
    literal, escaped, pattern = _compiled(usable)
    if not any(form in data for form in literal) and not any(form in data for form in escaped):
        if b"\\" not in data and b"%" not in data:
            return data
        decoded = _ESCAPE.sub(_unescape, data)
        if not any(secret in decoded for secret in usable):
            return data
    assert pattern is not None
    return pattern.sub(REDACTED, data)


def scrub_known(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """For the success path (every answer's bytes): a `bytes in` search (~0.15 us per KB) for each literal form
    of the exact secrets (as sent, and with escaped slashes, PHP's default), the full masking only when one is
    present. JSON encoders do not escape plain ASCII, so a key \\u-escaped inside a successful answer is not
    looked for here; the stored copy is masked in every spelling by the log writer."""
    if not secrets:
        return data
    literal, _escaped, pattern = _compiled(secrets)
    for form in literal:
        if form in data:
            assert pattern is not None
            return pattern.sub(REDACTED, data)
    return data


def known_secrets(secrets: Iterable[bytes | str]) -> tuple[bytes, ...]:
    """The values worth masking, in the form `scrub_known` takes (compute once per call, not per chunk)."""
    return _usable(secrets)


# ------------------------------------------------------------------------------------------- entry points


def redact(
    data: bytes, secrets: Iterable[bytes | str] = (), *, pause: Callable[[], None] | None = None
) -> bytes:
    """`data` with the exact `secrets` (every spelling, see `mask_secrets`) and key-like values (Authorization-like
    fields, Bearer tokens, sk-/sk-ant-/sk-or-/ds-/gsk_/AIza... keys) replaced by [REDACTED]. For bodies: run it on
    the log writer's thread or on error text, never on every answer of the event loop."""
    return _mask_patterns(mask_secrets(data, secrets), pause)


def redact_text(text: str | None, secrets: Iterable[bytes | str] = ()) -> str | None:
    """`redact` for decoded text (error messages, probe details): cheap enough for any thread."""
    if not text:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    cleaned = redact(raw, secrets)
    return text if cleaned == raw else cleaned.decode("utf-8", "surrogateescape")
