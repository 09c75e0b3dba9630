#!/usr/bin/env python3
"""What a pool answer costs per query as the pool grows: 10 members against 5,000.

In-process, no sockets: the query handler edgedns serves with (`build_handler`), asked
`--queries` UDP queries (after a warm-up pass) from `--clients` distinct client addresses, for
a pool of each policy and the `_edgedns.<pool>` debug TXT, once with 10 members and once
with --members. Members use `check: {type: none}`, so all are healthy. Prints microseconds
per query and the ratio; the promise (issue 9) is at most 1.2 x the 10-member cost.

    .venv/bin/python bench/poolcost.py [--members 5000] [--queries 50000] [--json FILE]

Run it with the interpreter that has edgedns installed (the venv's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from edgedns import config as config_mod
from edgedns import heap
from edgedns.server.lifecycle import build_handler

POLICIES = ("all", "round_robin", "random", "weighted", "hash", "failover")


def write_config(path: Path, members: int) -> None:
    addresses = ", ".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(members))
    pools = "".join(f"      {policy}: {{policy: {policy}, check: {{type: none}}, "
                    f"members: [{addresses}]}}\n" for policy in POLICIES)
    path.write_text(f"admin: false\nzones:\n  cost.lan:\n    pools:\n{pools}")


def cost(handler, packet: bytes, clients: list[str], count: int, repeats: int) -> float:
    """Microseconds per query, the best of `repeats` runs."""
    for i in range(count):  # warm-up: build what is built on first use (a variant each)
        handler.respond(packet, False, clients[i % len(clients)])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            handler.respond(packet, False, clients[i % len(clients)])
        best = min(best, (time.perf_counter() - start) / count * 1e6)
    return best


def run(args: argparse.Namespace) -> int:
    clients = [f"127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(args.clients)]
    rows: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="edgedns-poolcost-") as tmp:
        for size in (10, args.members):
            path = Path(tmp) / f"pools-{size}.yaml"
            write_config(path, size)
            handler = build_handler(config_mod.load(path))
            heap.keep()  # as the server does once its data is in place
            for policy in POLICIES:
                rows.setdefault(policy, {})[size] = cost(
                    handler, common.make_query(f"{policy}.cost.lan", 1, 7), clients,
                    args.queries, args.repeats)
            # Debug TXT: at most 20 a second are answered as such; time the answers made from
            # the reply built once, in bursts the rate allows (its budget refilled between).
            rows.setdefault("debug TXT", {})[size] = debug_cost(handler, args.repeats)
    print(f"\n== poolcost: microseconds per query, {args.queries} queries from "
          f"{args.clients} clients, best of {args.repeats}")
    print(f"{'':12}{'10 members':>12}{f'{args.members} members':>16}{'ratio':>8}")
    worst = 0.0
    for name, by_size in rows.items():
        ratio = by_size[args.members] / by_size[10]
        worst = max(worst, ratio)
        print(f"{name:12}{by_size[10]:>12.2f}{by_size[args.members]:>16.2f}{ratio:>8.2f}")
    print(f"promise: at most 1.2 x the 10-member cost: {'holds' if worst <= 1.2 else 'FAILS'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "members": args.members}, indent=2))
    return 0


def debug_cost(handler, repeats: int) -> float:
    from edgedns.server import handler as handler_mod

    packet = common.make_query("_edgedns.hash.cost.lan", 16, 7)
    handler.respond(packet, False, "127.0.0.1")  # builds the reply once
    samples = []
    for _ in range(repeats * 100):
        handler._debug_budget.tokens = handler._debug_budget.burst
        count = handler_mod.DEBUG_RATE
        start = time.perf_counter()
        for _ in range(count):
            handler.respond(packet, False, "127.0.0.1")
        samples.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(samples)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="FILE")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(run(parse_args()))
