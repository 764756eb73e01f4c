"""CI's dependency-advisory check: pip-audit over the packages installed in the CI venv (the resolved set the
tests run against). A known vulnerability with a fixed release fails the run; one without a fix is listed.

A run that audits nothing (no vulnerability service reachable: every package skipped) fails too, because a
check that cannot see the advisories must not pass; set DOWNSHIFT_SKIP_AUDIT=1 to skip it knowingly on a
machine without internet access. Extra arguments go to pip-audit (e.g. `--vulnerability-service osv`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    if os.environ.get("DOWNSHIFT_SKIP_AUDIT") == "1":
        print("audit: skipped (DOWNSHIFT_SKIP_AUDIT=1)")
        return 0
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--skip-editable",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            *sys.argv[1:],
        ],
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(f"audit: pip-audit did not run (exit {run.returncode}):\n{run.stderr[-3000:]}")
        return 2
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    skipped = [d for d in deps if "skip_reason" in d]
    if not audited:
        reason = skipped[0]["skip_reason"] if skipped else "no packages found"
        print(
            f"audit: nothing could be audited ({len(skipped)} packages skipped, e.g. {reason}); is the "
            "vulnerability service reachable? (DOWNSHIFT_SKIP_AUDIT=1 skips this check)"
        )
        return 2
    fixable, unfixed = [], []
    for dep in audited:
        for vuln in dep.get("vulns", []):
            line = f"  {dep['name']} {dep['version']}: {vuln['id']} fixed in {', '.join(vuln['fix_versions']) or '(no fix yet)'}"
            (fixable if vuln.get("fix_versions") else unfixed).append(line)
    for title, lines in (
        ("known vulnerabilities with a fix (raise the floor in pyproject.toml)", fixable),
        ("known vulnerabilities without a fix yet (not failing the run)", unfixed),
    ):
        if lines:
            print(f"audit: {title}:", *lines, sep="\n")
    print(f"audit: {len(audited)} packages audited, {len(skipped)} skipped, {len(fixable)} fixable findings")
    return 1 if fixable else 0


if __name__ == "__main__":
    sys.exit(main())
