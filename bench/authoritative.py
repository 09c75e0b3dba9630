#!/usr/bin/env python3
"""UDP throughput of edgedns against NSD, serving the same zone, measured with dnsperf.

Needs Python 3.10+, two CPUs, taskset and Debian's nsd and dnsperf
(`apt-get install -y nsd dnsperf`); no third-party Python package. Usage:

    python3 bench/authoritative.py                 # about 60-75 s at the defaults
    python3 bench/authoritative.py --seconds 20 --json results.json
    python3 bench/authoritative.py --workload all  # every workload below, about 4 min

Workloads (--workload, one or more; the default is static):
  * static: edgedns serves bench/bench.yaml (bench/zones/bench.zone), NSD the same file, and
    dnsperf loops over bench/queries.txt;
  * pools: the same zone plus --pools pools of --pool-size members (policy all, checked with
    --pool-check: tcp connects to a listener the bench runs on 0.0.0.0, or none) on
    127.3.P.M; NSD serves those names as static A records (TTL 5, as the pools); dnsperf
    asks only the pool names (A);
  * cache-hit: edgedns serves only a tiny unrelated zone and forwards everything to the NSD
    of the NSD column (`forward: {upstreams: [127.0.0.1:PORT]}`, `cache: {min_ttl: 1h}` so
    negative answers do not expire mid-run); dnsperf loops over bench/queries.txt, so after
    the warm-up every answer is a cache hit (checked with edgedns's cache counters). The
    NSD column is NSD answering directly;
  * cache-miss: the same forwarding, asked --miss-rate queries/s for --miss-seconds of names
    never asked before (`m<hex>.bench.lan A`, NXDOMAIN from NSD), so every query misses the
    cache; the latency of every reply (dnsperf -v) directly from NSD and through edgedns,
    and the difference: what edgedns adds per miss.

What one throughput workload does, for NSD first and then edgedns (`python3 -m edgedns serve`):

1. starts the server on a free 127.0.0.1 port, pinned to CPU 0 (`taskset -c 0`); NSD gets a
   throw-away nsd.conf in a temp dir (one server process, RRL off, no database, foreground);
2. waits until it answers one query over UDP (raw socket, stdlib) and fails clearly if not;
3. warms it up with one pass over the query file (edgedns builds replies on first use;
   in cache-hit, it fills the cache);
4. "max qps": dnsperf pinned to CPU 1 for --seconds, unthrottled but with at most
   --outstanding queries in flight (-c 8 -q 500 -T 1 by default);
5. "zero-loss qps": a short bisection over dnsperf -Q rates (--probe-seconds each, --probes
   steps) for the highest offered rate the server carries with 0 lost queries and at least
   98 % of the offered rate completed;
6. stops the server (SIGTERM to its process group, SIGKILL after 5 s).

Then it prints both servers side by side with the ratio edgedns / NSD, and with --json writes
the same figures (plus dnsperf's raw numbers, rcodes and the CPU use of each core) to a file.

Reading the output (bench/README.md has more):
  * "max qps" is what dnsperf got through with at most -q queries in flight; at saturation
    its latency is about outstanding / qps (Little's law), not a property of the server;
  * "server process CPU %" is the server's own CPU time (user + system) over the run, in % of
    one core. Near 100 %: the server was the bottleneck. Well below 100 % with the server core
    idle and dnsperf near 100 %: the load generator was the limit and the figure is a lower
    bound (on loopback the sender's core also pays for delivering each packet, so on a 2-core
    machine NSD usually ends up there). Below 100 % with the server core busy: other
    programs took part of it;
  * "qps per server CPU-s" = max qps / server CPU share: the server's efficiency, the figure
    least moved by either of those effects;
  * "zero-loss qps" is the best carried -Q rate, with the latency measured at that rate.
The script waits up to --quiet-wait s for idle CPUs (and no other dnsperf or nsd) before each
measurement and warns when it does not get them, or when other programs used CPU meanwhile.

Everything is bounded: every subprocess has a timeout, and the children are killed on exit,
on exceptions, on Ctrl-C and on SIGTERM (bench/common.py).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import (
    BENCH,
    BENCH_ZONE,
    QUERY_FILE,
    ZONE_FILE,
    Proc,
    dnsperf_argv,
    free_port,
    log,
    main,
    preflight,
    run_dnsperf,
    run_info,
    scrape,
    start_edgedns,
    start_nsd,
    start_tcp_listener,
    wait_answer,
    wait_for_quiet,
    write_json,
)

EDGEDNS_CONFIG = BENCH / "bench.yaml"
PROBE_NAME = f"host000.{BENCH_ZONE}"
WORKLOADS = ("static", "pools", "cache-hit", "cache-miss")
SUSTAINED_FRACTION = 0.98
"""A -Q rate counts as carried when at least this share of it completes, with 0 lost."""
BACKGROUND_LIMIT = 10.0
"""CPU % of one core that other programs may use during a measurement before a warning."""
BUSY_WARNINGS: list[str] = []


@dataclass
class Workload:
    name: str
    title: str
    queries: Path
    nsd_zone: Path = ZONE_FILE
    edgedns_config: Path = EDGEDNS_CONFIG
    probe: str = PROBE_NAME
    probe_answers: int = 1
    admin_port: int | None = None
    forward: bool = False
    """edgedns forwards to the NSD of the NSD column, which stays up for it."""
    warmup: Path | None = None
    """Latency workloads: names for a short warm-up (throughput ones pass over `queries`)."""
    helpers: list[Proc] = field(default_factory=list)


# --------------------------------------------------------------------------- workloads


def setup(name: str, args: argparse.Namespace, workdir: Path, nsd_port: int) -> Workload:
    """The files of workload `name` (its NSD will listen on `nsd_port`)."""
    if name == "static":
        return Workload(name, "static records", QUERY_FILE)
    admin = free_port()
    config = workdir / f"{name}.yaml"
    head = f'listen: ["127.0.0.1:5353"]\nadmin: "127.0.0.1:{admin}"\n'
    if name == "pools":
        helpers = []
        check = "{type: none}"
        if args.pool_check == "tcp":
            listener, port = start_tcp_listener(workdir / "listener.log", 1800, args.client_cpu)
            helpers.append(listener)
            check = f"{{type: tcp, port: {port}}}"
        yaml = [head + f"zones:\n  {BENCH_ZONE}:\n    file: {ZONE_FILE}\n    pools:"]
        zone = [ZONE_FILE.read_text(), "; the pools, as static records"]
        for p in range(args.pools):
            members = [f"127.3.{p}.{m + 1}" for m in range(args.pool_size)]
            yaml.append(f"      pool{p:03d}: {{policy: all, check: {check}, "
                        f"members: [{', '.join(members)}]}}")
            zone += [f"pool{p:03d} 5 IN A {address}" for address in members]
        config.write_text("\n".join(yaml) + "\n")
        (workdir / "pools.zone").write_text("\n".join(zone) + "\n")
        rng = random.Random(1)
        queries = workdir / "pools-queries.txt"
        queries.write_text("".join(f"pool{rng.randrange(args.pools):03d}.{BENCH_ZONE} A\n"
                                   for _ in range(5000)))
        return Workload(name, f"pools ({args.pools} x {args.pool_size}, policy all, "
                        f"check {args.pool_check})", queries, workdir / "pools.zone", config,
                        f"pool000.{BENCH_ZONE}", args.pool_size, admin, helpers=helpers)
    config.write_text(head + "zones:\n  edge.test:\n    records:\n      ns1: {A: 127.0.0.1}\n"
                      f'forward:\n  upstreams: ["127.0.0.1:{nsd_port}"]\n'
                      + ("cache: {min_ttl: 1h}\n" if name == "cache-hit" else ""))
    if name == "cache-hit":
        return Workload(name, "cache hits (edgedns forwards to NSD)", QUERY_FILE,
                        edgedns_config=config, admin_port=admin, forward=True)
    count = int(args.miss_rate * args.miss_seconds * 1.1) + 100
    return Workload(name, "cache misses (edgedns forwards to NSD)",
                    unique_names(workdir / "miss.txt", "m", count), edgedns_config=config,
                    admin_port=admin, forward=True,
                    warmup=unique_names(workdir / "warm.txt", "w", int(args.miss_rate) + 100))


def unique_names(path: Path, prefix: str, count: int) -> Path:
    """`count` distinct names absent from the bench zone, one A query a line."""
    tag = os.urandom(4).hex()  # a fresh set per run, should a cache outlive one
    path.write_text("".join(f"{prefix}{tag}{i:07x}.{BENCH_ZONE} A\n" for i in range(count)))
    return path


# --------------------------------------------------------------------------- measurement


def perf(server: Proc, port: int, queries: Path, args: argparse.Namespace, tag: str,
         seconds: float | None = None, rate: float | None = None, passes: int | None = None,
         verbose: bool = False) -> dict:
    argv = dnsperf_argv(port, queries, args.clients, args.threads, args.outstanding,
                        args.timeout, seconds, rate, passes, verbose)
    limit = (seconds or 30) + args.timeout + 15
    r = run_dnsperf(argv, args.workdir / f"dnsperf-{tag}.out", args.client_cpu, limit, [server])
    w = r.window
    out = asdict(r) | {"server_cpu_pct": w["cpu_pct"][server.name],
                       "client_cpu_pct": w["reaped_cpu_pct"], "cpu_busy": w["cores_busy_pct"]}
    if w["background_cpu_pct"] > BACKGROUND_LIMIT or w["other_benchmarks"]:
        BUSY_WARNINGS.append(tag)
        log(f"  warning: other programs used {w['background_cpu_pct']:.0f}% of a core during "
            f"the run ({', '.join(w['other_benchmarks']) or 'no other benchmark'})")
    return out


def quiet(args: argparse.Namespace, max_wait: float) -> dict:
    state = wait_for_quiet([args.server_cpu, args.client_cpu], max_wait)
    if not state["quiet"]:
        BUSY_WARNINGS.append("idle wait")
    return state


def still_answers(server: Proc, port: int, wl: Workload) -> None:
    wait_answer(server, port, wl.probe, wl.probe_answers, 5.0)


def counters(wl: Workload, server: Proc) -> dict[str, float]:
    if wl.admin_port is None or server.name != "edgedns":
        return {}
    return {k: v for k, v in scrape(wl.admin_port).items()
            if k.startswith(("edgedns_cache_", "edgedns_probes", "edgedns_pool_healthy"))}


def measure(server: Proc, port: int, wl: Workload, args: argparse.Namespace) -> dict:
    name = server.name
    log(f"{name} [{wl.name}]: waiting for it to answer on 127.0.0.1:{port}")
    wait_answer(server, port, wl.probe, wl.probe_answers, args.start_timeout)
    if wl.warmup is not None:
        return measure_latency(server, port, wl, args)
    log(f"{name} [{wl.name}]: warm-up (one pass over {wl.queries.name})")
    perf(server, port, wl.queries, args, f"{wl.name}-{name}-warm", passes=1)
    still_answers(server, port, wl)
    idle = quiet(args, args.quiet_wait)
    log(f"{name} [{wl.name}]: max qps, {args.seconds:g} s unthrottled")
    before = counters(wl, server)
    best = perf(server, port, wl.queries, args, f"{wl.name}-{name}-max", args.seconds)
    after = counters(wl, server)
    still_answers(server, port, wl)
    log(f"  {best['qps']:.0f} qps, {best['lost']} lost, avg latency "
        f"{best['latency_avg_ms']:.3f} ms, CPU: server {best['server_cpu_pct']:.0f}%, dnsperf "
        f"{best['client_cpu_pct']:.0f}%; cores busy: {best['cpu_busy']}")
    log(f"{name} [{wl.name}]: zero-loss search, {args.probes} x {args.probe_seconds:g} s")
    zero_loss, probes = zero_loss_search(server, port, wl, best["qps"], args)
    return {"max": best, "qps_per_cpu_s": round(best["qps"] / max(0.01, best["server_cpu_pct"]
                                                                  / 100)),
            "zero_loss_qps": round(zero_loss),
            "zero_loss_capped": bool(probes) and all(p["ok"] for p in probes),
            "probes": probes, "busy_before_pct": idle["busy_pct"],
            "counters_during_max": {k: after[k] - before.get(k, 0) for k in after
                                    if k.endswith("_total")}
            | {k: v for k, v in after.items() if not k.endswith("_total")}}


def zero_loss_search(server: Proc, port: int, wl: Workload, max_qps: float,
                     args: argparse.Namespace) -> tuple[float, list[dict]]:
    """Bisect -Q rates below 1.05 * max_qps (first probe at 0.75 * max_qps) for the highest
    one carried; returns it (0 when none was) and the probes."""
    lo, hi = 0.0, 1.05 * max_qps
    rate = 0.75 * max_qps
    probes: list[dict] = []
    for i in range(args.probes):
        quiet(args, min(5.0, args.quiet_wait))
        r = perf(server, port, wl.queries, args, f"{wl.name}-{server.name}-q{i}",
                 args.probe_seconds, rate)
        ok = r["lost"] == 0 and r["qps"] >= SUSTAINED_FRACTION * rate
        probes.append({"offered_qps": round(rate), "qps": round(r["qps"]), "lost": r["lost"],
                       "latency_avg_ms": r["latency_avg_ms"], "ok": ok})
        log(f"  -Q {rate:9.0f}: {r['qps']:9.0f} qps, {r['lost']} lost, avg latency "
            f"{r['latency_avg_ms']:.3f} ms -> {'carried' if ok else 'not carried'}")
        lo, hi = (rate, hi) if ok else (lo, rate)
        rate = (lo + hi) / 2 if lo else hi / 2
        still_answers(server, port, wl)
    return lo, probes


def measure_latency(server: Proc, port: int, wl: Workload, args: argparse.Namespace) -> dict:
    """Every reply's latency at a low fixed rate, each query a name never asked before."""
    name = server.name
    log(f"{name} [{wl.name}]: warm-up, 1 s at -Q {args.miss_rate:g} on other fresh names")
    perf(server, port, wl.warmup, args, f"{wl.name}-{name}-warm", 1, args.miss_rate, 1)
    quiet(args, args.quiet_wait)
    log(f"{name} [{wl.name}]: {args.miss_seconds:g} s at -Q {args.miss_rate:g}, every name new")
    before = counters(wl, server)
    r = perf(server, port, wl.queries, args, f"{wl.name}-{name}", args.miss_seconds,
             args.miss_rate, 1, verbose=True)
    after = counters(wl, server)
    still_answers(server, port, wl)
    log(f"  {r['completed']} replies, {r['lost']} lost, latency ms: avg "
        f"{r['latency_avg_ms']:.3f}, {r['latency_ms']}")
    return {"latency": r,
            "counters": {k: after[k] - before.get(k, 0) for k in after if k.endswith("_total")}}


