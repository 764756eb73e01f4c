"""The model price table: packaged prices, fast lookup by any provider's model name, OpenRouter refresh.

Prices are USD per million tokens: `input` (uncached), `output`, `cache_read`, `cache_write` (the
5-minute or only cache-write tier) and `cache_write_1h`; a missing cache price is None, meaning the
provider has no such tier (the cost module then bills those tokens as `input`). Every entry names its
`source` and the `date` it was read, and may carry per-provider overrides (`providers`) because the
same open-weight model costs different amounts on Groq, Together or Fireworks. Every price of an entry
comes from its one source: a refresh never leaves one provider's cache price under another's label.

Some models cost more per token once a prompt is long (Claude Sonnet 4/4.5 above 200K input tokens,
Gemini 2.5 Pro above 200K, Qwen3 Coder Plus on DashScope from 32K): `tiers` lists those prices, each
applying to the whole call when the prompt (input + cache reads + cache writes) is above its `above`.

Lookup runs on every proxied call, so all names are normalised into one dict when the table loads and
a lookup is a few dict probes (results memoised). Normalisation: lowercase; strip `provider/` routing
prefixes one segment at a time (`openrouter/`, `together_ai/`, `accounts/fireworks/models/`, Bedrock's
`us.anthropic.`); strip date suffixes (`-20250929`, `-2025-09-29`, `@20250929`), Bedrock's `-v1:0`,
OpenRouter variants (`:free`, `:thinking`), `-latest` and quantisation suffixes (`-fp8`, `-int4`...).
An exact name is tried before any stripping, so `deepseek-chat` and `deepseek/deepseek-chat` can be
different models.

The packaged resources/prices.json is read-only: `refresh()` merges OpenRouter's live list into a copy
written atomically to a user-data path, and refuses to overwrite the packaged file.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from app.core.atomic_file import atomic_write, file_stamp
from app.paths import resource

if TYPE_CHECKING:  # httpx is imported by `refresh` only: the proxy loads this module at start
    import httpx

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
PACKAGED_NAME = "prices.json"


@dataclass(frozen=True, slots=True)
class PriceTier:
    """The prices of a call whose prompt is longer than `above` tokens (the whole call is billed at them)."""

    above: int
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One model's prices (USD per million tokens) and where they came from."""

    id: str
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    source: str = ""
    date: str = ""
    aliases: tuple[str, ...] = ()
    note: str = ""
    provider: str | None = None  # set when these are one provider's prices for the model
    providers: Mapping[str, PriceEntry] = field(default_factory=dict)
    tiers: tuple[PriceTier, ...] = ()  # long-prompt prices, by ascending `above`

    def for_provider(self, provider_kind: str | None) -> PriceEntry:
        """This model's prices on `provider_kind`, or the model's reference prices."""
        if provider_kind:
            found = self.providers.get(provider_kind.lower())
            if found is not None:
                return found
        return self


