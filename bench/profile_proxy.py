"""Profile the proxy on one benchmark scenario: where does its per-call CPU go?

    python -m bench.profile_proxy openai-30k-ns-c1 [--seconds 15] [--rate 2000]

Starts the same mock, load generator and `python -m app serve` as the suite (same pinning), drives the
scenario for `--seconds` while `py-spy record` samples the serve process, then writes to bench/out/profile/:
`<scenario>.txt` (collapsed stacks), `<scenario>.svg` (flame graph) and prints the functions with the most
self time and the most inclusive time, as a share of the proxy's busy samples. Needs py-spy
(`pip install py-spy`) and ptrace rights (root, or kernel.yama.ptrace_scope = 0).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from bench.common import ROOT, log
from bench.run import FULL, PATHS, Case, Harness, Serve, auth_headers

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_case(key: str) -> Case:
    m = re.fullmatch(r"(openai|anthropic|gateway)-(\d+)k-(ns|s20|s200|ns_tool|s20_tool)-c(\d+)", key)
    if not m:
        raise SystemExit(f"scenario {key!r}: expected e.g. openai-30k-ns-c1 (path-sizek-shape-cN)")
    return Case(m[1], int(m[2]), m[3], int(m[4]))


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "/work/main/", str(ROOT) + "/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m['func']} ({file})"


def _load(collapsed: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short(f) for f in stack.split(";")[1:]]  # first element: process/thread name
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def _shares(
    stacks: list[tuple[list[str], int]], total: int, top: int, own_only: bool = False
) -> tuple[list[str], list[str]]:
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, n in stacks:
        self_t[frames[-1]] += n
        for fr in set(frames):
            incl[fr] += n
    pick = (lambda fr: "(app/" in fr) if own_only else (lambda fr: True)
    s = [f"  {n / total * 100:5.1f}%  {fr}" for fr, n in self_t.most_common() if pick(fr)][:top]
    i = [f"  {n / total * 100:5.1f}%  {fr}" for fr, n in incl.most_common() if pick(fr)][:top]
    return s, i


def summarize(collapsed: Path, top: int = 30) -> str:
    """Self and inclusive shares of the busy samples: all threads, then the event loop thread and the log
    writer thread apart (shares stay relative to all busy samples, so they add up across the two)."""
    stacks = _load(collapsed)
    total = sum(n for _, n in stacks) or 1
    out = [f"{total} busy samples"]
    self_all, incl_all = _shares(stacks, total, top)
    out += ["", "self time, all threads:", *self_all, "", "inclusive time, all threads:", *incl_all]
    for title, marker in (("event loop thread", "ProxyThread._run"), ("log writer thread", "LogWriter._run")):
        part = [(f, n) for f, n in stacks if any(marker in fr for fr in f)]
        share = sum(n for _, n in part) / total * 100
        _, own = _shares(part, total, top, own_only=True)
        self_part, _ = _shares(part, total, top)
        out += [
            "",
            f"{title}: {share:.1f}% of busy samples",
            "  self time:",
            *self_part[: top // 2],
            "  inclusive, Downshift's own functions:",
            *own,
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", help="e.g. openai-30k-ns-c1, openai-30k-s20-c1, anthropic-30k-s20-c8")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "profile")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--native", action="store_true", help="also sample C frames (uvloop, aiohttp's parsers)"
    )
    args = parser.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    case = parse_case(args.scenario)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = FULL.__class__(**{**FULL.__dict__, "duration_s": {k: args.seconds for k in FULL.duration_s}})
    with Harness(args.out / "run", settings) as h:
        serve = Serve(h)
        serve.start()
        try:
            raw = args.out / f"{case.key}.txt"
            svg = args.out / f"{case.key}.svg"
            result: dict[str, object] = {}

            def drive() -> None:
                result.update(
                    h.measure(case, serve.url + PATHS[case.path]["url"], auth_headers(case.path), [serve.pid])
                )

            t = threading.Thread(target=drive)
            t.start()
            rec = subprocess.run(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(serve.pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    *([] if args.native else ["--nonblocking"]),
                    *(["--native"] if args.native else []),
                ],
                capture_output=True,
                text=True,
            )
            t.join()
            if rec.returncode != 0:
                raise SystemExit(f"py-spy failed: {rec.stderr.strip()[-500:]}")
            # A flame graph of the same samples, for people (py-spy can't convert, so render from the raw file).
            with contextlib_suppress():
                _flamegraph(raw, svg)
            cpu = result.get("cpu_ms_per_call", {}).get("target")  # type: ignore[union-attr]
            log(
                f"{case.key}: {result.get('calls')} calls ({result.get('errors')} errors: {result.get('first_error')}), "
                f"CPU {cpu:.3f} ms/call (under the profiler: slower than in the suite)"
            )
            text = summarize(raw, args.top)
            (args.out / f"{case.key}.summary.txt").write_text(text)
            print(text)
            log(f"collapsed stacks: {raw}" + (f"; flame graph: {svg}" if svg.exists() else ""))
        finally:
            serve.stop()
    return 0


class contextlib_suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _flamegraph(raw: Path, svg: Path) -> None:
    """Render collapsed stacks as a flame graph if the `flamegraph.pl` script is around (optional)."""
    tool = shutil.which("flamegraph.pl") or shutil.which("inferno-flamegraph")
    if tool is None:
        return
    with open(raw, "rb") as src, open(svg, "wb") as dst:
        subprocess.run([tool], stdin=src, stdout=dst, check=True)


if __name__ == "__main__":
    raise SystemExit(main())
