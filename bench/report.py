"""Turning a run's results into the target verdicts and the markdown of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------- helpers


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def added(direct: dict[str, Any], proxied: dict[str, Any], metric: str, stat: str) -> float | None:
    a, b = _get(direct, metric, stat), _get(proxied, metric, stat)
    return None if a is None or b is None else b - a


def cpu_ms(res: dict[str, Any] | None) -> float | None:
    return _get(res, "cpu_ms_per_call", "target")


def f(v: float | None, digits: int = 2, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def one_line(direct: dict[str, Any], proxied: dict[str, Any]) -> str:
    parts = [
        f"{proxied['calls']} calls",
        f"p50 {f(_get(proxied, 'latency_ms', 'p50'))} ms ({f(added(direct, proxied, 'latency_ms', 'p50'), signed=True)})",
        f"p99 ({f(added(direct, proxied, 'latency_ms', 'p99'), signed=True)})",
        f"ttfb ({f(added(direct, proxied, 'ttfb_ms', 'p50'), signed=True)})",
        f"cpu {f(cpu_ms(proxied))} ms/call",
    ]
    w = proxied.get("runqueue_wait_share") or {}
    vals = [v for v in w.values() if v is not None]
    if vals and max(vals) > 0.15:
        parts.append(f"waited for a CPU {max(vals) * 100:.0f}% of the time")
    if proxied.get("errors"):
        parts.append(f"ERRORS {proxied['errors']}: {proxied.get('first_error')}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------------- targets

# CPU per call of a bare relay (aiohttp client, no logging) on the machine the issue's budgets come from.
ISSUE_RELAY_CPU = {"whole": 0.4, "stream": 0.6}


def _scenario(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    for s in results.get("scenarios", []):
        if s["key"] == key:
            return s
    return None


def _verdict(
    what: str,
    scenario: str,
    value: float | None,
    budget: float,
    unit: str,
    *,
    op: str = "<=",
    aim: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "what": what,
        "scenario": scenario,
        "value": value,
        "budget": budget,
        "unit": unit,
        "op": op,
        "aim": aim,
        "note": note,
    }
    if value is None:
        row.update(met=None, margin="not measured" + (f" ({note})" if note else ""))
        return row
    if op == "<=" and budget == 0:
        row.update(met=value <= 0, margin="none" if value <= 0 else f"{value:,.0f} {unit}")
        return row
    if op in ("<=", "<"):
        met = value <= budget if op == "<=" else value < budget
        diff = budget - value
        pct = (value / budget * 100) if budget else 0
        margin = (
            f"{diff:.2f} {unit} under ({pct:.0f}% of budget)"
            if met
            else f"{-diff:.2f} {unit} over (+{pct - 100:.0f}%)"
        )
        if aim is not None and met:
            margin += f"; aim {aim:g} {unit} " + (
                "met" if value <= aim else f"missed by {value - aim:.2f} {unit}"
            )
    else:  # ">="
        met = value >= budget
        margin = (
            f"{value - budget:,.0f} {unit} above"
            if met
            else f"{budget - value:,.0f} {unit} short ({value / budget * 100:.0f}% of target)"
        )
    row.update(met=met, margin=margin)
    return row


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    skipped = {s["what"]: s["reason"] for s in results.get("skips", [])}

    floor = {c["key"]: c["result"] for c in results.get("comparisons", []) if c["peer"].startswith("bare")}

    def cpu_row(what: str, key: str, budget: float, aim: float | None = None) -> None:
        s = _scenario(results, key)
        path = key.split("-")[0]
        note = skipped.get(f"downshift {path} path", "") if s is None else ""
        value = cpu_ms(s["downshift"]) if s else None
        row = _verdict(what, key, value, budget, "ms", aim=aim, note=note[:120])
        relay_key = key.replace("gateway-", "anthropic-")
        relay = cpu_ms(floor.get(relay_key))
        speed_ref = cpu_ms(floor.get("openai-30k-ns-c1"))
        if relay and speed_ref and value is not None:
            # Downshift's own work = its CPU minus the bare relay's on the same call in the same run. The issue
            # allows (budget - its bare relay) for it, on a machine where that relay cost 0.4 ms per
            # non-streamed call; that allowance is scaled by how much slower the same relay is here.
            issue_relay = ISSUE_RELAY_CPU["stream" if "-s" in key else "whole"]
            speed = speed_ref / ISSUE_RELAY_CPU["whole"]
            own, allowed = value - relay, (budget - issue_relay) * speed
            row.update(own_ms=own, own_allowed_ms=allowed, own_met=own <= allowed)
            row["margin"] += (
                f". Own work (minus the bare relay's {relay:.2f} ms): {own:.2f} ms, against the "
                f"issue's {budget - issue_relay:.1f} ms x {speed:.1f} (this machine is {speed:.1f}x "
                f"slower on the relay) = {allowed:.1f} ms: " + ("met" if own <= allowed else "**not met**")
            )
        rows.append(row)

    def added_row(what: str, key: str, metric: str, stat: str, budget: float, op: str = "<") -> None:
        s = _scenario(results, key)
        rows.append(
            _verdict(
                what,
                key,
                added(s["direct"], s["downshift"], metric, stat) if s else None,
                budget,
                "ms",
                op=op,
            )
        )

    cpu_row("CPU per non-streamed 30 KB call, c=1", "openai-30k-ns-c1", 1.5, aim=1.0)
    cpu_row("CPU per streamed call of 24 events, c=1", "openai-30k-s20-c1", 2.0)
    cpu_row("CPU per call, Anthropic gateway path, c=1", "gateway-30k-ns-c1", 2.0)
    cpu_row("CPU per streamed call, Anthropic gateway path, c=1", "gateway-30k-s20-c1", 2.5)
    if _scenario(results, "gateway-30k-ns-c1") is None:  # the passthrough Anthropic path, for reference
        cpu_row("(reference) CPU per call, Anthropic passthrough, c=1", "anthropic-30k-ns-c1", 2.0)
        cpu_row("(reference) CPU per streamed call, Anthropic passthrough, c=1", "anthropic-30k-s20-c1", 2.5)
    added_row("Added latency p50, c=1", "openai-30k-ns-c1", "latency_ms", "p50", 1.5)
    added_row("Added latency p99, c=1", "openai-30k-ns-c1", "latency_ms", "p99", 5.0)
    added_row("Added time to first byte (p50), streamed, c=1", "openai-30k-s20-c1", "ttfb_ms", "p50", 1.0)
    if _scenario(results, "gateway-30k-s20-c1"):
        added_row(
            "Added time to first byte (p50), gateway streamed, c=1",
            "gateway-30k-s20-c1",
            "ttfb_ms",
            "p50",
            1.0,
        )
    for key in ("openai-30k-s20-c1", "openai-30k-s200-c1"):
        s = _scenario(results, key)
        for stat in ("p50", "p99"):
            v = added(s["direct"], s["downshift"], "gap_ms", stat) if s else None
            rows.append(
                _verdict(
                    f"Inter-chunk delay {stat}: proxy vs direct, absolute difference",
                    key,
                    None if v is None else abs(v),
                    1.0,
                    "ms",
                )
            )
    for shape in ("ns", "s20"):
        a, b = _scenario(results, f"openai-30k-{shape}-c1"), _scenario(results, f"openai-30k-{shape}-c32")
        ratio = None
        if a and b and cpu_ms(a["downshift"]) and cpu_ms(b["downshift"]) is not None:
            ratio = cpu_ms(b["downshift"]) / cpu_ms(a["downshift"])
        rows.append(_verdict("CPU per call at c=32 / at c=1", f"openai-30k-{shape}", ratio, 1.5, "x"))
    lg = _get(results, "logging", "core")
    note = skipped.get("logging (core)", "")[:120]
    rows.append(
        _verdict(
            "Call log rows per second, one producer flat out (writer as the proxy runs it)",
            "LogWriter + hooks",
            _get(lg, "burst", "rows_per_s"),
            5000,
            "rows/s",
            op=">=",
            note=note,
        )
    )
    target_rate = float(_get(lg, "paced", "target_rate") or 5000)
    rows.append(
        _verdict(
            f"Call log paced at {target_rate:,.0f} calls/s: rows on disk per second",
            "LogWriter + hooks",
            _get(lg, "paced", "rows_per_s"),
            target_rate * 0.95,
            "rows/s",
            op=">=",
            note=note,
        )
    )
    lost = None if lg is None else lg["rows_lost"] + lg["writer_dropped"]
    rows.append(_verdict("Call log rows lost", "LogWriter + hooks", lost, 0, "rows", note=note))
    small, every = rss_under_load(results)
    rows.append(
        _verdict(
            "Headless serve resident memory under load, 30 KB bodies",
            "30 KB scenarios",
            small,
            100,
            "MB",
            op="<",
        )
    )
    rows.append(
        _verdict(
            "Headless serve resident memory under load, 300 KB bodies x 32 included",
            "all scenarios",
            every,
            100,
            "MB",
            op="<",
        )
    )
    for key, when in (("gui", "first launch, creates the call log"), ("gui_again", "a later launch")):
        gui = _get(results, "startup", key)
        if key == "gui_again" and gui is None:
            continue  # results from before the suite launched the app twice
        scenario = f"python -m app, offscreen, {when}"
        if _get(gui, "seconds_to_window") is not None:
            rows.append(
                _verdict("GUI window shown after launch", scenario, _get(gui, "seconds_to_window"), 1.5, "s")
            )
        else:
            rows.append(
                _verdict(
                    "GUI start (stand-in: launch -> embedded proxy /health)",
                    scenario,
                    _get(gui, "seconds_to_proxy_health"),
                    1.5,
                    "s",
                    note=skipped.get("gui start", "")[:160],
                )
            )
        rows.append(
            _verdict(
                "GUI idle resident memory",
                scenario,
                _get(gui, "idle_rss_mb"),
                200,
                "MB",
                op="<",
                note=skipped.get("gui start", "")[:160],
            )
        )
    return rows


def rss_under_load(results: dict[str, Any]) -> tuple[float | None, float | None]:
    """Max RSS of serve over the 30 KB scenarios run before any 300 KB one (memory is not given back), and
    over every scenario."""
    small: list[float] = []
    every: list[float] = []
    big_seen = False
    for s in results.get("scenarios", []):
        r = _get(s["downshift"], "rss_mb", "target")
        if r is None:
            continue
        big_seen = big_seen or s["case"]["size_kb"] > 30
        every.append(r)
        if not big_seen:
            small.append(r)
    return (max(small) if small else None), (max(every) if every else None)


def targets_text(rows: list[dict[str, Any]]) -> str:
    lines = ["", "Targets:"]
    for r in rows:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[r["met"]]
        value = "–" if r["value"] is None else f"{r['value']:,.2f}"
        lines.append(
            f"  {mark} {r['what']} [{r['scenario']}]: {value} {r['unit']} (budget {r['op']} {r['budget']:g}) "
            f"— {r['margin']}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- markdown


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _pair(direct: dict[str, Any], proxied: dict[str, Any], metric: str, stat: str) -> str:
    a, b = _get(direct, metric, stat), _get(proxied, metric, stat)
    if a is None or b is None:
        return "–"
    return f"{a:.2f} / {b:.2f} (**{b - a:+.2f}**)"


SHAPE_TITLES = {
    "ns": "whole",
    "s20": "20 chunks",
    "s200": "200 chunks",
    "ns_tool": "whole + tool call",
    "s20_tool": "20 chunks + tool call",
}


def _scenario_rows(items: list[dict[str, Any]], proxied_key: str = "downshift") -> list[list[str]]:
    rows = []
    for s in items:
        c, d, p = s["case"], s["direct"], s[proxied_key]
        gap = "–"
        if _get(p, "gap_ms", "p50") is not None:
            gap = (
                f"{f(_get(d, 'gap_ms', 'p50'))} / {f(_get(p, 'gap_ms', 'p50'))}; "
                f"{f(_get(d, 'gap_ms', 'p99'))} / {f(_get(p, 'gap_ms', 'p99'))}"
            )
        errors = p.get("errors", 0) + d.get("errors", 0)
        rows.append(
            [
                f"{c['size_kb']} KB",
                SHAPE_TITLES.get(c["shape"], c["shape"]),
                str(c["concurrency"]),
                str(p["calls"]) + (f" ({errors} err)" if errors else ""),
                f"{f(d.get('throughput_rps'), 0)} / {f(p.get('throughput_rps'), 0)}",
                _pair(d, p, "latency_ms", "p50"),
                _pair(d, p, "latency_ms", "p99"),
                _pair(d, p, "ttfb_ms", "p50"),
                gap,
                f"**{f(cpu_ms(p))}**",
                f"{f(_get(p, 'utilisation', 'target') and _get(p, 'utilisation', 'target') * 100, 0)}%",
                f"{f(((_get(p, 'utilisation', 'mock') or 0) + (_get(p, 'utilisation', 'loadgen') or 0)) * 100, 0)}%",
                f"{f(_get(d, 'cpu_ms_per_call', 'target'))} / {f(_get(p, 'cpu_ms_per_call', 'loadgen'))}",
                noise(p),
            ]
        )
    return rows


SCENARIO_HEADER = [
    "body",
    "answer",
    "c",
    "calls",
    "calls/s direct / proxy",
    "latency p50 ms: direct / proxy (added)",
    "p99 ms: direct / proxy (added)",
    "TTFB p50 ms: direct / proxy (added)",
    "inter-chunk p50; p99 ms: direct / proxy",
    "proxy CPU ms/call",
    "proxy core busy",
    "CPU-1 busy (mock+loadgen)",
    "mock / loadgen CPU ms/call",
    "waiting for a CPU: proxy / mock+loadgen",
]


def noise(res: dict[str, Any] | None) -> str:
    """Share of its time the proxy / the driver side (mock, load generator) spent waiting for a CPU."""
    w = _get(res, "runqueue_wait_share") or {}
    if not w or w.get("target") is None:
        return "–"
    driver = max(v for k, v in w.items() if k != "target" and v is not None) if len(w) > 1 else 0.0
    text = f"{w['target'] * 100:.0f}% / {driver * 100:.0f}%"
    return f"**{text}**" if max(w["target"], driver) > 0.15 else text


def _intro(results: dict[str, Any]) -> list[str]:
    """Title, how the file was made, and the commands that remake it."""
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `{results['command']}` on {m['date']} in {results.get('elapsed_s', 0):.0f} s. "
        "Do not edit by hand: re-run the suite (the *Notes* section comes from `bench/notes.md`).",
        "",
        "```bash",
        "python -m bench              # full run (~6 min on 2 cores): writes this file and bench/out/latest.json",
        "python -m bench --compare    # also LiteLLM and claude-code-router (installed into bench/.venvs/ on first use)",
        "python -m bench --smoke      # every scenario kind once with tiny counts (CI: tests/test_bench_smoke.py)",
        "python -m bench --only proxy # or compare / ablate / logging / startup (repeatable)",
        "python -m bench --only proxy --cases 'openai-30k-*-c1'   # a few scenarios, e.g. after a fix",
        "python -m bench --ablate     # also: what the analytics hooks, the log and the GIL switch interval cost",
        "python -m bench --nice -10   # as root on a shared machine: measured processes ahead of other jobs",
        "python -m bench.profile_proxy openai-30k-s20-c1   # py-spy profile of serve on one scenario",
        "```",
        "",
        "## Machine",
        "",
    ]
    return out


def _machine(results: dict[str, Any]) -> list[str]:
    """The machine and package versions the figures were measured with."""
    out: list[str] = []
    m = results["machine"]
    pk = m.get("packages", {})
    vers = results.get("versions", {})
    out += _table(
        ["", ""],
        [
            ["CPU", f"{m['cpu']}" + (f" ({m['cpu_mhz']} MHz)" if m.get("cpu_mhz") else "")],
            [
                "cores",
                f"{m['cores']}; proxy pinned to CPU 0, mock + load generator to CPU 1"
                if m.get("pinned")
                else f"{m['cores']} (not pinned)",
            ],
            ["memory", f"{m['memory_gb']} GB"],
            ["OS", m["os"]],
            ["Python", m["python"]],
            [
                "Downshift",
                f"{m['downshift']} (commit {_get(m, 'git', 'commit') or '?'}, "
                f"{_get(m, 'git', 'app_files_changed') or 0} uncommitted files under app/)",
            ],
            ["packages", ", ".join(f"{k} {v}" for k, v in pk.items() if v)],
            *([["peers", ", ".join(f"{k} {v}" for k, v in vers.items() if v)]] if vers else []),
            ["date", m["date"]],
        ],
    )
    return out


def _targets(results: dict[str, Any]) -> list[str]:
    """Issue 6's targets: measured against budget."""
    out: list[str] = []
    out += [
        "",
        "## Targets",
        "",
        "From issue 6. *Added* = through the proxy minus straight to the mock, same load "
        "generator, same body, same run.",
        "",
    ]
    trows = []
    for r in results.get("targets", []):
        mark = {True: "met", False: "**not met**", None: "not measured"}[r["met"]]
        value = (
            "–"
            if r["value"] is None
            else (f"{r['value']:,.0f}" if r["unit"] in ("rows/s", "rows") else f"{r['value']:.2f}")
        )
        trows.append(
            [
                r["what"],
                f"`{r['scenario']}`",
                f"{value} {r['unit']}",
                f"{r['op']} {r['budget']:g} {r['unit']}",
                mark,
                r["margin"],
            ]
        )
    out += _table(["target", "scenario", "measured", "budget", "verdict", "margin"], trows)
    return out