# --------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b and not math.isnan(a) and not math.isnan(b) else ""


def zero_loss_latency(r: dict) -> float:
    carried = [p for p in r["probes"] if p["ok"] and p["offered_qps"] == r["zero_loss_qps"]]
    return carried[-1]["latency_avg_ms"] if carried else float("nan")


def table(header: tuple[str, str, str], rows: list[tuple[str, str, str, str]]) -> str:
    out = [f"{'':24} {header[0]:>12} {header[1]:>12} {header[2]:>12}"]
    out += [f"{label:24} {a:>12} {b:>12} {c:>12}" for label, a, b, c in rows]
    return "\n".join(out)


def report(servers: dict, args: argparse.Namespace) -> str:
    nsd, ed = servers["nsd"], servers["edgedns"]
    sc, cc = f"cpu{args.server_cpu}", f"cpu{args.client_cpu}"
    rows = [
        ("max qps", lambda r: f"{r['max']['qps']:.0f}", True),
        ("  lost", lambda r: f"{r['max']['lost']} / {r['max']['sent']}", False),
        ("  avg latency ms", lambda r: f"{r['max']['latency_avg_ms']:.3f}", True),
        ("  max latency ms", lambda r: f"{r['max']['latency_max_ms']:.3f}", True),
        ("  server process CPU %", lambda r: f"{r['max']['server_cpu_pct']:.0f}", False),
        ("  qps per server CPU-s", lambda r: f"{r['qps_per_cpu_s']}", True),
        ("  dnsperf CPU %", lambda r: f"{r['max']['client_cpu_pct']:.0f}", False),
        (f"  {sc} (server) busy %", lambda r: f"{r['max']['cpu_busy'].get(sc, 0):.0f}", False),
        (f"  {cc} (client) busy %", lambda r: f"{r['max']['cpu_busy'].get(cc, 0):.0f}", False),
        ("zero-loss qps",
         lambda r: f"{r['zero_loss_qps']}{'+' if r.get('zero_loss_capped') else ''}", True),
        ("  avg latency ms", lambda r: f"{zero_loss_latency(r):.3f}", True),
    ]
    cells = []
    for label, fmt, with_ratio in rows:
        a, b = fmt(nsd), fmt(ed)
        cells.append((label, a, b, ratio(float(b.rstrip("+")), float(a.rstrip("+")))
                      if with_ratio else ""))
    return table(("NSD", "edgedns", "edgedns/NSD"), cells)