@dataclass(slots=True)
class PriceTable:
    updated: str
    models: dict[str, PriceEntry]
    _index: dict[str, str] = field(default_factory=dict, repr=False)
    _memo: dict[tuple[str, str | None], PriceEntry | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the name index: canonical ids first, aliases next, then bare tails (after a /), and only
        then the stripped forms, so a dated entry (`gpt-4o-2024-05-13`) never claims its base name."""
        index: dict[str, str] = {}
        for model_id in self.models:
            index.setdefault(_clean(model_id), model_id)
        for model_id, entry in self.models.items():
            for alias in entry.aliases:
                index.setdefault(_clean(alias), model_id)
        names = [
            (model_id, name) for model_id, entry in self.models.items() for name in (model_id, *entry.aliases)
        ]
        for model_id, name in names:
            for key in _tails(name):
                index.setdefault(key, model_id)
        for model_id, name in names:
            for key in _tails(name):
                index.setdefault(_strip(key), model_id)
        self._index = index
        self._memo = {}

    def lookup(self, model_name: str, provider_kind: str | None = None) -> PriceEntry | None:
        """Prices for a model as any provider names it; provider-specific prices when known."""
        key = (model_name, provider_kind)
        if key in self._memo:
            return self._memo[key]
        model_id = None
        for candidate in _variants(model_name):
            model_id = self._index.get(candidate)
            if model_id is not None:
                break
        result = self.models[model_id].for_provider(provider_kind) if model_id else None
        if (
            result is not None
            and _clean(model_name).endswith(":free")
            and _clean(model_name) != _clean(model_id or "")
        ):
            result = replace(
                result,
                input=0.0,
                output=0.0,
                cache_read=0.0,
                cache_write=0.0,
                cache_write_1h=0.0,
                note="OpenRouter :free variant, billed $0",
                providers={},
            )
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[key] = result
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "updated": self.updated,
            "unit": "USD per 1M tokens",
            "models": {model_id: _entry_json(entry) for model_id, entry in self.models.items()},
        }


# --------------------------------------------------------------------------- normalisation

_DATE = re.compile(r"(?:[-@_]20\d{2}-?\d{2}-?\d{2})$")
_VERSION_SUFFIX = re.compile(r"-v\d+:\d+$")  # Bedrock: -v1:0
_VARIANT = re.compile(r":[a-z0-9._-]+$")
_QUANT = re.compile(r"-(?:fp8|fp4|fp16|bf16|int8|int4|awq|gguf|mlx)$")
_REGION = re.compile(r"^(?:us|eu|apac|global|jp|au|ca)\.")
_VENDOR_DOT = re.compile(r"^(?:anthropic|meta|mistral|amazon|deepseek|openai|qwen|moonshot|minimax)\.")


def _clean(name: str) -> str:
    return name.strip().lower()


def _tails(name: str) -> list[str]:
    """`name` cleaned, then without its routing prefixes one segment at a time."""
    base = _clean(name)
    if base.startswith("accounts/") and "/models/" in base:
        base = base.split("/models/", 1)[1]
    segments = base.split("/")
    return ["/".join(segments[start:]) for start in range(len(segments))]


def _variants(name: str) -> list[str]:
    """Keys to probe for `name`, most specific first (see the module docstring)."""
    out: list[str] = []
    for tail in _tails(name):
        for key in (tail, _strip(tail)):
            if key and key not in out:
                out.append(key)
    return out


def _strip(name: str) -> str:
    name = _REGION.sub("", name)
    name = _VENDOR_DOT.sub("", name)
    for _ in range(3):
        before = name
        name = _VERSION_SUFFIX.sub("", name)
        name = _VARIANT.sub("", name)
        name = _DATE.sub("", name)
        name = _QUANT.sub("", name)
        name = name.removesuffix("-latest")
        if name == before:
            break
    return name


# --------------------------------------------------------------------------- load and save


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def _tier(raw: Mapping[str, Any]) -> PriceTier:
    return PriceTier(
        int(raw["above"]),
        float(raw["input"]),
        float(raw["output"]),
        _num(raw.get("cache_read")),
        _num(raw.get("cache_write")),
        _num(raw.get("cache_write_1h")),
    )


def _entry(model_id: str, raw: Mapping[str, Any], provider: str | None = None) -> PriceEntry:
    providers = {
        kind.lower(): _entry(model_id, {**sub, "aliases": []}, kind.lower())
        for kind, sub in (raw.get("providers") or {}).items()
    }
    return PriceEntry(
        id=model_id,
        input=float(raw["input"]),
        output=float(raw["output"]),
        cache_read=_num(raw.get("cache_read")),
        cache_write=_num(raw.get("cache_write")),
        cache_write_1h=_num(raw.get("cache_write_1h")),
        source=str(raw.get("source") or ""),
        date=str(raw.get("date") or ""),
        aliases=tuple(raw.get("aliases") or ()),
        note=str(raw.get("note") or ""),
        provider=provider,
        providers=providers,
        tiers=tuple(sorted((_tier(t) for t in raw.get("tiers") or ()), key=lambda t: t.above)),
    )


def _entry_json(entry: PriceEntry) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(entry, name) for name in PRICE_FIELDS}
    out["source"] = entry.source
    out["date"] = entry.date
    if entry.provider is None:
        out["aliases"] = list(entry.aliases)
    if entry.note:
        out["note"] = entry.note
    if entry.tiers:
        out["tiers"] = [
            {"above": t.above, **{name: getattr(t, name) for name in PRICE_FIELDS}} for t in entry.tiers
        ]
    if entry.providers:
        out["providers"] = {kind: _entry_json(sub) for kind, sub in entry.providers.items()}
    return out


def table_from_json(data: Mapping[str, Any]) -> PriceTable:
    models = {model_id: _entry(model_id, raw) for model_id, raw in (data.get("models") or {}).items()}
    return PriceTable(updated=str(data.get("updated") or ""), models=models)


def load_table(path: str | os.PathLike[str] | None = None) -> PriceTable:
    """The table at `path`, or the packaged one."""
    source = Path(path) if path is not None else resource(PACKAGED_NAME)
    return table_from_json(orjson.loads(source.read_bytes()))


def save_table(table: PriceTable, path: str | os.PathLike[str]) -> None:
    """Write atomically (temp file in the same folder, fsync, rename); never the packaged file."""
    target = Path(path)
    if _is_packaged(target):
        raise ValueError(f"refusing to overwrite the packaged price table {target}")
    payload = orjson.dumps(table.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
    atomic_write(target, payload)


def _is_packaged(target: Path) -> bool:
    try:
        packaged = resource(PACKAGED_NAME).resolve()
    except FileNotFoundError:
        return False
    return target.resolve() == packaged


_default: PriceTable | None = None
_pinned = False  # installed with set_default_table: no file replaces it
_packaged: PriceTable | None = None
_user_stamp: tuple[int, int, int] | None = None  # file_stamp of the user copy the table was chosen with
_checked = 0.0
RECHECK_SECONDS = 5.0  # how often a running proxy looks for a refreshed user copy (one stat)


USER_COPY = "prices.json"  # in the user data dir, written by `refresh`


def user_copy_path() -> Path:
    from app.paths import data_dir

    return data_dir() / USER_COPY


def default_table() -> PriceTable:
    """The table `lookup` uses: the newer of the packaged table and the user's refreshed copy (by
    `updated`), so an app update with newer packaged prices is not shadowed by an old refresh; a
    table installed with `set_default_table` wins. A running proxy notices a `downshift prices refresh`
    from another process within RECHECK_SECONDS (one stat of the user copy, not one per call)."""
    global _default, _packaged, _user_stamp, _checked
    if _default is not None and (_pinned or time.monotonic() - _checked < RECHECK_SECONDS):
        return _default
    _checked = time.monotonic()
    path = user_copy_path()
    stamp = file_stamp(path)
    if _default is not None and stamp == _user_stamp:
        return _default
    if _packaged is None:
        _packaged = load_table()
    try:
        user = load_table(path) if stamp is not None else None
    except (OSError, ValueError, KeyError, TypeError):  # damaged (or half-written by hand): packaged serves
        user = None
    _user_stamp = stamp
    _default = user if user is not None and user.updated >= _packaged.updated else _packaged
    return _default


def set_default_table(table: PriceTable | None) -> None:
    """Install a table (tests, the demo); None goes back to the files, read again on the next lookup."""
    global _default, _pinned, _user_stamp
    _default, _pinned, _user_stamp = table, table is not None, None


def lookup(model_name: str, provider_kind: str | None = None) -> PriceEntry | None:
    return default_table().lookup(model_name, provider_kind)


def table_origin() -> str:
    """Which table `lookup` uses, in words: the packaged one or the refreshed user copy."""
    table = default_table()
    if table is _packaged:
        return "packaged"
    return "installed" if _pinned else f"refreshed ({user_copy_path()})"


# --------------------------------------------------------------------------- OpenRouter refresh


@dataclass(frozen=True, slots=True)
class PriceChange:
    model: str
    field: str  # a price field, or "added" for a new model
    old: float | None
    new: float | None


def _per_million(value: Any) -> float | None:
    """OpenRouter quotes USD per token as strings; -1 or junk means 'no fixed price'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number < 0:
        return None
    return round(number * 1_000_000, 6)