def _scenarios(results: dict[str, Any]) -> list[str]:
    """Per client path: each scenario direct to the mock and through the proxy."""
    from bench.run import PATHS  # titles of the client paths

    out: list[str] = []
    out += [
        "",
        "## Downshift against the mock upstream directly",
        "",
        "Each row: the same scenario straight to the mock (*direct*) and through `python -m app serve` "
        "(*proxy*). Latency is send to last byte; TTFB is send to the first body byte (streams: first event); "
        "inter-chunk is the gap between body reads at the client. CPU is the proxy process's user+system "
        "time over the measured calls (log writer thread included). *Core busy* is that CPU over wall time; "
        "CPU-1 busy shows the driver side was not the bottleneck.",
        "",
    ]
    by_path: dict[str, list[dict[str, Any]]] = {}
    for s in results.get("scenarios", []):
        by_path.setdefault(s["case"]["path"], []).append(s)
    for path, items in by_path.items():
        out += [f"### {PATHS[path]['title']}", ""]
        out += _table(SCENARIO_HEADER, _scenario_rows(items))
        out.append("")
    return out


def _comparisons(results: dict[str, Any]) -> list[str]:
    """Against the bare relay and the other proxies (when compared)."""
    out: list[str] = []
    if results.get("comparisons"):
        out += [
            "## Compared with a bare relay and other proxies",
            "",
            "Same mock, same load generator, same bodies, same pinning; each proxy alone on CPU 0. The *bare "
            "aiohttp relay* (`bench/bare_relay.py`: bytes in, bytes out, no parsing, no logging) is the floor "
            "any aiohttp-based proxy pays on this machine; Downshift's own work is the difference.",
            "",
        ]
        rows = []
        keyed = {s["key"]: s for s in results.get("scenarios", [])}
        for comp in results["comparisons"]:
            own = keyed.get(comp["key"])
            entries = (
                [("Downshift", results["machine"]["downshift"], own["direct"], own["downshift"])]
                if own
                else []
            )
            entries.append((comp["peer"], comp["version"], comp["direct"], comp["result"]))
            for name, version, d, p in entries:
                c = comp["case"]
                rows.append(
                    [
                        f"{name} {version}",
                        c["path"],
                        SHAPE_TITLES.get(c["shape"], c["shape"]),
                        str(c["concurrency"]),
                        str(p["calls"]) + (f" ({p['errors']} err)" if p.get("errors") else ""),
                        f(added(d, p, "latency_ms", "p50")),
                        f(added(d, p, "latency_ms", "p99")),
                        f(added(d, p, "ttfb_ms", "p50")),
                        f"**{f(cpu_ms(p))}**",
                        f(p.get("throughput_rps"), 0),
                        f(_get(p, "rss_mb", "target"), 0),
                    ]
                )
        seen: set[tuple[str, ...]] = set()
        uniq = []
        for r in rows:
            k = tuple(r[:4])
            if k not in seen:
                seen.add(k)
                uniq.append(r)
        out += _table(
            [
                "proxy",
                "path",
                "answer",
                "c",
                "calls",
                "added p50 ms",
                "added p99 ms",
                "added TTFB ms",
                "CPU ms/call",
                "calls/s",
                "RSS MB",
            ],
            uniq,
        )
        out.append("")
    return out