def latency_report(servers: dict) -> str:
    nsd, ed = servers["nsd"]["latency"], servers["edgedns"]["latency"]
    rows = []
    for label, key in (("avg", None), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"),
                       ("p99.9", "p99.9")):
        a = nsd["latency_avg_ms"] if key is None else nsd["latency_ms"].get(key, math.nan)
        b = ed["latency_avg_ms"] if key is None else ed["latency_ms"].get(key, math.nan)
        rows.append((f"latency {label} µs", f"{a * 1000:.0f}", f"{b * 1000:.0f}",
                     f"{(b - a) * 1000:+.0f}"))
    rows.append(("lost", f"{nsd['lost']} / {nsd['sent']}", f"{ed['lost']} / {ed['sent']}", ""))
    misses = servers["edgedns"]["counters"].get("edgedns_cache_misses_total")
    if misses is not None:
        rows.append(("edgedns cache misses", "", f"{misses:.0f}", ""))
    return table(("NSD", "via edgedns", "overhead"), rows)


def summarize(wl_results: dict) -> dict:
    servers = wl_results["servers"]
    if len(servers) < 2:
        return {}
    nsd, ed = servers["nsd"], servers["edgedns"]
    if "latency" in ed:
        a, b = nsd["latency"], ed["latency"]
        out = {"overhead_us_avg": round((b["latency_avg_ms"] - a["latency_avg_ms"]) * 1000, 1)}
        for key in ("p50", "p90", "p99"):
            if key in a["latency_ms"] and key in b["latency_ms"]:
                out[f"overhead_us_{key}"] = round(
                    (b["latency_ms"][key] - a["latency_ms"][key]) * 1000, 1)
        return out
    return {"max_qps": round(ed["max"]["qps"] / nsd["max"]["qps"], 4),
            "qps_per_cpu_s": round(ed["qps_per_cpu_s"] / nsd["qps_per_cpu_s"], 4),
            "zero_loss_qps": round(ed["zero_loss_qps"] / nsd["zero_loss_qps"], 4)
            if nsd["zero_loss_qps"] else None}


