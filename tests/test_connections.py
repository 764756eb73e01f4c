"""Idle and slow sockets: a connection that sends no request head in time is closed, a request body that
stops arriving ends with a 408, a peer's connections are capped (the longest-idle one gives way to a new
one), and none of it touches a long streamed answer. The last test runs `downshift serve` with a low
file-descriptor limit and 300 hostile sockets while an agent-like client keeps making calls."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls

from app.testing.ports import free_port
from app.testing.script import Reply

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> bool:
    """True when the server closes `sock` within `seconds` (sending `drip` a byte at a time meanwhile)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        try:
            if drip and i < len(drip):
                sock.send(drip[i : i + 1])
                i += 1
            data = sock.recv(4096)
            if not data:
                return True
        except TimeoutError:
            continue
        except OSError:  # reset
            return True
    return False


@pytest.fixture
def quick(proxy):  # type: ignore[no-untyped-def]
    """The proxy with its connection timeouts cut to a second, swept five times a second."""
    guard = proxy.server.guard
    guard.HEADER_TIMEOUT_S, guard.BODY_IDLE_S, guard.SWEEP_S = 1.0, 1.0, 0.2
    time.sleep(1.1)  # the sweep's current sleep ends; the next ones are short
    return proxy


def test_idle_and_drip_fed_connections_are_closed(quick) -> None:  # type: ignore[no-untyped-def]
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{quick.port}\r\nContent-Type: application/json\r\n"
    with (
        socket.create_connection(("127.0.0.1", quick.port)) as idle,
        socket.create_connection(("127.0.0.1", quick.port)) as drip,
    ):
        assert closed_within(idle, 5)
        assert closed_within(drip, 5, drip=head.encode() * 10)  # a byte every 0.2 s, never a whole head
    assert quick.server.guard.closed["head_timeout"] >= 2


def test_a_stalled_body_gets_408_in_the_callers_shape(quick, token, core, mock) -> None:  # type: ignore[no-untyped-def]
    for path, shape in (("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")):
        with socket.create_connection(("127.0.0.1", quick.port)) as sock:
            sock.sendall(
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                    'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": '
                ).encode()
            )
            sock.settimeout(10)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert (b'"type":"error"' in answer) == (shape == "anthropic") and b"stopped arriving" in answer
    rows = logged_calls(core)  # an authenticated call: it has its row
    assert [(r["status"], r["error_kind"]) for r in rows] == [(408, "body_timeout")] * 2
    assert mock.requests == []


