"""What the executor features cost the proxy per call: the long-context rule and shadow runs.

    python -m bench.executors_overhead [--cases openai-30k-ns-c1,gateway-30k-ns-c1] [--rounds 2] [--smoke] [--json]

The harness of `python -m bench` (mock and load generator pinned to CPU 1, the proxy to CPU 0), one
`python -m app serve` per config variant, the variants interleaved round by round so that noise from other
jobs on the machine falls on all of them alike. For each variant and case: the latency the proxy adds
(p50 of proxy - direct) and the proxy's CPU per call (its process, shadow work included), and their ratio
to `off` measured in the same run. Variants:

- `off`: the bench preset as `python -m bench` runs it;
- `long_context by length`: a rule whose threshold the body's length already rules out (the common case);
- `long_context counted`: a threshold under the body's length, so every call is counted by the tokenizer
  (on a worker thread) and stays on its route: the worst case for calls near the threshold;
- `shadow 10%` / `shadow 100%`: shadow runs to a second provider on the same mock, on one call in ten /
  every call (no cap in reach), so the CPU of the shadow calls themselves is in the proxy's figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.common import DRIVER_CPU, ROOT, log, pin_self
from bench.run import FULL, PATHS, SMOKE, Case, Harness, Serve, auth_headers, config_text

PATTERNS = 'patterns = { "claude-sonnet*" = "plan", "*haiku*" = "background" }\n'
SHADOW_PROVIDER = """
[[providers]]
name = "shadow"
base_url = "{mock}/v1"
api = "openai"
kind = "openrouter"
api_key_env = "BENCH_UPSTREAM_KEY"
"""
VARIANTS: dict[str, str] = {
    "off": "",
    "long_context by length": 'long_context = { above_tokens = 1000000, role = "plan" }',
    "long_context counted": 'long_context = { above_tokens = 20000, role = "plan" }',
    "shadow 10%": 'shadow = { target = "shadow/qwen/qwen3-coder", share = 0.1, max_usd_per_day = 100000.0 }',
    "shadow 100%": 'shadow = { target = "shadow/qwen/qwen3-coder", share = 1.0, max_usd_per_day = 100000.0 }',
}


def variant_config(mock_url: str, port: int, rule: str) -> str:
    text = config_text(mock_url, port)
    if rule:
        text = text.replace(PATTERNS, PATTERNS + rule + "\n", 1)
    return text + SHADOW_PROVIDER.format(mock=mock_url)


def parse_case(key: str) -> Case:
    path, size, shape, conc = key.rsplit("-", 3)
    return Case(path, int(size.rstrip("k")), shape, int(conc.lstrip("c")))


def count_costs(n: int = 200) -> dict[str, float]:
    """In-process: the length pre-check, and the tokenizer count of the bench's 30 KB and 300 KB bodies (us/call)."""
    import time

    from app.core import long_context
    from app.core.config import LongContext
    from app.testing.agent_traffic import anthropic_agent_request, openai_agent_request

    rule = LongContext(60_000)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(100_000):
        long_context.may_exceed(rule, 30_000 + i)
    out["length pre-check (us/call)"] = (time.perf_counter() - t0) / 100_000 * 1e6
    long_context.prompt_tokens(openai_agent_request(30, 10, 12, False), "openai")  # load the tokenizer first
    for size, knobs in ((30, (10, 12)), (300, (40, 60))):
        for api, make in (("openai", openai_agent_request), ("anthropic", anthropic_agent_request)):
            body = make(size, *knobs, False)
            t0 = time.perf_counter()
            for _ in range(n // (10 if size == 300 else 1)):
                tokens = long_context.prompt_tokens(body, api)
            per = (time.perf_counter() - t0) / (n // (10 if size == 300 else 1)) * 1e6
            out[f"token count, {api} {size} KB body ({tokens:,} tokens) (us/call)"] = per
    return out


def shadow_costs(n: int = 2000, calls: int = 100) -> dict[str, float]:
    """In-process: what `ShadowRunner.offer` costs the proxy's event loop per served call (shadow off, on but not
    sampled, sampled and queued), and the CPU a worker thread spends per shadow call (prepare, send, parse,
    check, compare; measured with the thread's own CPU clock against the project's mock upstream)."""
    import random
    import tempfile

    import httpx

    from app.core.config import parse_config
    from app.core.engine import Core
    from app.core.records import CallRecord, ToolCallResult
    from app.proxy.shadow import ShadowRunner
    from app.testing.agent_traffic import openai_agent_request
    from app.testing.mock_upstream import MockUpstream
    from app.testing.script import Reply, ToolCall, Usage

    out: dict[str, float] = {}
    body = openai_agent_request(30, 10, 12, False)
    with (
        MockUpstream(
            default=Reply(
                tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=Usage(prompt=8000, completion=60)
            )
        ) as mock,
        tempfile.TemporaryDirectory() as tmp,
    ):

        def config(share: float):  # type: ignore[no-untyped-def]
            return parse_config(
                {
                    "providers": [{"name": "cheap", "base_url": f"{mock.base_url}/v1"}],
                    "presets": [
                        {"name": "off", "default": "cheap/m"},
                        {
                            "name": "on",
                            "default": "cheap/m",
                            "shadow": {"target": "cheap/cand", "share": share},
                        },
                    ],
                    "prices": {"cheap/cand": {"input": 1.0, "output": 2.0}},
                }
            )

        core = Core(Path(tmp) / "c.toml", f"sqlite:///{Path(tmp) / 'log.db'}")

        def rec(preset: str, task: str) -> CallRecord:
            r = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
            r.preset, r.role, r.outcome, r.task_key, r.provider, r.upstream_model = (
                preset,
                "default",
                "ok",
                task,
                "cheap",
                "m",
            )
            r.tool_calls = [ToolCallResult("call_1", "read_file", "ok")]
            return r

        for label, preset, share, workers in (
            ("shadow off", "off", 0.1, 0),
            ("shadow on, not sampled", "on", 1e-12, 0),
            ("shadow on, sampled and queued", "on", 1.0, 0),
        ):
            runner = ShadowRunner(core, rng=random.Random(1), workers=workers, queue_max=n + 1)
            cfg = config(share)
            recs = [rec(preset, f"t{i}") for i in range(n)]
            t0 = time.perf_counter()
            for r in recs:
                runner.offer(r, body, "openai", cfg)
            out[f"offer, {label} (us/call)"] = (time.perf_counter() - t0) / n * 1e6
        runner = ShadowRunner(core, workers=0)
        job_rec = rec("on", "w")
        runner.offer(job_rec, body, "openai", config(1.0))
        job = runner._queue.get_nowait()
        with httpx.Client() as http:
            runner.shadow_call(job, http)  # warm: imports, connection
            cpu = time.thread_time()
            wall = time.perf_counter()
            for _ in range(calls):
                row = runner.shadow_call(job, http)
            out["shadow call on its worker thread, 30 KB turn (CPU ms/call)"] = (
                (time.thread_time() - cpu) / calls * 1000
            )
            out["shadow call, wall (ms/call, mock answers at once)"] = (
                (time.perf_counter() - wall) / calls * 1000
            )
            assert row["outcome"] == "ok" and row["same_tool"], row
        core.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="openai-30k-ns-c1,gateway-30k-ns-c1")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (default: all)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "executors")
    parser.add_argument(
        "--counts-only", action="store_true", help="only the in-process pre-check and count costs"
    )
    args = parser.parse_args(argv)
    counts = {**count_costs(), **shadow_costs()}
    if args.counts_only:
        print(json.dumps(counts, indent=1))
        return 0
    cases = [parse_case(k.strip()) for k in args.cases.split(",") if k.strip()]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}")
    pin_self(DRIVER_CPU)
    args.out.mkdir(parents=True, exist_ok=True)
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with Harness(args.out, SMOKE if args.smoke else FULL) as h:
        for rnd in range(args.rounds):
            for name in names:
                serve = Serve(h, name=f"exec-{rnd}-{name.replace(' ', '_').replace('%', 'pct')}")
                serve.cfg.write_text(variant_config(h.mock_url, serve.port, VARIANTS[name]))
                serve.start()
                try:
                    for case in cases:
                        direct = h.direct(case)
                        res = h.measure(
                            case, serve.url + PATHS[case.path]["url"], auth_headers(case.path), [serve.pid]
                        )
                        samples.setdefault((name, case.key), []).append(
                            {
                                "added_p50_ms": report.added(direct, res, "latency_ms", "p50"),
                                "added_p99_ms": report.added(direct, res, "latency_ms", "p99"),
                                "cpu_ms": report.cpu_ms(res),
                                "calls": res["calls"],
                                "errors": res.get("errors", 0),
                            }
                        )
                        log(f"round {rnd + 1} {name} {case.key}: " + report.one_line(direct, res))
                finally:
                    serve.stop()
    rows = []
    for case in cases:
        base = samples.get(("off", case.key))
        for name in names:
            got = samples.get((name, case.key))
            if not got:
                continue
            added = statistics.median(g["added_p50_ms"] for g in got)
            cpu = statistics.median(g["cpu_ms"] for g in got)
            row = {
                "variant": name,
                "case": case.key,
                "added_p50_ms": added,
                "cpu_ms_per_call": cpu,
                "errors": sum(g["errors"] or 0 for g in got),
                "rounds": len(got),
            }
            if base:
                b_added = statistics.median(g["added_p50_ms"] for g in base)
                b_cpu = statistics.median(g["cpu_ms"] for g in base)
                row["added_vs_off"] = added / b_added if b_added else None
                row["cpu_vs_off"] = cpu / b_cpu if b_cpu else None
            rows.append(row)
    (args.out / "latest.json").write_text(
        json.dumps(
            {"rows": rows, "counts": counts, "samples": {f"{k[0]}|{k[1]}": v for k, v in samples.items()}},
            indent=1,
            default=str,
        )
    )
    if args.json:
        print(json.dumps({"rows": rows, "counts": counts}, indent=1))
        return 0
    print(f"{'variant':24} {'case':20} {'added p50 ms':>12} {'x off':>6} {'cpu ms/call':>11} {'x off':>6}")
    for r in rows:
        ratio = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(
            f"{r['variant']:24} {r['case']:20} {r['added_p50_ms']:12.2f} {ratio(r.get('added_vs_off')):>6}"
            f" {r['cpu_ms_per_call']:11.2f} {ratio(r.get('cpu_vs_off')):>6}"
        )
    for name, value in counts.items():
        print(f"{name}: {value:,.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