def _ablation(results: dict[str, Any]) -> list[str]:
    """What each part of the proxy costs (when ablated)."""
    out: list[str] = []
    if results.get("ablation"):
        out += [
            "## What each part costs (ablation)",
            "",
            "The same `serve`, with one part switched off by a wrapper (`bench/serve_variant.py`; the app's code "
            "is unchanged): `no-hooks` = the log writer without the analytics hooks (tasks, usage and task "
            "totals), `no-log` = no call log at all, `switch-0.5ms` = GIL handed over every 0.5 ms instead of 5 "
            "ms. Proxy CPU ms per call; added p50 latency / added TTFB in brackets.",
            "",
        ]
        variants = list(dict.fromkeys(a["variant"] for a in results["ablation"]))
        keys = list(dict.fromkeys(a["key"] for a in results["ablation"]))
        cell = {(a["variant"], a["key"]): a for a in results["ablation"]}
        rows = []
        for key in keys:
            row = [f"`{key}`"]
            for v in variants:
                a = cell.get((v, key))
                if a is None:
                    row.append("–")
                    continue
                row.append(
                    f"**{f(cpu_ms(a['result']))}** ({f(added(a['direct'], a['result'], 'latency_ms', 'p50'))} / "
                    f"{f(added(a['direct'], a['result'], 'ttfb_ms', 'p50'))})"
                )
            rows.append(row)
        out += _table(["scenario", *variants], rows)
        out.append("")
    return out


