"""Dependencies: floors past the known advisories, no plaintext keyring backends pulled in, and CI's
dependency-advisory check (.ci/audit.py over pip-audit) failing on a fixable finding, and on an audit
that could not see any advisory at all, before the tests run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"aiohttp": "3.14.1", "orjson": "3.11.6"}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    return {r.name.lower(): r for r in reqs}


def test_floors_exclude_versions_with_known_advisories() -> None:
    reqs = requirements()
    for name, floor in FLOORS.items():
        spec = reqs[name].specifier
        assert not spec.contains(_just_below(floor)), (name, str(spec))
        assert spec.contains(floor), (name, str(spec))


def _just_below(version: str) -> str:
    """'3.14.1' -> '3.14.0', '3.14.0' -> '3.13.99': the release before the floor."""
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor}.{patch - 1}" if patch else f"{major}.{minor - 1}.99"


def test_no_plaintext_keyring_backends() -> None:
    assert "keyrings.alt" not in requirements()
    for path in (ROOT / "app").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+keyrings", path.read_text(), re.M), path
    from app.core.secrets import _REJECTED_MODULES

    assert "keyrings.alt" in _REJECTED_MODULES  # refused even where a user installed it


def test_ci_audits_dependencies_before_the_tests() -> None:
    assert "pip-audit" in requirements()
    script = (ROOT / ".ci" / "run").read_text()
    assert script.index("python .ci/audit.py") < script.index('bash -c "$test_cmd"')


FAKE_PIP_AUDIT = """
import json, os, sys
print(json.dumps(json.loads(os.environ["FAKE_AUDIT_REPORT"])))
sys.exit(int(os.environ.get("FAKE_AUDIT_EXIT", "0")))
"""


@pytest.mark.parametrize(
    "report,code,says",
    [
        (
            {"dependencies": [{"name": "aiohttp", "version": "3.14.5", "vulns": []}], "fixes": []},
            0,
            "0 fixable",
        ),
        (
            {
                "dependencies": [
                    {
                        "name": "aiohttp",
                        "version": "3.13.0",
                        "vulns": [{"id": "GHSA-test-1", "fix_versions": ["3.13.3"], "aliases": []}],
                    }
                ],
                "fixes": [],
            },
            1,
            "GHSA-test-1 fixed in 3.13.3",
        ),
        (
            {
                "dependencies": [
                    {
                        "name": "orjson",
                        "version": "3.11.6",
                        "vulns": [{"id": "PYSEC-test-2", "fix_versions": [], "aliases": []}],
                    }
                ],
                "fixes": [],
            },
            0,
            "without a fix yet",
        ),
        (
            {
                "dependencies": [{"name": "aiohttp", "skip_reason": "Dependency not found on PyPI"}],
                "fixes": [],
            },
            2,
            "nothing could be audited",
        ),
    ],
)
def test_the_audit_step_fails_on_fixable_findings_and_on_blindness(
    tmp_path: Path, report, code, says
) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "fake" / "pip_audit"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        FAKE_PIP_AUDIT
    )  # the real one needs the network; its report shape is kept
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "fake"),
        "FAKE_AUDIT_REPORT": json.dumps(report),
        "FAKE_AUDIT_EXIT": "1" if code == 1 else "0",
    }
    env.pop("DOWNSHIFT_SKIP_AUDIT", None)
    run = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py")], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == code, run.stdout + run.stderr
    assert says in run.stdout
