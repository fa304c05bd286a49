#!/usr/bin/env python3
"""Summarises scripts/bench.sh runs: medians (with min-max spread) per
scenario and server, the ratios Meridian/nginx and Meridian/Varnish, the
miss storm, the memory figure and the issue's targets; prints a markdown
report and writes JSON. Stdlib only.

  bench_report.py --runs runs.jsonl --out latest.json [--meta key=value ...] [--doc FILE]
  bench_report.py --one '<one line of runs.jsonl>'   (a one-line summary)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

THROUGHPUT = ["hit_1k", "hit_100k", "hit_1m", "hotset_10k"]
SERVERS = ["meridian", "nginx", "varnish"]
LABEL = {
    "hit_1k": "hit 1 KiB",
    "hit_100k": "hit 100 KiB",
    "hit_1m": "hit 1 MiB",
    "hotset_10k": "hot set 10k x 1 KiB",
    "miss_storm": "miss storm",
}


def wrk_figures(run: dict) -> dict:
    w = run["wrk"]
    req = w["requests"]
    secs = w["duration_us"] / 1e6
    cpu_s = run["cpu_ticks"] / run["clk_tck"]
    return {
        "rps": req / secs if secs else 0.0,
        "p50_us": w["p50_us"],
        "p99_us": w["p99_us"],
        "cpu_us_per_req": cpu_s * 1e6 / req if req else None,
        "requests": req,
        "errors": w["socket_errors"] + w["non2xx"],
        "origin_requests": run["origin_requests"],
        "server_core_util": cpu_s / secs if secs else None,
    }


def memory_figures(run: dict) -> dict:
    n = run["objects"]
    resp = run["origin_response"]
    payload = n * (resp["body_bytes"] + resp["header_bytes"])
    growth = (run["rss1_kb"] - run["rss0_kb"]) * 1024
    entries = run["stats1"].get("entries", 0) - run["stats0"].get("entries", 0)
    stats_bytes = run["stats1"].get("bytes", 0) - run["stats0"].get("bytes", 0)
    return {
        "objects": n,
        "stored_entries": entries,
        "loaded_ok": run["load"]["ok"],
        "rss_growth_bytes": growth,
        "payload_bytes": payload,
        "body_bytes_each": resp["body_bytes"],
        "header_bytes_each": resp["header_bytes"],
        "overhead_bytes_per_object": (growth - payload) / n if n else None,
        "rss_growth_per_object": growth / n if n else None,
        "store_charged_bytes_per_object": stats_bytes / entries if entries else None,
    }


def one(line: str) -> str:
    run = json.loads(line)
    if run["kind"] == "wrk":
        f = wrk_figures(run)
        cpu = f["cpu_us_per_req"]
        return (
            f"{f['rps']:.0f} req/s, p50 {f['p50_us']} us, p99 {f['p99_us']} us, "
            f"{cpu:.2f} us CPU/req, server core {f['server_core_util'] * 100:.0f}% busy, "
            f"errors {f['errors']}, origin requests {f['origin_requests']}"
            if cpu is not None
            else "no requests"
        )
    if run["kind"] == "storm":
        s = run["storm"]
        return (
            f"origin requests {run['origin_requests']}, client p50 {s['p50_ms']:.0f} ms, "
            f"p99 {s['p99_ms']:.0f} ms, max {s['max_ms']:.0f} ms, ok {s['ok']}, errors {s['errors']}"
            if s["ok"]
            else f"no answers, errors {s['errors']}"
        )
    if run["kind"] == "memory":
        m = memory_figures(run)
        return (
            f"{m['stored_entries']} entries, RSS +{m['rss_growth_bytes'] / 1e6:.1f} MB, "
            f"payload {m['payload_bytes'] / 1e6:.1f} MB, "
            f"{m['overhead_bytes_per_object']:.0f} bytes/object beyond bodies and headers"
        )
    return line


def summary(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def aggregate(runs: list[dict]) -> dict:
    out: dict = {"throughput": {}, "ratios": {}, "miss_storm": {}, "memory": None, "targets": []}
    for sc in THROUGHPUT:
        per = {}
        for s in SERVERS:
            fs = [wrk_figures(r) for r in runs if r["kind"] == "wrk" and r["scenario"] == sc and r["server"] == s]
            if not fs:
                continue
            per[s] = {
                k: summary([f[k] for f in fs])
                for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "server_core_util")
            }
            per[s]["errors"] = sum(f["errors"] for f in fs)
            per[s]["origin_requests"] = sum(f["origin_requests"] for f in fs)
        if per:
            out["throughput"][sc] = per
            m = per.get("meridian")
            out["ratios"][sc] = {
                other: {
                    k: ratio(m and m[k], per.get(other, {}).get(k))
                    for k in ("rps", "p99_us", "cpu_us_per_req")
                }
                for other in ("nginx", "varnish")
                if m and other in per
            }
    for s in SERVERS:
        st = [r for r in runs if r["kind"] == "storm" and r["server"] == s]
        if st:
            out["miss_storm"][s] = {
                "origin_requests": [r["origin_requests"] for r in st],
                "p50_ms": summary([r["storm"]["p50_ms"] for r in st]),
                "p99_ms": summary([r["storm"]["p99_ms"] for r in st]),
                "max_ms": summary([r["storm"]["max_ms"] for r in st]),
                "errors": sum(r["storm"]["errors"] for r in st),
                "origin_delay_ms": st[0]["origin_delay_ms"],
            }
    mem = [r for r in runs if r["kind"] == "memory"]
    if mem:
        out["memory"] = memory_figures(mem[-1])
    out["targets"] = targets(out)
    return out


def targets(out: dict) -> list[dict]:
    t = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        t.append({"target": name, "met": ok, "detail": detail})

    for sc in ("hit_1k", "hotset_10k"):
        r = out["ratios"].get(sc, {})
        n, v = r.get("nginx"), r.get("varnish")
        if n and n["rps"] is not None:
            add(f"{sc}: req/s >= 1.25 x nginx", n["rps"] >= 1.25, f"{n['rps']:.2f} x")
            add(f"{sc}: p99 <= nginx", n["p99_us"] <= 1.0, f"{n['p99_us']:.2f} x")
            add(f"{sc}: CPU/req <= nginx", n["cpu_us_per_req"] <= 1.0, f"{n['cpu_us_per_req']:.2f} x")
        if v and v["rps"] is not None:
            add(f"{sc}: req/s >= 1.5 x Varnish", v["rps"] >= 1.5, f"{v['rps']:.2f} x")
            add(f"{sc}: p99 <= Varnish", v["p99_us"] <= 1.0, f"{v['p99_us']:.2f} x")
    for sc in ("hit_100k", "hit_1m"):
        n = out["ratios"].get(sc, {}).get("nginx")
        if n and n["cpu_us_per_req"] is not None:
            add(f"{sc}: CPU/req <= nginx", n["cpu_us_per_req"] <= 1.0, f"{n['cpu_us_per_req']:.2f} x")
    ms = out["miss_storm"].get("meridian")
    if ms:
        add(
            "miss storm: exactly one origin request",
            all(c == 1 for c in ms["origin_requests"]),
            f"per round {ms['origin_requests']}",
        )
        p50 = ms["p50_ms"]["median"] if ms["p50_ms"] else None
        if p50 is not None:
            add(
                "miss storm: client p50 within 10% of the origin delay",
                p50 <= 1.1 * ms["origin_delay_ms"],
                f"{p50:.0f} ms vs {ms['origin_delay_ms']} ms",
            )
    m = out["memory"]
    if m and m["overhead_bytes_per_object"] is not None:
        add(
            "memory: < 500 bytes/object beyond bodies and headers",
            m["overhead_bytes_per_object"] < 500,
            f"{m['overhead_bytes_per_object']:.0f} bytes",
        )
    return t


def fmt_spread(s: dict | None, scale: float = 1.0, digits: int = 0) -> str:
    if not s:
        return "-"
    f = f"{{:.{digits}f}}"
    med, lo, hi = (f.format(s[k] * scale) for k in ("median", "min", "max"))
    return f"{med} ({lo}–{hi})"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(out: dict, meta: dict) -> str:
    lines = []
    if meta:
        lines.append(
            f"Run {meta.get('date', '?')} on {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores, "
            f"kernel {meta.get('kernel', '?')}; servers on CPU {meta.get('server_cpu', '?')}, load on "
            f"CPU {meta.get('client_cpus', '?')}; {meta.get('rounds', '?')} rounds x {meta.get('duration_s', '?')} s, "
            f"{meta.get('connections', '?')} connections; meridian {meta.get('meridian', '?')}, "
            f"nginx {meta.get('nginx', '?')}, {meta.get('varnish', '?')}, wrk {meta.get('wrk', '?')}."
        )
        lines.append("")
    if out["throughput"]:
        lines.append("Medians over rounds, (min–max) in brackets.")
        lines.append("")
        lines.append("| scenario | server | req/s | p50 µs | p99 µs | CPU µs/req | server core busy | errors |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for sc, per in out["throughput"].items():
            for s, f in per.items():
                lines.append(
                    f"| {LABEL[sc]} | {s} | {fmt_spread(f['rps'])} | {fmt_spread(f['p50_us'])} | "
                    f"{fmt_spread(f['p99_us'])} | {fmt_spread(f['cpu_us_per_req'], digits=2)} | "
                    f"{fmt_spread(f['server_core_util'], 100)}% | {f['errors']} |"
                )
        lines.append("")
        lines.append("| scenario | req/s M/nginx | req/s M/Varnish | p99 M/nginx | p99 M/Varnish | CPU/req M/nginx | CPU/req M/Varnish |")
        lines.append("|---|---|---|---|---|---|---|")
        for sc, r in out["ratios"].items():
            n, v = r.get("nginx", {}), r.get("varnish", {})
            lines.append(
                f"| {LABEL[sc]} | {fmt_ratio(n.get('rps'))} | {fmt_ratio(v.get('rps'))} | "
                f"{fmt_ratio(n.get('p99_us'))} | {fmt_ratio(v.get('p99_us'))} | "
                f"{fmt_ratio(n.get('cpu_us_per_req'))} | {fmt_ratio(v.get('cpu_us_per_req'))} |"
            )
        lines.append("")
    if out["miss_storm"]:
        any_s = next(iter(out["miss_storm"].values()))
        lines.append(f"Miss storm: 200 simultaneous requests for one uncached URL, origin delay {any_s['origin_delay_ms']} ms.")
        lines.append("")
        lines.append("| server | origin requests per round | client p50 ms | client p99 ms | max ms | errors |")
        lines.append("|---|---|---|---|---|---|")
        for s, m in out["miss_storm"].items():
            lines.append(
                f"| {s} | {', '.join(map(str, m['origin_requests']))} | {fmt_spread(m['p50_ms'])} | "
                f"{fmt_spread(m['p99_ms'])} | {fmt_spread(m['max_ms'])} | {m['errors']} |"
            )
        lines.append("")
    m = out["memory"]
    if m:
        lines.append(
            f"Memory: {m['stored_entries']} objects stored ({m['body_bytes_each']} B body + "
            f"{m['header_bytes_each']} B headers each); resident memory grew "
            f"{m['rss_growth_bytes'] / 1e6:.1f} MB = {m['rss_growth_per_object']:.0f} B/object, "
            f"**{m['overhead_bytes_per_object']:.0f} B/object beyond bodies and headers** "
            f"(the store charges {m['store_charged_bytes_per_object'] or 0:.0f} B/object)."
        )
        lines.append("")
    if out["targets"]:
        lines.append("| target | met | measured |")
        lines.append("|---|---|---|")
        for t in out["targets"]:
            mark = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(f"| {t['target']} | {mark} | {t['detail']} |")
    return "\n".join(lines)


START, END = "<!-- bench-table-start -->", "<!-- bench-table-end -->"


def update_doc(path: str, report: str) -> None:
    """Puts the report between the markers (docs/benchmarks.md, README)."""
    with open(path) as f:
        text = f.read()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{path}: no {START} ... {END} markers")
    with open(path, "w") as f:
        f.write(f"{head}{START}\n{report}\n{END}{tail}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--one")
    p.add_argument("--runs")
    p.add_argument("--out")
    p.add_argument("--meta", action="append", default=[])
    p.add_argument("--doc", help="replace the text between the bench-table markers in this file")
    a = p.parse_args()
    if a.one:
        print(one(a.one))
        return 0
    if not a.runs:
        p.error("--runs or --one is required")
    with open(a.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    meta = dict(kv.split("=", 1) for kv in a.meta)
    out = aggregate(runs)
    report = markdown(out, meta)
    print(report)
    if a.doc:
        update_doc(a.doc, report)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"machine": meta, "results": out, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