def _log_writer(results: dict[str, Any]) -> list[str]:
    """The call log writer's throughput and cost."""
    out: list[str] = []
    out += [
        "## Call log writer",
        "",
        "`python -m bench.logbench`, pinned to CPU 0: realistic finished-call records (routed, priced, most "
        "with a checked tool call, 32 in flight) through the real `LogWriter` into a fresh SQLite file. "
        "*As the proxy runs it* is the writer `Core` builds, with its analytics hooks (tasks, hourly and "
        "task totals) in the same transaction; *bare* is the writer alone.",
        "",
    ]
    logs = results.get("logging") or {}
    if logs:
        modes = [m for m in ("core", "writer") if m in logs]
        title = {"core": "as the proxy runs it", "writer": "bare LogWriter"}

        def col(fn: Any) -> list[str]:
            return [fn(logs[m]) for m in modes]

        table = [
            [
                "burst: calls handed over by one producer, then flush()",
                *col(lambda x: f"{x['burst']['calls']:,}"),
            ],
            [
                "burst: rows per second, hand-over to on disk",
                *col(lambda x: f"**{x['burst']['rows_per_s']:,.0f}**"),
            ],
            [
                "burst: writer thread CPU per 1,000 rows",
                *col(lambda x: f"{x['burst']['writer_cpu_ms_per_1000_rows']:.0f} ms"),
            ],
            [
                "paced: calls per second asked, for seconds",
                *col(lambda x: f"{x['paced']['target_rate']:,} for {x['paced']['seconds']:.1f} s"),
            ],
            ["paced: rows per second on disk", *col(lambda x: f"**{x['paced']['rows_per_s']:,.0f}**")],
            [
                "paced: max queue depth; mean over the last second",
                *col(
                    lambda x: (
                        f"{x['paced']['max_queue_depth']:,}; {x['paced']['mean_queue_depth_last_second']:,.0f}"
                    )
                ),
            ],
            [
                "paced: last row on disk after the last call",
                *col(lambda x: f"{x['paced']['drain_after_end_ms']:.0f} ms"),
            ],
            [
                "paced: writer thread busy",
                *col(lambda x: f"{x['paced']['writer_utilisation'] * 100:.0f}% of a core"),
            ],
            [
                "agent pace (one 40 ms call at a time, 20/s): writer thread CPU per call",
                *col(
                    lambda x: (
                        f"**{x['agent_pace']['writer_cpu_ms_per_call']:.2f} ms**"
                        if x.get("agent_pace")
                        else "–"
                    )
                ),
            ],
            [
                "rows submitted / found / **lost** / dropped by the writer",
                *col(
                    lambda x: (
                        f"{x['submitted']:,} / {x['ok_rows']:,} / **{x['rows_lost']}** / {x['writer_dropped']}"
                    )
                ),
            ],
            [
                "tool-call rows expected / found",
                *col(lambda x: f"{x['tool_rows_expected']:,} / {x['tool_rows']:,}"),
            ],
        ]
        out += _table(["measure", *(title[m] for m in modes)], table)
    else:
        out.append("Not measured in this run.")
    out.append("")
    return out