def test_long_streamed_answers_outlive_the_timeouts(quick, token, mock) -> None:  # type: ignore[no-untyped-def]
    words = " ".join(f"w{i}" for i in range(30))
    mock.enqueue(Reply(text=words, chunk_delay=0.1, first_byte_delay=1.5))  # 4.5 s with 1 s timeouts
    with socket.create_connection(("127.0.0.1", quick.port)) as idle:  # and an idle neighbour is still closed
        with httpx.stream(
            "POST",
            f"{quick.url}/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as r:
            text = "".join(r.iter_text())
        assert r.status_code == 200 and "w29" in text and "[DONE]" in text
        assert closed_within(idle, 1)


def test_connections_per_peer_are_capped_and_idle_ones_give_way(proxy, token) -> None:  # type: ignore[no-untyped-def]
    guard = proxy.server.guard
    guard.cap = 20
    hogs = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(60)]
    try:
        deadline = time.monotonic() + 5
        while guard.open_connections > 20 or guard.closed["evicted"] + guard.closed["refused"] < 40:
            assert time.monotonic() < deadline, guard.snapshot()
            time.sleep(0.05)
        time.sleep(guard.GRACE_S * 2)  # past the grace a new connection has to send its head
        for _ in range(5):  # an agent still gets in: the longest-open hog gives way
            r = httpx.post(
                f"{proxy.url}/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert r.status_code == 200
        assert guard.open_connections <= 20 and guard.closed["evicted"] >= 1
        given_up = guard.closed["evicted"] + guard.closed["refused"]
        assert (
            given_up >= 41 and sum(closed_within(s, 0.01) for s in hogs) == given_up
        )  # the agent's one is open
    finally:
        for s in hogs:
            s.close()


def test_the_sweep_reads_what_aiohttp_still_has() -> None:
    """The guard reads two attributes of aiohttp's RequestHandler; an aiohttp that renames them fails here."""
    from aiohttp.web_protocol import RequestHandler

    assert {"_current_request", "_request_count"} <= set(RequestHandler.__slots__)


# ----------------------------------------------------------------------------------------------- fd exhaustion


def _lower_fd_limit() -> None:  # in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


FD_LIMIT = 128
HOSTILE = 300


class Attacker(threading.Thread):
    """Keeps HOSTILE sockets open against the proxy: a third idle, a third dripping a request head a byte at a
    time, a third with a whole head and a body that never comes. A socket the proxy closes is opened again
    0.5-2 s later (slowloris-style; a flood of thousands of new connections a second is another attack)."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.reopened = port, threading.Event(), 0
        self.heads = [
            b"",
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000,
            (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            ).encode(),
        ]
        self.socks: list[tuple[socket.socket | None, int, int]] = [(None, i % 3, 0) for i in range(HOSTILE)]
        self.closed_at = [0.0] * HOSTILE
        self.pause = [random.uniform(0.5, 2.0) for _ in range(HOSTILE)]

    def _open(self, kind: int) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            s.setblocking(False)
            if kind == 2:
                s.send(self.heads[2])
            return s
        except OSError:
            return None

    def run(self) -> None:
        while not self.stop.is_set():
            for i, (s, kind, sent) in enumerate(self.socks):
                if self.stop.is_set():
                    break
                alive = s is not None
                if alive:
                    try:
                        if s.recv(4096) == b"":
                            alive = False
                    except BlockingIOError:
                        pass
                    except OSError:
                        alive = False
                    if alive and kind == 1 and sent < len(self.heads[1]):
                        try:
                            sent += s.send(self.heads[1][sent : sent + 1])
                        except OSError:
                            alive = False
                if not alive:
                    now = time.monotonic()
                    if s is not None:
                        s.close()
                        s, self.closed_at[i] = None, now
                    if now - self.closed_at[i] >= self.pause[i]:
                        s, sent = self._open(kind), 0
                        self.reopened += s is not None and self.closed_at[i] > 0
                self.socks[i] = (s, kind, sent)
            time.sleep(0.05)
        for s, _, _ in self.socks:
            if s is not None:
                s.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is a POSIX limit")
def test_hostile_sockets_do_not_starve_agents_of_descriptors(tmp_path: Path, mock, config_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    token = "ds-fd-test-token-0123456789"
    env = {**os.environ, "DOWNSHIFT_TOKEN": token, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--config",
            str(config_path),
            "--db",
            f"sqlite:///{tmp_path / 'serve.db'}",
            "--port",
            str(port),
        ],
        preexec_fn=_lower_fd_limit,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    attacker = Attacker(port, token)
    try:
        assert "proxy on" in proc.stdout.readline()  # type: ignore[union-attr]
        attacker.start()
        time.sleep(3)  # the hostile sockets are all up (or being reopened as the proxy closes them)
        latencies = []
        with httpx.Client(timeout=15, headers={"Authorization": f"Bearer {token}"}) as agent:
            for i in range(30):
                start = time.monotonic()
                if i % 3 == 0:  # a fresh connection now and then, as agents with small pools do
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        json=CHAT,
                        timeout=15,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                else:
                    r = agent.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT)
                assert r.status_code == 200, r.text
                latencies.append(time.monotonic() - start)
                time.sleep(0.1)
        status = httpx.get(
            f"http://127.0.0.1:{port}/downshift/status",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        ).json()
        assert status["connections"]["cap_per_peer"] < FD_LIMIT // 2
        assert status["connections"]["closed"]["evicted"] > 0 and attacker.reopened > 0
        assert max(latencies) < 5, latencies
    finally:
        attacker.stop.set()
        attacker.join(10)
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Too many open files" not in err, err[-2000:]
