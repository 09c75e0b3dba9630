#!/usr/bin/env python3
"""False DOWNs on a lossy link: members behind a link that drops a share of the ICMP echo
requests at random, probed at the default check settings for ten minutes.

Usage (root: network namespaces and a raw ICMP socket; needs iproute2 and nftables):

    sudo .venv/bin/python bench/lossy.py                        # 100 members, 5 %, 600 s
    sudo .venv/bin/python bench/lossy.py --loss 10 --seconds 120 --json lossy.json

One namespace host holds --members addresses (tests/netns.py, 198.18.0.0/15); nftables in
it drops --loss percent of incoming ICMP at random (`numgen random`), so each probe is lost
with that probability. edgedns probes them all with its default checks (from `CheckSpec`);
the script counts the DOWN transitions edgedns logs (every one is false: the hosts never
fail) and the probes it started (beyond one per interval per member, each is a retry
confirming a change). Exits 1 on any false DOWN.

Expected at the defaults (fall 5): a false DOWN needs 5 probes in a row lost, 0.05^5 =
3.1e-7 per probe, about 0.04 in 10 minutes for 100 members (120,000 probes).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

from common import (
    REPO,
    BenchError,
    Proc,
    free_port,
    lab_main,
    one_pool_yaml,
    scrape,
    write_json,
)

sys.path.insert(0, str(REPO))
from edgedns.pools.health.checks import CheckSpec  # noqa: E402
from tests.netns import NetnsLab  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--loss", type=int, default=5, help="percent of ICMP dropped (5)")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def run(args: argparse.Namespace) -> int:
    defaults = CheckSpec()
    with tempfile.TemporaryDirectory(prefix="edgedns-lossy-") as tmp_name, NetnsLab(1) as lab:
        tmp = Path(tmp_name)
        (farm,) = lab.hosts
        addresses = lab.add_addresses(farm, args.members)
        port, admin = free_port(), free_port()
        config = tmp / "lossy.yaml"
        config.write_text(one_pool_yaml(addresses, admin))
        log = tmp / "edgedns.log"
        server = Proc("edgedns", [sys.executable, "-m", "edgedns", "serve", "-c", str(config),
                                  "--listen", f"127.0.0.1:{port}"], log)
        try:
            time.sleep(3)
            server.check_alive()
            before = scrape(admin)
            if before.get("edgedns_pool_healthy_members") != args.members:
                raise BenchError(f"not every member up before the loss: {before}")
            lab.drop_icmp(farm, args.loss)
            print(f"{args.members} members, {args.loss} % ICMP loss, {args.seconds:g} s at "
                  f"interval {defaults.interval:g}s timeout {defaults.timeout:g}s fall "
                  f"{defaults.fall} retry_interval {defaults.retry_interval:g}s", flush=True)
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                time.sleep(min(10.0, args.seconds - (time.monotonic() - started)))
                server.check_alive()
            after = scrape(admin)
        finally:
            server.stop()
        downs = [line for line in log.read_text().splitlines() if " is DOWN" in line]
    probes = after["edgedns_probes_total"] - before["edgedns_probes_total"]
    scheduled = args.members * args.seconds / defaults.interval
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "members": args.members, "loss_percent": args.loss, "seconds": args.seconds,
        "settings": {"interval": defaults.interval, "timeout": defaults.timeout,
                     "fall": defaults.fall, "rise": defaults.rise,
                     "retry_interval": defaults.retry_interval},
        "false_downs": len(downs), "probes": probes, "retries": probes - scheduled,
        "down_lines": downs[:20],
    }
    print(f"probes {probes:.0f} ({probes - scheduled:.0f} beyond one per interval: retries), "
          f"false DOWNs {len(downs)}")
    for line in downs[:20]:
        print("  " + line)
    write_json(args.json, result)
    return 1 if downs else 0


if __name__ == "__main__":
    arguments = parse_args()
    lab_main("lossy.py", lambda: run(arguments))