def _startup(results: dict[str, Any]) -> list[str]:
    """Start-up times and resident memory."""
    out: list[str] = []
    st = results.get("startup")
    out += ["## Start-up and memory", ""]
    if st:
        rows = []
        if st.get("serve"):
            rows.append(
                [
                    "`python -m app serve` spawn -> first 200 from /health (median; fresh DB each time)",
                    f"{st['serve_start_s'] * 1000:.0f} ms ("
                    + ", ".join(f"{x['seconds'] * 1000:.0f}" for x in st["serve"])
                    + ")",
                ]
            )
            rows.append(
                ["serve resident memory, idle (3 s after start)", f"{st['serve_idle_rss_mb']:.0f} MB"]
            )
        small, every = rss_under_load(results)
        if small is not None:
            rows.append(
                [
                    "serve resident memory under load, 30 KB bodies (max before the first 300 KB scenario)",
                    f"{small:.0f} MB",
                ]
            )
        if every is not None:
            rows.append(
                [
                    "serve resident memory under load, all scenarios (300 KB bodies x 32 in flight included)",
                    f"{every:.0f} MB",
                ]
            )
        for key, when in (("gui", "first launch, creates the call log"), ("gui_again", "a later launch")):
            g = st.get(key)
            if not g:
                continue
            if g.get("seconds_to_window") is not None:
                rows.append(
                    [
                        f"GUI `python -m app` (offscreen, {when}) spawn -> first window shown ({g.get('window')})",
                        f"{g['seconds_to_window'] * 1000:.0f} ms",
                    ]
                )
            rows.append(
                [
                    f"GUI `python -m app` (offscreen, {when}) spawn -> embedded proxy /health",
                    f"{g['seconds_to_proxy_health'] * 1000:.0f} ms",
                ]
            )
            rows.append([f"GUI resident memory, idle ({when})", f"{g['idle_rss_mb']:.0f} MB"])
        out += _table(["measure", "value"], rows)
    else:
        out.append("Not measured in this run.")
    out.append("")
    return out