def rcode_mismatch(servers: dict) -> str | None:
    shares = {}
    for name, r in servers.items():
        codes = (r.get("max") or r["latency"])["rcodes"]
        total = sum(codes.values()) or 1
        shares[name] = {k: v / total for k, v in codes.items()}
    for k in sorted(set(shares["nsd"]) | set(shares["edgedns"])):
        a, b = shares["nsd"].get(k, 0.0), shares["edgedns"].get(k, 0.0)
        if abs(a - b) > 0.01:
            return f"{k}: NSD {a:.1%} vs edgedns {b:.1%}"
    return None


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", nargs="+", choices=(*WORKLOADS, "all"), default=["static"],
                   help="what to measure (default static; all: every workload)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="length of each unthrottled max-qps run (default 10)")
    p.add_argument("--probe-seconds", type=float, default=3.0,
                   help="length of each -Q run of the zero-loss search (default 3)")
    p.add_argument("--probes", type=int, default=5,
                   help="-Q runs in the zero-loss search, per server (default 5)")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c (default 8)")
    p.add_argument("--threads", type=int, default=1, help="dnsperf -T (default 1)")
    p.add_argument("--outstanding", type=int, default=500,
                   help="dnsperf -q, queries in flight at most (default 500)")
    p.add_argument("--timeout", type=float, default=2.0,
                   help="dnsperf -t, seconds before a query counts as lost (default 2)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU for the server (default 0)")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU for dnsperf (default 1)")
    p.add_argument("--start-timeout", type=float, default=30.0,
                   help="seconds a server may take to answer its first query (default 30)")
    p.add_argument("--quiet-wait", type=float, default=10.0,
                   help="seconds to wait for idle CPUs before each max-qps run (default 10; "
                        "5 at most before each -Q probe)")
    p.add_argument("--pools", type=int, default=50, help="pools workload: pools (default 50)")
    p.add_argument("--pool-size", type=int, default=3,
                   help="pools workload: members per pool (default 3)")
    p.add_argument("--pool-check", choices=("tcp", "none"), default="tcp",
                   help="pools workload: the members' check (default tcp, every 1 s)")
    p.add_argument("--miss-rate", type=float, default=2000.0,
                   help="cache-miss workload: dnsperf -Q (default 2000)")
    p.add_argument("--miss-seconds", type=float, default=5.0,
                   help="cache-miss workload: seconds measured (default 5)")
    p.add_argument("--only", choices=("nsd", "edgedns"),
                   help="measure one server only (no ratio)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.probe_seconds <= 0 or args.probes < 0:
        p.error("--seconds and --probe-seconds must be positive, --probes at least 0")
    if not (1 <= args.pools <= 250 and 1 <= args.pool_size <= 250):
        p.error("--pools and --pool-size must be in 1..250")
    if not (0 < args.miss_rate <= 50_000 and 0 < args.miss_seconds <= 60):
        p.error("--miss-rate must be in (0, 50000], --miss-seconds in (0, 60]")
    if "all" in args.workload:
        args.workload = list(WORKLOADS)
    args.workload = [w for w in WORKLOADS if w in args.workload]
    return args


def run_workload(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    nsd_port = free_port()
    wl = setup(name, args, workdir, nsd_port)
    out: dict = {"title": wl.title, "servers": {}}
    log(f"== {wl.title}")
    nsd = None
    try:
        if args.only != "edgedns" or wl.forward:
            nsd = start_nsd({BENCH_ZONE: wl.nsd_zone}, nsd_port, workdir, args.server_cpu)
            wait_answer(nsd, nsd_port, wl.probe, wl.probe_answers, args.start_timeout)
        if args.only != "edgedns":
            out["servers"]["nsd"] = measure(nsd, nsd_port, wl, args)
        if not wl.forward and nsd is not None:
            nsd.stop()
        if args.only != "nsd":
            port = free_port()
            ed = start_edgedns(wl.edgedns_config, port, workdir / f"{name}-edgedns.log",
                               args.server_cpu)
            try:
                out["servers"]["edgedns"] = measure(ed, port, wl, args)
            finally:
                ed.stop()
    finally:
        for proc in [nsd, *wl.helpers]:
            if proc is not None:
                proc.stop()
    out["ratio"] = summarize(out)
    return out


def print_results(results: dict, args: argparse.Namespace) -> None:
    for wl in results["workloads"].values():
        servers = wl["servers"]
        print(f"\n== {wl['title']}")
        if len(servers) == 2:
            if "latency" in servers["edgedns"]:
                print(f"-Q {args.miss_rate:g} for {args.miss_seconds:g} s, every name new")
                print(latency_report(servers))
            else:
                print(report(servers, args))
                if any(r.get("zero_loss_capped") for r in servers.values()):
                    print("+ every -Q probe was carried: the real limit lies above the search "
                          "range (1.05 x max qps),\n  which the load generator set")
            for r in servers.values():
                counts = r.get("counters_during_max") or r.get("counters")
                if counts:
                    print("edgedns counters: " + ", ".join(
                        f"{k.removeprefix('edgedns_')} {v:.0f}" for k, v in counts.items()))
            mismatch = rcode_mismatch(servers)
            if mismatch:
                print(f"warning: the servers' rcode mix differs ({mismatch}): "
                      "they do not answer the same")
        for key, r in servers.items() if len(servers) == 1 else ():
            if "latency" in r:
                print(f"{key}: latency avg {r['latency']['latency_avg_ms']:.3f} ms, "
                      f"{r['latency']['latency_ms']}")
            else:
                print(f"{key}: max {r['max']['qps']:.0f} qps ({r['max']['lost']} lost, avg "
                      f"latency {r['max']['latency_avg_ms']:.3f} ms), zero-loss "
                      f"{r['zero_loss_qps']} qps")
    ratios = {k: wl["ratio"] for k, wl in results["workloads"].items() if wl["ratio"]}
    if len(ratios) > 1:
        print("\n== edgedns / NSD")
        for key, r in ratios.items():
            if "max_qps" in r:
                print(f"{key:12} max qps {r['max_qps']:.3f}, zero-loss "
                      f"{r['zero_loss_qps'] or float('nan'):.3f}, per CPU-s "
                      f"{r['qps_per_cpu_s']:.3f}")
            else:
                print(f"{key:12} " + ", ".join(f"{k.removeprefix('overhead_us_')} {v:+.0f} µs"
                                               for k, v in r.items()) + " per miss")


def run(args: argparse.Namespace) -> int:
    needed = ["taskset", "dnsperf"] + (["nsd", "nsd-checkconf"]
                                       if args.only != "edgedns" or "cache" in str(args.workload)
                                       else [])
    preflight(needed, [args.server_cpu, args.client_cpu])
    if args.server_cpu == args.client_cpu:
        log("warning: server and dnsperf share one CPU; figures measure both together")
    results: dict = run_info() | {
        "dnsperf": " ".join(dnsperf_argv(0, QUERY_FILE, args.clients, args.threads,
                                         args.outstanding, args.timeout, args.seconds)
                            ).replace("-p 0 ", ""),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "workloads": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgedns-bench-") as tmp:
        args.workdir = Path(tmp)
        for name in args.workload:
            results["workloads"][name] = run_workload(name, args, Path(tmp))
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["busy_warnings"] = len(BUSY_WARNINGS)
    if "static" in results["workloads"]:  # where the figures were before --workload
        results["servers"] = results["workloads"]["static"]["servers"]
        results["ratio"] = results["workloads"]["static"]["ratio"]
    print_results(results, args)
    if BUSY_WARNINGS:
        print(f"\nwarning: other programs kept the CPUs busy around {len(BUSY_WARNINGS)} "
              "measurement(s); these figures are low and noisy: rerun on an idle machine")
    version = results["edgedns"]
    print(f"\n{results['dnsperf']}; edgedns {version.get('commit')}"
          f"{'+dirty' if version.get('dirty') else ''}; {results['elapsed_s']} s in all")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    sys.exit(main(lambda: run(arguments)))
