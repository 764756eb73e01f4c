"""Tool schemas are untrusted input (issue 14): a schema that refers outside itself is never fetched (no SSRF,
no local file read, no frozen event loop), a huge schema does not stall other calls, and a schema that
cannot be used gives the verdict "unchecked", never a failure of the model. Over real sockets: the proxy,
the mock upstream, a listener that records every connection, a FIFO that records every reader."""

from __future__ import annotations

import errno
import gc
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from app.core import toolcheck
from app.core.toolcheck import schemas
from app.testing.script import Reply, ToolCall

HEALTH_BUDGET_S = 0.1
GAP_BUDGET_S = 0.5
SNEAKY = 6  # the index of the `#` reference under an `$id` in _remote_schemas


class Listener:
    """A real TCP socket that records every connection and holds it (a slow URL): nothing may arrive."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    self.received.append(conn.recv(4096) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")
                time.sleep(1.0)  # answer nothing for a while, the way a slow URL would

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


class HealthWatch:
    """Polls /health from another thread while a call runs. `slowest` is the slowest answer; `longest_gap` the
    longest time between two answers (less the pause between polls): code holding the GIL freezes this thread
    too, and a freeze that starts between two polls must count (it may include the OS scheduling this thread
    late on a busy machine, hence its looser budget)."""

    PAUSE = 0.01

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.longest_gap = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client() as client:
            client.get(f"{self.url}/health", timeout=5)
            last = time.perf_counter()
            while not self._stop.is_set():
                time.sleep(self.PAUSE)
                start = time.perf_counter()
                try:
                    client.get(f"{self.url}/health", timeout=5)
                    self.answers += 1
                except httpx.HTTPError:
                    pass
                now = time.perf_counter()
                self.slowest = max(self.slowest, now - start)
                self.longest_gap = max(self.longest_gap, now - last - self.PAUSE)
                last = now

    def check(self) -> None:
        assert self.answers > 0
        assert self.slowest < HEALTH_BUDGET_S, f"/health took {self.slowest * 1000:.0f} ms"
        assert self.longest_gap < GAP_BUDGET_S, f"the process froze {self.longest_gap * 1000:.0f} ms"

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _request(schema: dict) -> bytes:
    """A chat request declaring one tool with `schema`, serialised (before any timing starts: this test
    process is also the client, and encoding a 1.3 MB body holds the GIL)."""
    return orjson.dumps(
        {
            "model": "default",
            "messages": [{"role": "user", "content": "look it up"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": schema}}],
        }
    )


def _call_with_schema(
    proxy, mock, token: str, schema: dict | bytes, args: dict | None = None
) -> httpx.Response:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(tool_calls=[ToolCall("lookup", args or {"q": "x"})]))
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=schema if isinstance(schema, bytes) else _request(schema),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )


def _verdicts(core) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    from conftest import logged_calls

    logged_calls(core)
    with core.db.connect() as conn:
        return [
            tuple(r) for r in conn.exec_driver_sql("SELECT name, kind, detail FROM tool_calls ORDER BY rowid")
        ]


def _remote_schemas(port: int, fifo: Path) -> list[dict]:
    url = f"http://127.0.0.1:{port}/schema.json"
    return [
        {"type": "object", "properties": {"q": {"$ref": url}}},
        {"type": "object", "properties": {"q": {"$ref": f"{url}#/definitions/q"}}},
        {"type": "object", "properties": {"q": {"$ref": f"file://{fifo}"}}},
        {"type": "object", "properties": {"q": {"$ref": str(fifo)}}},  # relative: resolved against no base
        {"type": "object", "properties": {"q": {"$ref": f"https://127.0.0.1:{port}/s.json"}}},
        {"type": "object", "properties": {"q": {"$ref": f"ftp://127.0.0.1:{port}/s.json"}}},
        # a local-looking `#` reference made remote by an `$id` fastjsonschema does not walk into (a list)
        {
            "type": "object",
            "allOf": [
                {
                    "$id": url,
                    "properties": {"q": {"$ref": "#/definitions/q"}},
                    "definitions": {"q": {"type": "string"}},
                }
            ],
        },
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"q": {"$dynamicRef": url}},
        },
    ]


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "schema.fifo"
    os.mkfifo(fifo)
    return fifo


def _fifo_has_no_reader(fifo: Path) -> bool:
    """A non-blocking open for writing fails with ENXIO exactly when nobody has the FIFO open for reading."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        return exc.errno == errno.ENXIO
    os.close(fd)  # a reader is blocked in open(): release it
    return False


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_schema_refs_are_never_fetched_and_the_proxy_stays_responsive(
    proxy, mock, token, core, listener, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fifo = _fifo(tmp_path)
    schemas = _remote_schemas(listener.port, fifo)
    with HealthWatch(proxy.url) as watch:
        for schema in schemas:
            r = _call_with_schema(proxy, mock, token, schema)
            assert r.status_code == 200, r.text
            assert _fifo_has_no_reader(fifo)
        time.sleep(0.2)
    assert listener.received == [], "a schema $ref made Downshift connect out"
    watch.check()
    verdicts = _verdicts(core)
    assert len(verdicts) == len(schemas)
    for i, (name, kind, detail) in enumerate(verdicts):
        if i == SNEAKY:  # resolvable inside the document: checked locally, or not at all, never fetched
            assert kind in ("ok", "unchecked"), (kind, detail)
            continue
        assert (name, kind) == ("lookup", "unchecked"), (kind, detail)
        assert detail.startswith("not checked"), detail
    rows = [r for r in _rows(core)]
    assert all(r["tool_failures"] == 0 and r["outcome"] == "ok" for r in rows)  # never the model's failure


def _rows(core) -> list[dict]:  # type: ignore[no-untyped-def]
    from conftest import logged_calls

    return logged_calls(core)


@pytest.fixture
def quiet_gc():  # type: ignore[no-untyped-def]
    """No garbage collection while this test measures. Parsing a 1.3 MB request makes ~100k objects (in the
    proxy, the mock upstream and the client, all in this process), which sets off full collections that
    pause every thread 100-220 ms here, whatever is done with the schema: Python's cost of any request that
    large, not the schema check this test is about."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_a_huge_schema_does_not_stall_other_calls(proxy, mock, token, core, quiet_gc) -> None:  # type: ignore[no-untyped-def]
    def schema(n: int, tag: str) -> dict:
        props = {
            f"{tag}{i}": {
                "type": "object",
                "properties": {
                    "a": {"type": "string", "enum": ["x", "y"]},
                    "b": {"type": "integer", "minimum": 0},
                },
                "required": ["a"],
            }
            for i in range(n)
        }
        return {"type": "object", "properties": {"q": {"type": "string"}, **props}}

    huge = _request(schema(10_000, "h"))  # ~1.3 MB: compiling it took fastjsonschema ~10 s on the event loop
    large = _request(schema(1_500, "l"))  # under the size cap: compiled, off the loop
    with HealthWatch(proxy.url) as watch:
        start = time.perf_counter()
        assert _call_with_schema(proxy, mock, token, huge).status_code == 200
        huge_s = time.perf_counter() - start
        assert _call_with_schema(proxy, mock, token, large).status_code == 200
        time.sleep(0.2)
    assert huge_s < 1.0, huge_s
    watch.check()
    (_, kind, detail), (_, kind2, detail2) = _verdicts(core)
    assert kind == "unchecked" and "KB" in detail, detail
    assert kind2 in ("ok", "unchecked"), detail2  # "unchecked" when the shared machine took over the time cap


def test_an_unusable_schema_is_reported_unchecked_everywhere(listener) -> None:  # type: ignore[no-untyped-def]
    checks = {
        # on the listener: a fetch would be recorded there (a closed port would refuse it unseen)
        "remote": {
            "type": "object",
            "properties": {"a": {"$ref": f"http://127.0.0.1:{listener.port}/x.json"}},
        },
        "broken": {"type": "object", "properties": {"a": {"type": "no-such-type"}}},
        "dangling": {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}},
    }
    for name, schema in checks.items():
        verdict = toolcheck.check_calls({name: schema}, [toolcheck.ToolCall("1", name, '{"a": 1}')])[0]
        assert verdict.kind == "unchecked" and verdict.detail.startswith("not checked"), (name, verdict)
    # the slow path (jsonschema, whose default registry still fetches with urllib) never fetches either
    url = f"http://127.0.0.1:{listener.port}/x"
    validator = schemas._slow_validator({"type": "object", "properties": {"a": {"$ref": url}}})
    with pytest.raises(Exception, match="Unresolvable"):
        validator({"a": 1})
    time.sleep(0.2)
    assert listener.received == []


def test_compilation_has_a_time_cap_and_is_cached() -> None:
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "integer", "minimum": i} for i in range(3000)},
    }
    start = time.perf_counter()
    validator = toolcheck.validator_for(schema, timeout=0.01)  # not ready in 10 ms: "unchecked", not a wait
    assert time.perf_counter() - start < 0.5
    assert toolcheck.unusable_reason(validator) is not None
    deadline = time.monotonic() + 30
    while toolcheck.cached_validator(schema) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = toolcheck.cached_validator(schema)  # the compilation went on, and is used from now on
    assert ready is not None and toolcheck.unusable_reason(ready) is None
    assert ready({"p5": 1}) is not None and ready({"p5": 5}) is None
    assert toolcheck.validator_for(schema) is ready


def test_patterns_are_never_run(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """Python's regex engine holds the GIL while matching and cannot be time-limited: `^(a+)+$` against
    'aaa...!' doubles with each character, and a pattern with no nesting at all, `^a*a*a*a*a*a*a*a*a*$`, is
    polynomial (16 s for 41 characters). A tool's patterns are never run; the rest of its schema still is."""
    nested = {"type": "object", "properties": {"q": {"type": "string", "pattern": "^(a+)+$"}}}
    flat = {"type": "object", "properties": {"q": {"type": "string", "pattern": "^" + "a*" * 9 + "$"}}}
    typed = {
        "type": "object",
        "properties": {"q": {"type": "string", "pattern": "^INC-[0-9]+$"}},
        "required": ["q"],
    }
    with HealthWatch(proxy.url) as watch:
        assert _call_with_schema(proxy, mock, token, nested, {"q": "a" * 26 + "!"}).status_code == 200
        assert _call_with_schema(proxy, mock, token, flat, {"q": "a" * 41 + "!"}).status_code == 200
        assert _call_with_schema(proxy, mock, token, typed, {"q": 7}).status_code == 200
        time.sleep(0.2)
    watch.check()
    (_, kind, detail), (_, kind2, detail2), (_, kind3, detail3) = _verdicts(core)
    assert (kind, kind2) == ("ok", "ok"), (detail, detail2)  # the pattern is not enforced
    assert kind3 == "schema", detail3  # the type still is
    props = {"type": "object", "patternProperties": {"^x": {"type": "string"}}, "additionalProperties": False}
    verdict = toolcheck.check_calls({"t": props}, [toolcheck.ToolCall("1", "t", '{"x1": "a"}')])[0]
    assert verdict.kind == "unchecked" and "patternProperties" in verdict.detail