def _statusline(results: dict[str, Any]) -> list[str]:
    """The status line's process time."""
    out: list[str] = []
    sl = results.get("statusline")
    out += ["## Status line", ""]
    if sl:
        out.append(
            f"`downshift statusline` as Claude Code runs it after every message: Claude Code's real status JSON "
            f"on stdin, a log of {sl['calls']:,} calls ({sl['db_mb']:,.0f} MB, a session of "
            f"{sl['session_calls']} calls), {sl['runs']} runs, wall time per process (start-up included) "
            f"and its CPU time. Budget: {sl['budget_ms']:.0f} ms p99."
        )
        out.append("")
        names = [
            ("process_ms", f"installed command (`{sl['command'][:60]}...`)"),
            ("python_m_app_ms", "`python -m app statusline`"),
            ("python_I_S_startup_ms", "bare `python -I -S -c pass`"),
            ("python_startup_ms", "bare `python -c pass`"),
        ]
        rows = [
            [
                label,
                f"{sl[k]['p50']:.1f}",
                f"**{sl[k]['p99']:.1f}**" if k == "process_ms" else f"{sl[k]['p99']:.1f}",
                f"{sl[k].get('cpu_p50', 0):.1f}",
            ]
            for k, label in names
            if k in sl
        ]
        rows.append(
            [
                "the line's own work, in-process",
                f"{sl['in_process_ms']['p50']:.1f}",
                f"{sl['in_process_ms']['p99']:.1f}",
                "–",
            ]
        )
        out += _table(["command", "p50 ms", "p99 ms", "CPU p50 ms"], rows)
    else:
        out.append("Not measured in this run.")
    out.append("")
    return out


