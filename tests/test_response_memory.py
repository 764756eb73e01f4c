"""The bounded memory behind previous_response_id: least recently used out, by count and by size."""

from __future__ import annotations

from app.proxy.translate.response_memory import ResponseMemory


def item(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_lookup_returns_a_copy_and_refreshes() -> None:
    memory = ResponseMemory(max_responses=2)
    memory.remember("a", [item("1")])
    memory.remember("b", [item("2")])
    got = memory.lookup("a")
    assert got == [item("1")]
    got.append(item("mutated"))  # the caller's list is its own
    memory.remember("c", [item("3")])  # 'b' is now the least recently used
    assert memory.lookup("b") is None and memory.lookup("a") == [item("1")] and len(memory) == 2


def test_bounded_by_size() -> None:
    memory = ResponseMemory(max_bytes=100)
    memory.remember("big", [item("x" * 200)])  # larger than the whole budget: not kept at all
    assert memory.lookup("big") is None
    memory.remember("a", [item("y" * 40)])
    memory.remember("b", [item("z" * 40)])  # both do not fit: the older goes
    assert memory.lookup("a") is None and memory.lookup("b") is not None