def is_openrouter_source(source: str) -> bool:
    """Whether a price was read from OpenRouter (its page or its model list) rather than the model's maker."""
    return "openrouter" in source.lower()


def refresh_from_openrouter(
    models_json: Mapping[str, Any],
    base: PriceTable | None = None,
    *,
    source: str = "https://openrouter.ai/api/v1/models",
    today: str | None = None,
) -> tuple[PriceTable, list[PriceChange]]:
    """Merge OpenRouter's `/models` list into a copy of `base` (default: the packaged table).

    OpenRouter's price is what a call through OpenRouter costs, not what the model's own provider
    charges, so it never replaces a direct provider's price: for a known model whose reference price
    came from its maker (Anthropic's page, DeepSeek's...), OpenRouter's prices go to the entry's
    `providers["openrouter"]`; a known model whose reference price was read from OpenRouter gets all
    its prices replaced; others are added. Either way every price under the OpenRouter label is
    OpenRouter's (a cache price it does not list is left empty, never borrowed from another source).
    Models without a fixed prompt and completion price (routers, variable pricing) are skipped.
    """
    base = base if base is not None else load_table()
    date = today or _dt.date.today().isoformat()
    models = dict(base.models)
    exact = {_clean(model_id): model_id for model_id in models}
    for model_id, entry in models.items():
        for alias in entry.aliases:
            exact.setdefault(_clean(alias), model_id)
    changes: list[PriceChange] = []
    for item in models_json.get("data") or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        pricing = item.get("pricing") or {}
        prompt = _per_million(pricing.get("prompt"))
        completion = _per_million(pricing.get("completion"))
        if prompt is None or completion is None:
            continue
        fresh: dict[str, Any] = {
            "input": prompt,
            "output": completion,
            "cache_read": _per_million(pricing.get("input_cache_read")),
            "cache_write": _per_million(pricing.get("input_cache_write")),
            "cache_write_1h": None,
        }
        known = exact.get(_clean(item["id"]))
        if known is None:
            slug = item.get("canonical_slug")
            aliases = (slug,) if isinstance(slug, str) and slug != item["id"] else ()
            models[item["id"]] = PriceEntry(id=item["id"], source=source, date=date, aliases=aliases, **fresh)
            exact[_clean(item["id"])] = item["id"]
            changes.append(PriceChange(item["id"], "added", None, prompt))
            continue
        old = models[known]
        if is_openrouter_source(old.source):
            _diff(changes, known, old, fresh)
            models[known] = replace(old, source=source, date=date, tiers=(), **fresh)
            continue
        previous = old.providers.get("openrouter")
        label = f"{known} (openrouter)"
        if previous is None:
            changes.append(PriceChange(label, "added", None, prompt))
        else:
            _diff(changes, label, previous, fresh)
        sub = PriceEntry(id=known, source=source, date=date, provider="openrouter", **fresh)
        models[known] = replace(old, providers={**old.providers, "openrouter": sub})
    return PriceTable(updated=date, models=models), changes


def _diff(changes: list[PriceChange], label: str, old: PriceEntry, fresh: Mapping[str, Any]) -> None:
    for name, value in fresh.items():
        if value != getattr(old, name):
            changes.append(PriceChange(label, name, getattr(old, name), value))


def refresh(
    base_url: str,
    api_key: str | None = None,
    *,
    client: httpx.Client | None = None,
    out_path: str | os.PathLike[str] | None = None,
    base: PriceTable | None = None,
    timeout: float = 30.0,
) -> tuple[PriceTable, list[PriceChange]]:
    """Fetch `GET {base_url}/models`, merge it, and write the result to `out_path` (a user-data path) if given."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    owned = client is None
    import httpx

    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.get(url, headers=headers)
        response.raise_for_status()
        data = orjson.loads(response.content)
    finally:
        if owned:
            http.close()
    table, changes = refresh_from_openrouter(data, base, source=url)
    if out_path is not None:
        save_table(table, out_path)
    return table, changes
