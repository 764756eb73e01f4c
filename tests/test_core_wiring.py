"""The core owns the log writer's wiring and the secrets the proxy uses: one place, no copies pushed around.

The writer's notices and the secrets it masks are set where the Core builds the writer; the proxy's gate, its
pipeline and the writer all read the one token the core holds (`core.credentials`)."""

from __future__ import annotations

import httpx
from conftest import PROVIDER_KEY, logged_calls

from app.core.records import CallRecord
from app.testing.script import Reply

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def test_the_core_alone_masks_secrets_and_warns_through_its_events(core) -> None:  # type: ignore[no-untyped-def]
    """No proxy exists: the writer still masks the keys and the token the core holds, and its warnings still
    reach the app as notices (before, both were set by the proxy server when it was built)."""
    notices: list[tuple[str, str]] = []
    core.events.subscribe("notice", notices.append)
    token = core.credentials.read_token()
    rec = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
    rec.provider = "cheapco"
    rec.error_kind, rec.error_message = "upstream_error", f"bad key {PROVIDER_KEY} (token {token})"
    rec.finish("error", 401)
    core.writer.finished(rec)
    assert core.writer.flush()
    [row] = logged_calls(core)
    assert PROVIDER_KEY not in row["error_message"] and token not in row["error_message"]
    assert "bad key" in row["error_message"]

    core.writer.max_pending = 0  # a full queue: the writer drops the row and says so
    core.writer.finished(CallRecord(client_api="openai", endpoint="/v1/chat/completions"))
    assert [title for title, _ in notices] == ["Call log rows dropped"]


def test_a_proxy_started_from_the_core_leaves_the_wiring_alone(core, mock, token) -> None:  # type: ignore[no-untyped-def]
    from app.proxy.server import ProxyThread

    writer = core.writer
    wired = (writer.notify, writer.secrets)
    finished: list[CallRecord] = []
    logged: list[list[CallRecord]] = []
    core.events.subscribe("call_finished", finished.append)
    core.events.subscribe("calls_logged", logged.append)
    mock.enqueue(Reply(text=f"echo {token}"))  # the answer quotes the token: masked by the pipeline
    with ProxyThread(core, port=0) as proxy:
        assert (writer.notify, writer.secrets) == wired  # the server set nothing on the writer
        assert not hasattr(proxy.server.pipeline, "local_token")  # nor pushed the token into the pipeline
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200
        assert token not in r.text
        rows = logged_calls(core)
    assert [row["outcome"] for row in rows] == ["ok"]
    assert [rec.call_id for rec in finished] == [rows[0]["call_id"]]
    assert [rec.call_id for batch in logged for rec in batch if rec.outcome == "ok"] == [rows[0]["call_id"]]
