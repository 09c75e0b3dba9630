#!/usr/bin/env python3
"""Health-engine benchmark: prober scale (2,000 members) and probing under query load.

Usage (as root for the raw ICMP socket; needs Debian's dnsperf and taskset):

    python3 bench/probers.py                      # all three runs, ~1.5 min on a quiet box
    python3 bench/probers.py --only icmp tcp      # just the 2,000-member runs
    python3 bench/probers.py --members 200 --warmup 2 --window 5 --only icmp tcp  # quick
    python3 bench/probers.py --window 30 --json probers.json

It checks two promises of the health engine:

1. Scale ("icmp", "tcp"): 2,000 pool members (200 pools of 10) on distinct loopback
   addresses (127.1.0.1 … 127.1.7.208; Linux answers all of 127/8), checked every 1 s with a
   500 ms timeout, fall 2, rise 2: once with ICMP echo (raw socket, as root) and once with TCP
   connects to one listener on 0.0.0.0:PORT (bench/common.py's, pinned to CPU 1). Promise:
   every member stays up, and edgedns uses under 25 % of one core in the steady state (a
   --window of 20 s after a --warmup of 5 s).
2. Load ("load"): 200 ICMP-checked members beside the bench zone (bench/zones/bench.zone),
   10 s idle, then 20 s of dnsperf at saturation (pinned to CPU 1):
   `dnsperf -s 127.0.0.1 -p PORT -d bench/queries.txt -l 20 -c 8 -q 200 -t 2`.
   Promise: no healthy member is marked down, and the largest probe lateness
   (`Scheduler.max_lateness`) stays within the interval.
Start-up (the first --warmup seconds, when every target is probed at once) is reported apart.

How: edgedns runs as its own process pinned to CPU 0, on the event loop `edgedns serve` uses
(uvloop when installed): this file in its `_serve` mode loads the generated config with
`edgedns.config.load` and runs its `Server`, wrapping `PoolSet.record` to see every
probe result. Once a second it prints one JSON line: failures and their reasons, the RTT of
every answered probe, the members that went down, probes started so far, the largest probe
lateness of that second (`scheduler.max_lateness`, then reset), its event-loop lag and the
kernel's drop counters of its ICMP and UDP sockets. This script cuts that timeline into
phases (start-up, steady-state window, idle, load) and takes CPU use from /proc.

Before each run it waits (up to --quiet-wait s) until no other dnsperf or nsd runs and the
CPUs are idle. A run is marked CONTENDED when that wait gave up, a dnsperf/nsd process ran
during a measured window, or other user-space processes used more than --busy-limit % (25)
of one core meanwhile.

Traffic goes only to 127.0.0.0/8. Every loop is bounded in count and time; every child runs
in its own process group and is killed on exit, errors, Ctrl-C and SIGTERM; the children also
exit when this script's pipe to them closes or their time limit passes. Exit status: 0 when
every promise held, 2 when one did not, 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import (
    BENCH_ZONE,
    QUERY_FILE,
    ZONE_FILE,
    Proc,
    Window,
    dnsperf_argv,
    free_port,
    log,
    main,
    preflight,
    run_dnsperf,
    run_info,
    start_tcp_listener,
    wait_answer,
    wait_for_quiet,
    write_json,
)

SCALE_ZONE = "probe.lan"
CPU_PROMISE_PCT = 25.0
RUNS = ("icmp", "tcp", "load")


# =========================================================================== child: server


def child_serve(config_path: str, port: str, max_seconds: str, loop_kind: str) -> int:
    """`probers.py _serve CONFIG PORT MAX_SECONDS LOOP`: edgedns plus one JSON line a second."""
    import asyncio
    import logging
    import signal

    from edgedns import config as config_mod
    from edgedns.server.lifecycle import Server

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def emit(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def new_tick() -> dict:
        return {"fail": 0, "reasons": Counter(), "down": [], "rtt_us": []}

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        listen = (f"127.0.0.1:{port}",)
        server = Server(config_mod.load(config_path, listen), listen)
        health, scheduler = server.pools.health, server.scheduler
        tick = new_tick()
        original_record = server.pools.record

        def record(target, result):  # noqa: ANN001, ANN202 - PoolSet.record's signature
            changed = original_record(target, result)
            if result.ok:
                if result.rtt is not None:
                    tick["rtt_us"].append(round(result.rtt * 1e6))
            else:
                tick["fail"] += 1
                tick["reasons"][result.reason[:60]] += 1
            if changed and not health[target].up:
                tick["down"].append(target.address)
            return changed

        server.pools.record = record  # an instance attribute: Server calls self.pools.record
        await server.start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        os.set_blocking(0, False)
        loop.add_reader(0, lambda: os.read(0, 4096) or stop.set())  # EOF: the parent is done
        emit({"ready": True, "t": time.monotonic(), "probes": scheduler.probes_started,
              "targets": len(health), "pools": len(server.pools.pools), "pid": os.getpid(),
              "loop": type(loop).__module__.split(".")[0]})
        # time.monotonic, not loop.time(): uvloop's clock has millisecond resolution.
        deadline = time.monotonic() + float(max_seconds)
        due = time.monotonic() + 1.0
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            now = time.monotonic()
            emit(tick | {"t": now, "lag_ms": round(max(0.0, now - due) * 1000, 3),
                         "late_ms": round(scheduler.max_lateness * 1000, 3),
                         "probes": scheduler.probes_started,
                         "up": sum(1 for h in health.values() if h.up),
                         "drops": socket_drops()})
            scheduler.max_lateness = 0.0
            tick = new_tick()
            due += 1.0
        await asyncio.wait_for(server.stop(), 10)

    if loop_kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(serve())
            return 0
    asyncio.run(serve())
    return 0


def socket_drops() -> dict[str, int]:
    """Kernel drop counters (receive buffer full) of this process's ICMP and UDP sockets."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = {"icmp": 0, "udp": 0}
    for table in ("raw", "raw6", "icmp", "icmp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for fields in map(str.split, lines):
            if len(fields) >= 13 and fields[9] in inodes:
                out["udp" if table.startswith("udp") else "icmp"] += int(fields[-1])
    return out


# =========================================================================== parent


def member_address(prefix: int, i: int) -> str:
    """i-th member (from 1) on 127.<prefix>.x.y: 127.1.0.1 … 127.1.7.208 for 2,000."""
    return f"127.{prefix}.{i >> 8}.{i & 255}"


def config_text(args: argparse.Namespace, kind: str, port: int | None, zone: str,
                members: int, prefix: int) -> str:
    """Pools `pool000`… of `args.pool_size` members in `zone` (the bench zone for "load")."""
    check = f"{{type: {kind}, interval: {args.interval}, timeout: {args.timeout}, fall: 2, " \
            f"rise: 2{f', port: {port}' if port else ''}}}"
    lines = ["# generated by bench/probers.py; listen is overridden",
             'listen: ["127.0.0.1:5353"]', 'admin: "127.0.0.1:0"', f"defaults:\n  check: {check}",
             f"zones:\n  {zone}:",
             f"    file: {ZONE_FILE}" if zone == BENCH_ZONE
             else "    records:\n      ns1: {A: 127.0.0.1}\n    ns: [ns1]", "    pools:"]
    for p, first in enumerate(range(1, members + 1, args.pool_size)):
        addresses = [member_address(prefix, i)
                     for i in range(first, min(first + args.pool_size, members + 1))]
        lines.append(f"      pool{p:03d}: {{members: [{', '.join(addresses)}]}}")
    return "\n".join(lines) + "\n"


def start_server(kind: str, args: argparse.Namespace, workdir: Path, text: str,
                 budget: float) -> tuple[Proc, int, dict]:
    config = workdir / f"{kind}.yaml"
    config.write_text(text)
    port = free_port()
    server = Proc(f"edgedns ({kind})", [sys.executable, str(Path(__file__).resolve()), "_serve",
                                        str(config), str(port), f"{budget:g}", args.loop],
                  workdir / f"{kind}-server.log", args.server_cpu, json_lines=True)
    ready = server.expect("ready", 60)
    log(f"  edgedns pid {ready['pid']} on 127.0.0.1:{port}: {ready['targets']} targets in "
        f"{ready['pools']} pools, loop {ready['loop']}")
    return server, port, ready


def sleep_watching(seconds: float, server: Proc) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        server.check_alive()


def phase(timeline: list[dict], t0: float, t1: float = float("inf")) -> dict:
    """The seconds of the server's timeline that lie within [t0, t1]."""
    ticks = [(a, b) for a, b in zip(timeline, timeline[1:], strict=False)
             if a["t"] >= t0 - 0.05 and b["t"] <= t1 + 0.05]
    if not ticks:
        return {}
    seen = [b for _, b in ticks]
    seconds = ticks[-1][1]["t"] - ticks[0][0]["t"]
    rtts = sorted(x / 1000 for b in seen for x in b["rtt_us"])
    reasons: Counter[str] = Counter()
    for b in seen:
        reasons.update(b["reasons"])
    down = sorted({address for b in seen for address in b["down"]})

    def q(frac: float) -> float:
        return rtts[min(len(rtts) - 1, int(frac * len(rtts)))]

    return {
        "seconds": round(seconds, 2),
        "probes_per_s": round((ticks[-1][1]["probes"] - ticks[0][0]["probes"]) / seconds),
        "failures": sum(b["fail"] for b in seen),
        "failure_reasons": dict(reasons.most_common(5)),
        "members_ever_down": len(down), "down_examples": down[:5],
        "min_up": min(b["up"] for b in seen),
        "max_lateness_ms": max(b["late_ms"] for b in seen),
        "max_loop_lag_ms": max(b["lag_ms"] for b in seen),
        "socket_drops": {k: ticks[-1][1]["drops"][k] - ticks[0][0].get("drops", {}).get(k, 0)
                         for k in ticks[-1][1]["drops"]} if "drops" in ticks[0][0] else {},
        "rtt_ms": {"n": len(rtts), "min": q(0), "median": statistics.median(rtts),
                   "p99": q(0.99), "max": q(1)} if rtts else {"n": 0},
    }


def compact(timeline: list[dict]) -> list[dict]:
    """The timeline for --json, without every probe's RTT."""
    return [{k: v for k, v in tick.items() if k != "rtt_us"} for tick in timeline]


def contended(args: argparse.Namespace, quiet: dict, window: dict) -> bool:
    return (not quiet["quiet"] or bool(window["other_benchmarks"])
            or window["background_cpu_pct"] >= args.busy_limit)


def run_scale(kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    log(f"[{kind}] {args.members} members, {kind} checks every {args.interval}, "
        f"timeout {args.timeout}")
    quiet = wait_for_quiet([args.server_cpu, args.client_cpu], args.quiet_wait, args.busy_limit)
    budget = args.warmup + args.window + 60
    listener, listen_port = None, None
    if kind == "tcp":
        listener, listen_port = start_tcp_listener(workdir / "tcp-listener.log", budget + 30,
                                                   args.client_cpu)
        log(f"  TCP listener on 0.0.0.0:{listen_port} (CPU {args.client_cpu})")
    server, port, ready = start_server(
        kind, args, workdir, config_text(args, kind, listen_port, SCALE_ZONE, args.members, 1),
        budget)
    wait_answer(server, port, f"pool000.{SCALE_ZONE}", min(args.pool_size, args.members))
    sleep_watching(args.warmup, server)
    t_window = time.monotonic()
    log(f"  steady state: measuring {args.window:g} s")
    window = Window([p for p in (server, listener) if p])
    while time.monotonic() - t_window < args.window:
        sleep_watching(min(0.5, args.window), server)
        window.poll()
    measured = window.result()
    measured["cpu_pct"] = measured["cpu_pct"][server.name]
    t_end = time.monotonic()
    server.stop()
    accepted = None
    if listener is not None:
        listener.stop()
        accepted = next((line["accepted"] for line in listener.lines if "accepted" in line), None)
    timeline = [ready, *(line for line in server.lines if "lag_ms" in line)]
    phases = {"startup": phase(timeline, ready["t"], t_window), "window": phase(timeline,
                                                                                t_window, t_end),
              "steady": phase(timeline, t_window)}
    interval_ms = parse_seconds(args.interval) * 1000
    result = {"kind": kind, "members": args.members, "quiet": quiet, "window": measured,
              "phases": phases, "listener_accepted": accepted, "timeline": compact(timeline),
              "contended": contended(args, quiet, measured), "promise": {
                  "all_up_steady": phases["steady"].get("members_ever_down", 1) == 0,
                  "cpu_under_25pct": measured["cpu_pct"] < CPU_PROMISE_PCT,
                  "lateness_within_interval":
                      phases["window"].get("max_lateness_ms", 1e9) < interval_ms,
                  "all_up_at_startup": phases["startup"].get("members_ever_down", 1) == 0}}
    log(f"  CPU {measured['cpu_pct']:.1f}% of one core, window lateness max "
        f"{phases['window'].get('max_lateness_ms')} ms, ever down (steady) "
        f"{phases['steady'].get('members_ever_down')}, failures (steady) "
        f"{phases['steady'].get('failures')}")
    return result


def run_load(args: argparse.Namespace, workdir: Path) -> dict:
    log(f"[load] {args.load_members} ICMP members + zone {BENCH_ZONE}, dnsperf "
        f"{args.load_seconds:g} s")
    quiet = wait_for_quiet([args.server_cpu, args.client_cpu], args.quiet_wait, args.busy_limit)
    budget = args.warmup + args.idle_seconds + args.load_seconds + args.after_seconds + 90
    server, port, ready = start_server(
        "load", args, workdir,
        config_text(args, "icmp", None, BENCH_ZONE, args.load_members, 2), budget)
    wait_answer(server, port, f"host000.{BENCH_ZONE}")
    wait_answer(server, port, f"pool000.{BENCH_ZONE}", min(args.pool_size, args.load_members))
    sleep_watching(args.warmup, server)
    t_idle = time.monotonic()
    log(f"  idle: {args.idle_seconds:g} s")
    idle = Window([server])
    sleep_watching(args.idle_seconds, server)
    idle_result = idle.result()
    idle_result["cpu_pct"] = idle_result["cpu_pct"][server.name]
    t_load = time.monotonic()
    argv = dnsperf_argv(port, QUERY_FILE, args.clients, outstanding=args.outstanding,
                        seconds=args.load_seconds)
    log(f"  load: {' '.join(argv)}")
    perf = run_dnsperf(argv, workdir / "dnsperf.out", args.client_cpu, args.load_seconds + 20,
                       [server], server.check_alive)
    load_result = perf.window | {"cpu_pct": perf.window["cpu_pct"][server.name],
                                 "dnsperf": {"qps": perf.qps, "lost": perf.lost,
                                             "latency_avg_ms": perf.latency_avg_ms}}
    t_after = time.monotonic()
    sleep_watching(args.after_seconds, server)
    server.stop()
    timeline = [ready, *(line for line in server.lines if "lag_ms" in line)]
    phases = {"startup": phase(timeline, ready["t"], t_idle),
              "idle": phase(timeline, t_idle, t_load), "load": phase(timeline, t_load, t_after),
              "steady": phase(timeline, t_idle)}
    interval_ms = parse_seconds(args.interval) * 1000
    result = {"kind": "load", "members": args.load_members, "quiet": quiet,
              "idle": idle_result, "load": load_result, "phases": phases,
              "dnsperf_argv": " ".join(argv).replace(f"-p {port}", "-p PORT"),
              "timeline": compact(timeline),
              "contended": contended(args, quiet, idle_result)
              or contended(args, quiet, load_result),
              "promise": {
                  "none_down_under_load": phases["steady"].get("members_ever_down", 1) == 0,
                  "lateness_within_interval":
                      phases["load"].get("max_lateness_ms", 1e9) < interval_ms,
                  "none_down_at_startup": phases["startup"].get("members_ever_down", 1) == 0}}
    log(f"  {perf.qps:.0f} qps, server CPU {load_result['cpu_pct']:.0f}%, lateness max idle "
        f"{phases['idle'].get('max_lateness_ms')} ms / load "
        f"{phases['load'].get('max_lateness_ms')} ms, ever down (steady) "
        f"{phases['steady'].get('members_ever_down')}")
    return result


def parse_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * (0.001 if match.group(2) == "ms" else 1.0)


# =========================================================================== report


def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report(results: dict) -> str:
    sc = f"cpu{results['settings']['server_cpu']}"
    cc = f"cpu{results['settings']['client_cpu']}"
    cols = []  # (title, run, its CPU window, its phase)
    for kind in ("icmp", "tcp"):
        if r := results["runs"].get(kind):
            cols.append((f"{kind} x{r['members']}", r, r["window"], r["phases"]["window"]))
    if r := results["runs"].get("load"):
        cols.append((f"idle x{r['members']}", r, r["idle"], r["phases"]["idle"]))
        cols.append((f"dnsperf x{r['members']}", r, r["load"], r["phases"]["load"]))

    def rtt(ph: dict) -> str:
        x = ph.get("rtt_ms", {})
        return f"{x['min']:.2f}/{x['median']:.2f}/{x['p99']:.2f}/{x['max']:.1f}" \
            if x.get("n") else "-"

    rows = [
        ("measured s", lambda r, w, ph: fmt(w["seconds"])),
        ("edgedns CPU % 1 core", lambda r, w, ph: fmt(w["cpu_pct"])),
        (f"{sc} / {cc} busy %", lambda r, w, ph: f"{fmt(w['cores_busy_pct'].get(sc), 0)} / "
                                                 f"{fmt(w['cores_busy_pct'].get(cc), 0)}"),
        ("other processes CPU %", lambda r, w, ph: fmt(w["background_cpu_pct"])),
        ("probes started /s", lambda r, w, ph: fmt(ph.get("probes_per_s"))),
        ("max lateness ms", lambda r, w, ph: fmt(ph.get("max_lateness_ms"), 2)),
        ("max loop lag ms", lambda r, w, ph: fmt(ph.get("max_loop_lag_ms"), 2)),
        ("RTT ms min/med/p99/max", lambda r, w, ph: rtt(ph)),
        ("probe failures", lambda r, w, ph: fmt(ph.get("failures"))),
        ("members ever down", lambda r, w, ph: fmt(ph.get("members_ever_down"))),
        ("socket drops", lambda r, w, ph: ",".join(
            f"{k} {v}" for k, v in ph.get("socket_drops", {}).items() if v) or "0"),
        ("dnsperf qps", lambda r, w, ph: fmt(w.get("dnsperf", {}).get("qps"), 0)),
        ("start-up: lateness ms",
         lambda r, w, ph: fmt(r["phases"]["startup"].get("max_lateness_ms"), 1)),
        ("start-up: failures", lambda r, w, ph: fmt(r["phases"]["startup"].get("failures"))),
        ("start-up: ever down",
         lambda r, w, ph: fmt(r["phases"]["startup"].get("members_ever_down"))),
        ("contended", lambda r, w, ph: "CONTENDED" if r["contended"] else "no"),
    ]
    cells = [[fn(r, w, ph) for _, r, w, ph in cols] for _, fn in rows]
    colw = max([14] + [len(t) + 2 for t, *_ in cols] + [len(c) + 2 for row in cells for c in row])
    out = [f"{'':24}" + "".join(f"{t:>{colw}}" for t, *_ in cols)]
    out += [f"{label:24}" + "".join(f"{c:>{colw}}" for c in row)
            for (label, _), row in zip(rows, cells, strict=True)]
    out.append("")
    for kind, r in results["runs"].items():
        verdicts = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in r["promise"].items())
        out.append(f"promise {kind}: {verdicts}")
    return "\n".join(out)


# =========================================================================== main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS),
                   help="runs to do (default: icmp tcp load)")
    p.add_argument("--members", type=int, default=2000,
                   help="members in the scale runs (default 2000)")
    p.add_argument("--load-members", type=int, default=200,
                   help="ICMP members in the load run (default 200)")
    p.add_argument("--pool-size", type=int, default=10, help="members per pool (default 10)")
    p.add_argument("--interval", default="1s", help="check interval (default 1s)")
    p.add_argument("--timeout", default="500ms", help="check timeout (default 500ms)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds after start-up before measuring (default 5)")
    p.add_argument("--window", type=float, default=20.0,
                   help="steady-state CPU window of the scale runs, s (default 20)")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="load run: idle stretch before dnsperf, s (default 10)")
    p.add_argument("--load-seconds", type=float, default=20.0,
                   help="load run: dnsperf -l (default 20)")
    p.add_argument("--after-seconds", type=float, default=3.0,
                   help="load run: stretch watched after dnsperf, s (default 3)")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c (default 8)")
    p.add_argument("--outstanding", type=int, default=200, help="dnsperf -q (default 200)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU for edgedns (default 0)")
    p.add_argument("--client-cpu", type=int, default=1,
                   help="CPU for dnsperf and the TCP listener (default 1)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop of the server (default uvloop, as `edgedns serve`)")
    p.add_argument("--quiet-wait", type=float, default=300.0,
                   help="seconds to wait for other dnsperf/nsd processes to end (default 300)")
    p.add_argument("--busy-limit", type=float, default=25.0,
                   help="CPU %% of one core that other processes may use before a run counts "
                        "as contended (default 25)")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep configs and logs in DIR instead of a temporary directory")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    try:
        interval, timeout = parse_seconds(args.interval), parse_seconds(args.timeout)
    except ValueError as exc:
        p.error(str(exc))
    if not (0.1 <= interval and 0 < timeout <= interval):
        p.error("need interval >= 100ms and 0 < timeout <= interval")
    if not (1 <= args.members < 65536 and 1 <= args.load_members < 65536
            and 1 <= args.pool_size <= 1000):
        p.error("members must be 1..65535, pool size 1..1000")
    for name in ("warmup", "window", "idle_seconds", "load_seconds", "after_seconds"):
        if not 0 < getattr(args, name) <= 600:
            p.error(f"--{name.replace('_', '-')} must be in (0, 600]")
    if not 0 <= args.quiet_wait <= 3600:
        p.error("--quiet-wait must be in [0, 3600]")
    return args