def _skips(results: dict[str, Any]) -> list[str]:
    """What was not measured, and why."""
    out: list[str] = []
    if results.get("skips"):
        out += ["## Skipped", ""]
        out += [f"- **{s['what']}**: {s['reason'][:400]}" for s in results["skips"]]
        out.append("")
    return out


def _method(results: dict[str, Any]) -> list[str]:
    """How the figures are made."""
    out: list[str] = []
    st_ = results.get("settings", {})
    out += [
        "## Method",
        "",
        "- Bodies: `app.testing.agent_traffic`, ~30 KB (10 tools, 12 tool-call turns) and ~300 KB (40 tools, 60 "
        "turns), OpenAI (aider/Codex-style) and Anthropic (Claude Code-style, cache_control breakpoints) formats; "
        "streamed requests ask for usage (`stream_options.include_usage`), so a 20-chunk OpenAI answer is 24 SSE "
        "events (role, 20 deltas, finish, usage, [DONE]).",
        f"- Answers: the project's `MockUpstream` (on uvloop) renders a 1,200-character reply whole, or as 20 or "
        f"200 content chunks {st_.get('chunk_delay_ms', '?')} ms apart (so every chunk is its own write through "
        "every hop); *+ tool call* adds an `edit_file` call, which Downshift validates against the request's "
        "tool schemas.",
        "- Routing as an agent would hit it: the OpenAI client asks for `deepseek/deepseek-chat-v3.1` (preset "
        "default -> `cheap/qwen/qwen3-coder`, kind openrouter, priced from the table), Claude Code's "
        "`claude-sonnet-4-6` matches a pattern to an Anthropic-format provider, `claude-haiku-4-5` one to the "
        "OpenAI-format provider (the gateway path). Logging on, bodies not stored (the default).",
        f"- Load: closed loop, `c` concurrent connections (keep-alive). Warm-up {st_.get('warmup_s', '?')} s "
        "unrecorded; then calls start for "
        f"{st_.get('duration_s', {}).get('ns', '?')} s (200-chunk streams {st_.get('duration_s', {}).get('s200', '?')}"
        " s) and every started call is awaited, so the CPU between the two snapshots (taken when the proxy is "
        "idle, its log writer caught up) belongs to exactly the counted calls. CPU from /proc schedstat "
        "(nanoseconds), checked against psutil's tick counts.",
        "- p99 of a run with few calls (200-chunk streams at c=1) is close to its max: read it with `calls`.",
        "- Interference: *waiting for a CPU* is the share of their time the proxy, and the mock + load generator, "
        "spent runnable but not running (/proc schedstat): other jobs on the machine. A run above 15% is repeated "
        "(within a budget) and the quietest attempt kept; figures from runs still above it (in bold) are noisy, "
        "latency percentiles most of all. CPU per call at c=1 includes waking from idle for every call and "
        "every chunk, which costs more on a busy or virtualised machine: compare with the bare relay of the "
        "same run rather than with figures from another machine.",
        "- Peers run with their defaults for a local proxy: LiteLLM `--num_workers 1` with a master key and no "
        "database; claude-code-router with logging off.",
        "",
    ]
    return out


def markdown(results: dict[str, Any], notes: Path | None = None) -> str:
    """docs/benchmarks.md from a run's results: one section per part of the suite, in reading order."""
    out: list[str] = []
    for section in (
        _intro,
        _machine,
        _targets,
        _scenarios,
        _comparisons,
        _ablation,
        _log_writer,
        _startup,
        _statusline,
        _skips,
    ):
        out += section(results)
    if notes is not None and notes.exists():  # bench/notes.md, written by hand
        out += [notes.read_text().rstrip(), ""]
    out += _method(results)
    return "\n".join(out)
