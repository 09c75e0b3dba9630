#!/usr/bin/env python3
"""What one query costs in process, by kind: a repeat, and never-seen names of each flood.

In-process, no sockets: the query handler edgedns serves with (`build_handler`), for the zone
`stall.py flood` serves (1,000 hosts, `*.wild` A, `*.pool CNAME web` with `web` a pool of two
unchecked members) plus --records A records `r000000`... Each kind is --queries UDP queries
with EDNS from 127.0.0.1, after a warm-up of 1,000: `repeat` cycles over the 1,000 hosts (the
packet cache's hits), the others are distinct names: `first`, the `r` records, each asked
once (a reply packed on first use; --records / (--repeats + 1) a pass), and random names
(`nx`: `<12 random>.stall.lan`, `wild` under `*.wild`, `pool` under `*.pool`, `deep`:
`<12 random>.<6 random>.stall.lan`, a random parent each). Prints microseconds per query,
the best of --repeats passes over fresh names.

    .venv/bin/python bench/querycost.py [--queries 100000] [--records 100000] [--repeats 3]

Run it with the interpreter that has edgedns installed (the venv's). On a socket the same
queries cost the system calls and the event loop on top (`stall.py flood` measures that).
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from edgedns import config as config_mod
from edgedns import heap
from edgedns.server.lifecycle import build_handler

ZONE = "stall.lan"
HOSTS = 1000
KINDS = ("repeat", "first", "nx", "wild", "pool", "deep")


def write_config(directory: Path, records: int) -> Path:
    zone = directory / "stall.zone"
    body = [f"$ORIGIN {ZONE}.", "$TTL 300", "@ IN SOA ns1 hostmaster 1 3600 600 86400 30",
            "@ IN NS ns1", "ns1 IN A 10.0.0.1"]
    body += [f"host{i:04d} IN A 10.1.{i // 250}.{i % 250 + 1}" for i in range(HOSTS)]
    body += [f"r{i:06d} IN A 10.4.{i // 250 % 250}.{i % 250 + 1}" for i in range(records)]
    body += ["*.wild IN A 10.2.0.1", "*.pool IN CNAME web"]
    zone.write_text("\n".join(body) + "\n")
    path = directory / "querycost.yaml"
    path.write_text(f"admin: false\nzones:\n  {ZONE}:\n    file: {zone}\n    pools:\n"
                    "      web: {ttl: 5, check: {type: none}, members: [10.3.0.1, 10.3.0.2]}\n")
    return path


def names(kind: str, count: int, rng: random.Random, unasked: list[int]) -> list[str]:
    """`count` names of `kind`; `first` takes its records from `unasked`."""
    def label(size: int) -> str:
        return "".join(rng.choices(string.ascii_lowercase + string.digits, k=size))

    if kind == "first":
        taken, unasked[:] = unasked[:count], unasked[count:]
        return [f"r{i:06d}.{ZONE}" for i in taken]
    if kind == "repeat":
        return [f"host{i % HOSTS:04d}.{ZONE}" for i in range(count)]
    under = {"nx": ZONE, "wild": f"wild.{ZONE}", "pool": f"pool.{ZONE}"}
    if kind == "deep":
        return [f"{label(12)}.{label(6)}.{ZONE}" for _ in range(count)]
    return [f"{label(12)}.{under[kind]}" for _ in range(count)]


def cost(handler, kind: str, args: argparse.Namespace, rng: random.Random) -> float:
    """Microseconds per query, the best of `args.repeats` passes (each over fresh names)."""
    unasked = rng.sample(range(args.records), args.records)
    count = args.records // (args.repeats + 1) if kind == "first" else args.queries
    for name in names(kind, min(count, 1000), rng, unasked):
        handler.respond(common.make_query(name, 1, 7, 0x0100, 1232), False, "127.0.0.1")
    best = float("inf")
    for _ in range(args.repeats):
        packets = [common.make_query(name, 1, i & 0xFFFF, 0x0100, 1232)
                   for i, name in enumerate(names(kind, count, rng, unasked))]
        start = time.perf_counter()
        for packet in packets:
            handler.respond(packet, False, "127.0.0.1")
        best = min(best, (time.perf_counter() - start) / len(packets) * 1e6)
    return best


def run(args: argparse.Namespace) -> int:
    rng = random.Random(8)
    with tempfile.TemporaryDirectory(prefix="edgedns-querycost-") as tmp:
        handler = build_handler(config_mod.load(write_config(Path(tmp), args.records)))
        heap.keep()  # as the server does once its data is in place
        rows = {kind: cost(handler, kind, args, rng) for kind in KINDS}
    print(f"\n== querycost: microseconds per query in process, {args.queries} queries "
          f"({args.records // (args.repeats + 1)} for first), {args.records} records, "
          f"best of {args.repeats}")
    for kind, micros in rows.items():
        print(f"{kind:8}{micros:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "queries": args.queries,
                                         "records": args.records}, indent=2))
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, metavar="FILE")
    args = parser.parse_args()
    if not (1 <= args.queries <= 1_000_000 and 1 <= args.repeats <= 20
            and args.repeats + 1 <= args.records <= 1_000_000):
        parser.error("--queries 1..1000000, --repeats 1..20, --records repeats+1..1000000")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