def run(args: argparse.Namespace) -> int:
    preflight(["taskset"] + (["dnsperf"] if "load" in args.only else []),
              [args.server_cpu, args.client_cpu])
    if os.geteuid() != 0 and {"icmp", "load"} & set(args.only):
        log("note: not root; ICMP checks use an unprivileged ping socket if the sysctl "
            "net.ipv4.ping_group_range allows it")
    results: dict = run_info() | {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgedns-probers-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for kind in RUNS:
            if kind in args.only:
                results["runs"][kind] = (run_load(args, workdir) if kind == "load"
                                         else run_scale(kind, args, workdir))
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print()
    print(report(results))
    contended_runs = [k for k, r in results["runs"].items() if r["contended"]]
    if contended_runs:
        print(f"\nCONTENDED: other dnsperf/nsd processes or background CPU load during "
              f"{', '.join(contended_runs)}; those figures are pessimistic")
    version = results["edgedns"]
    print(f"\n{results['date']}, edgedns {version.get('commit')}"
          f"{'+dirty' if version.get('dirty') else ''}, {results['elapsed_s']} s in all; CPU % "
          "is utime+stime of the edgedns process over the window; RTT/lateness from the "
          "server's own probes")
    write_json(args.json, results)
    return 0 if all(all(r["promise"].values()) for r in results["runs"].values()) else 2


if __name__ == "__main__":
    if sys.argv[1:2] == ["_serve"]:
        sys.exit(child_serve(*sys.argv[2:6]))
    arguments = parse_args(sys.argv[1:])
    sys.exit(main(lambda: run(arguments)))
