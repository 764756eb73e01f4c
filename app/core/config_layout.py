"""Writing a config over a file the user edited by hand, keeping their comments and layout.

`to_toml_dict` says what the file must hold; this module changes only what differs in the existing
document (through tomlkit, which keeps comments, order and formatting) instead of writing a new file.
A key the file leaves out is added only when its value changes, and keys written with their default value
stay, as long as the result reads back as the config being saved; when it would not, the keys the new
config does not write are dropped (say, a default restored in the GUI), then every key is written, and if
even that does not read back, a fresh file is (the caller keeps the previous file as a backup each time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table


def preserving_dumps(
    old_text: str,
    data: Mapping[str, Any],
    reads_back: Callable[[dict[str, Any]], bool],
    effective: Mapping[str, Any] | None = None,
) -> str:
    """`data` as TOML, written over `old_text` so that untouched parts keep their comments and layout.
    `effective` is `to_toml_dict` of the config the old text loads as: a key the file leaves out is added
    only when its new value differs from the one it had there."""
    for add_missing, drop_extra in ((False, False), (False, True), (True, True)):
        try:
            doc = tomlkit.parse(old_text)
        except Exception:  # not TOML at all: nothing to keep
            break
        _merge(doc, data, effective, add_missing, drop_extra)
        text = tomlkit.dumps(doc)
        if reads_back(tomlkit.parse(text).unwrap()):
            return text
    return tomlkit.dumps(data)


def _merge(table: Any, data: Mapping[str, Any], effective: Any, add_missing: bool, drop_extra: bool) -> None:
    effective = effective if isinstance(effective, Mapping) else {}
    if drop_extra:
        for key in [k for k in table if k not in data]:
            del table[key]
    for key, value in data.items():
        if key not in table:
            if add_missing or effective.get(key, _MISSING) != value:
                table[key] = value
            continue
        current = table[key]
        if isinstance(value, Mapping) and _is_inline(current):
            if _plain(current) != value:
                inline = tomlkit.inline_table()
                inline.update(value)
                table[key] = inline
        elif isinstance(value, Mapping) and isinstance(current, (Table, dict)):
            _merge(current, value, effective.get(key), add_missing, drop_extra)
        elif _is_list_of_tables(value) and isinstance(current, AoT):
            _merge_tables(current, value, effective.get(key), add_missing, drop_extra)
        elif _plain(current) != value:
            table[key] = value


def _merge_tables(
    current: AoT, values: list[Mapping[str, Any]], effective: Any, add_missing: bool, drop_extra: bool
) -> None:
    """`[[providers]]` and `[[presets]]`: item by item, so a comment above the third stays with it."""
    effective = effective if isinstance(effective, list) else []
    for i, value in enumerate(values):
        if i < len(current) and _plain(current[i]).get("name") == value.get("name"):
            _merge(current[i], value, effective[i] if i < len(effective) else None, add_missing, drop_extra)
        elif i < len(current):
            current[i] = tomlkit.item(value)
        else:
            current.append(tomlkit.item(value))
    while len(current) > len(values):
        del current[len(values)]


_MISSING = object()


def _is_list_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _is_inline(item: Any) -> bool:
    return isinstance(item, tomlkit.items.InlineTable)


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item
