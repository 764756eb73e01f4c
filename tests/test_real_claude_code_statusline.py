"""The real Claude Code (pinned in tests/agents/node) showing `downshift statusline` in its status bar.

`downshift statusline install` writes the statusLine entry into a fresh HOME's ~/.claude/settings.json; Claude
Code runs interactively in a pseudo-terminal (the status line exists only in the TUI) with the variables from
`downshift env --agent claude-code`, and the line it draws is Downshift's, with this session's figures from the
log the proxy wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import httpx
import pytest
from agents.harness import REPO, agents_mark, claude_binary, downshift_env, require, sealed_env
from conftest import logged_calls

from app.testing.script import Reply, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(120)]
SESSION = "5b6a3c1e-1111-4222-8333-944455556666"
_COLUMN = re.compile(rb"\x1b\[\d*G")  # the TUI places words by column: read those as a space
_ESCAPE = re.compile(rb"\x1b\[[0-9;?>=]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[78]")


def plain(screen: bytes) -> str:
    """The terminal output without escape sequences, cursor moves to a column read as one space."""
    return _ESCAPE.sub(b"", _COLUMN.sub(b" ", screen)).decode("utf-8", "replace")


def test_claude_code_draws_the_downshift_line(
    tmp_path: Path, proxy, mock, core, config_path: Path, token: str
) -> None:  # type: ignore[no-untyped-def]
    binary = require("Claude Code (npm @anthropic-ai/claude-code)", claude_binary())
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    variables = downshift_env("claude-code", config_path, proxy.url, token)
    env = sealed_env(
        home,
        {
            **variables,
            "TERM": "xterm-256color",
            "DISABLE_AUTOUPDATER": "1",
            "DOWNSHIFT_CONFIG": str(config_path),
            "DOWNSHIFT_DB_URL": core.db_url,
        },
    )
    installed = subprocess.run(
        [sys.executable, "-m", "app", "statusline", "install"],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    # skip the first-run screens (theme, trust) the way a user who answered them once would
    (home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "theme": "dark",
                "projects": {str(work): {"hasTrustDialogAccepted": True}},
            }
        )
    )
    # one earlier call of this session, as Claude Code itself would have made it
    mock.default = Reply(text="hi", usage=Usage(prompt=3000, completion=30))
    r = httpx.post(
        f"{proxy.url}/v1/messages",
        headers={"Authorization": f"Bearer {token}", "X-Claude-Code-Session-Id": SESSION},
        json={"model": "default", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    (row,) = logged_calls(core)

    pid, fd = pty.fork()
    if pid == 0:  # the child: Claude Code's TUI in the pty
        os.chdir(work)
        os.execve(str(binary), [str(binary), "--session-id", SESSION], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # wide enough for the whole line
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "today $" not in plain(screen):
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    text = plain(screen)
    expected = f"⇣ cheap · cheapco/qwen/qwen3-coder · session ${row['cost_usd']:.3f}"
    assert expected in text and f"today ${row['cost_usd']:.3f}" in text, text[-3000:]
