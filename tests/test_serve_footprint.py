"""What `serve` keeps resident: Alembic only when the schema needs an upgrade, the tokenizer only when a call
needs it. Checked in fresh interpreters (this test process has imported everything already)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.core.storage import db

ROOT = Path(__file__).resolve().parent.parent


def test_head_read_from_the_files_is_alembics_head() -> None:
    assert db._head_from_files() == db.head_revision() != ""


def _run(code: str, tmp_path: Path) -> str:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PATH": "/usr/bin:/bin",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_alembic_is_imported_only_for_an_upgrade_of_an_older_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    code = (
        "import sys; from app.core.storage.db import open_database; "
        f"open_database({url!r}).dispose(); print('alembic' in sys.modules)"
    )
    assert _run(code, tmp_path) == "False"  # a new file: created from the models and stamped at head
    assert _run(code, tmp_path) == "False"  # up to date: one SELECT, no Alembic
    from alembic import command

    old = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.create_db_engine(old)
    cfg = db._alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    assert _run(code.replace(url, old), tmp_path) == "True"  # an older log: Alembic upgrades it


def test_serve_does_not_load_the_tokenizer(tmp_path: Path) -> None:
    code = (
        "import sys, time; from app.core.engine import Core; from app.proxy.server import ProxyThread; "
        f"core = Core({str(tmp_path / 'config.toml')!r}, 'sqlite:///{tmp_path / 'log.db'}'); "
        "p = ProxyThread(core, port=0).start(); time.sleep(1.5); "
        "print('tiktoken' in sys.modules); p.stop(); core.close()"
    )
    assert _run(code, tmp_path) == "False"


def test_a_call_checks_the_config_file_once(proxy, mock, token, core, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    import httpx

    from app.core.config import ConfigStore

    stats: list[str] = []
    real = ConfigStore._file_stamp

    def counting(self):  # type: ignore[no-untyped-def]
        stats.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(ConfigStore, "_file_stamp", counting)
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        stats.clear()
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={**body, "stream": stream},
            timeout=20,
        )
        assert r.status_code == 200
        assert stats.count("downshift-proxy") == 1, stats
