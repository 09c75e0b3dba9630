#!/usr/bin/env python3
"""What ICMP health checks cost edgedns: 2,000 members against Debian's fping doing the same
work, and other pings on the host (a `ping -f`) beside it.

Usage (root: raw ICMP sockets; needs fping and iputils-ping from Debian):

    sudo .venv/bin/python bench/icmpcost.py                 # both parts, about 2 minutes
    sudo .venv/bin/python bench/icmpcost.py --only flood --window 10
    sudo .venv/bin/python bench/icmpcost.py --json icmpcost.json

Parts:

- `fping`: --members loopback addresses (127.1.0.1 on; Linux answers all of 127/8), probed
  once a second each. First edgedns (one ICMP-checked pool of them, `interval: 1s`, the
  other check settings at their defaults), then `fping -l -q -p 1000 -i 1000/N -t 500 -f
  TARGETS` (loop mode, each target every 1,000 ms, packets spread evenly), both pinned to
  CPU 0: after --warmup seconds, the CPU time each uses over --window seconds, from /proc;
  --rounds times. Reported: each round's, and the median of edgedns's CPU as a multiple of
  fping's (issue 10 promises at most 1.5 ×).
- `flood`: edgedns with 10 ICMP-checked members at the default checks; its CPU over
  --window seconds idle, then over --window seconds while `ping -f` floods another loopback
  address (127.3.0.1): every echo request and reply of the flood passes every raw ICMP
  socket on the host, unless a kernel filter keeps it out. Reported: the rise, in percent of
  one core (issue 10 promises under 2 %), and how many packets the flood sent.

The two never run at once (each would see the other's packets). Bounded: every child is
stopped on exit, errors, Ctrl-C and SIGTERM; each window is --window seconds.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BenchError,
    Proc,
    free_port,
    main,
    one_pool_yaml,
    session_cpu_seconds,
    write_json,
)

FLOOD_TARGET = "127.3.0.1"


def loopback_members(count: int) -> list[str]:
    """`count` distinct addresses 127.1.0.1 on, skipping .0 and .255."""
    out = []
    n = 0
    while len(out) < count:
        third, fourth = divmod(n, 254)
        out.append(f"127.1.{third}.{fourth + 1}")
        n += 1
    return out


CPU = 0
"""Both probers run pinned to this CPU, one after the other, so they compete with the same
neighbours."""


def start_edgedns(tmp: Path, members: list[str], interval: str | None) -> Proc:
    check = f"        check: {{interval: {interval}}}\n" if interval else ""
    config = tmp / f"icmpcost-{len(members)}.yaml"
    config.write_text(one_pool_yaml(members, pool_keys=check))
    return Proc("edgedns", [sys.executable, "-m", "edgedns", "serve", "-c", str(config),
                            "--listen", f"127.0.0.1:{free_port()}", "--log-level", "warning"],
                tmp / f"edgedns-{len(members)}.log", cpu=CPU)


def cpu_over(proc: Proc, warmup: float, window: float) -> float:
    """Seconds of CPU `proc` (its whole session) used in `window` s after `warmup` s."""
    time.sleep(warmup)
    proc.check_alive()
    before = session_cpu_seconds(proc.pid)
    time.sleep(window)
    proc.check_alive()
    return session_cpu_seconds(proc.pid) - before


def part_fping(args: argparse.Namespace, tmp: Path) -> dict:
    members = loopback_members(args.members)
    targets = tmp / "targets.txt"
    targets.write_text("\n".join(members) + "\n")
    spacing = 1000 / args.members
    rounds = []
    for n in range(args.rounds):
        edgedns = start_edgedns(tmp, members, "1s")
        try:
            edgedns_cpu = cpu_over(edgedns, args.warmup, args.window)
        finally:
            edgedns.stop()
        fping = Proc("fping", ["fping", "-l", "-q", "-p", "1000", "-i", f"{spacing:.3f}", "-t",
                               "500", "-f", str(targets)], tmp / "fping.log", cpu=CPU)
        try:
            fping_cpu = cpu_over(fping, args.warmup, args.window)
        finally:
            fping.stop()
        ratio = edgedns_cpu / fping_cpu if fping_cpu else float("inf")
        rounds.append({"edgedns_cpu_s": edgedns_cpu, "fping_cpu_s": fping_cpu, "ratio": ratio})
        print(f"fping part, round {n + 1}: {args.members} members each once a second, "
              f"{args.window:g} s: edgedns {100 * edgedns_cpu / args.window:.1f} % of a core, "
              f"fping {100 * fping_cpu / args.window:.1f} %: {ratio:.2f} x", flush=True)
    median = statistics.median(r["ratio"] for r in rounds)
    print(f"fping part: median ratio {median:.2f} x over {args.rounds} rounds", flush=True)
    return {"members": args.members, "rounds": rounds, "median_ratio": median}


def part_flood(args: argparse.Namespace, tmp: Path) -> dict:
    edgedns = start_edgedns(tmp, loopback_members(10), None)
    try:
        idle = cpu_over(edgedns, args.warmup, args.window)
        flood = subprocess.Popen(["ping", "-f", "-q", "-w", str(int(args.window + 2)),
                                  FLOOD_TARGET], stdout=subprocess.PIPE, text=True)
        try:
            flooded = cpu_over(edgedns, 0.5, args.window)
        finally:
            out, _ = flood.communicate(timeout=args.window + 10)
    finally:
        edgedns.stop()
    sent = re.search(r"(\d+) packets transmitted", out or "")
    packets = int(sent.group(1)) if sent else None
    rise = 100 * (flooded - idle) / args.window
    print(f"flood part: edgedns {100 * idle / args.window:.2f} % of a core idle, "
          f"{100 * flooded / args.window:.2f} % beside ping -f ({packets} echo requests in "
          f"about {args.window + 2.5:g} s): +{rise:.2f} % of a core", flush=True)
    return {"idle_cpu_s": idle, "flooded_cpu_s": flooded, "rise_percent_of_core": rise,
            "flood_packets": packets}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=("fping", "flood"),
                        default=["fping", "flood"])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="edgedns then fping, this many times (3); the median ratio counts")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def run(args: argparse.Namespace) -> int:
    for tool in ("fping", "ping"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is missing: apt-get install -y fping iputils-ping")
    results: dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "window_s": args.window,
    }
    with tempfile.TemporaryDirectory(prefix="edgedns-icmpcost-") as tmp_name:
        tmp = Path(tmp_name)
        if "fping" in args.only:
            results["fping"] = part_fping(args, tmp)
        if "flood" in args.only:
            results["flood"] = part_flood(args, tmp)
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main(lambda: run(parse_args())))
