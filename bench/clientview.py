#!/usr/bin/env python3
"""Failover as a client sees it: a backend vanishes, how long until an application on
another host stops getting its address from the system resolver?

Usage (root: network namespaces; needs iproute2, and dnsmasq for the caching mode):

    sudo python3 bench/clientview.py                    # pool ttl at its default
    sudo python3 bench/clientview.py --ttl 5 --repeats 5 --json clientview.json

What one run does:

1. builds 3 hosts with tests/netns.py (namespaces on veth pairs in 198.18.0.0/15): two
   backends in an ICMP-checked pool (policy `all`, every check setting at its default), and
   a client host;
2. starts edgedns on the client link's root-side address, port 53;
3. per client mode, --repeats trials:
   - `stub`: the client host's /etc/resolv.conf names edgedns, and a Python loop in the
     client namespace calls getaddrinfo() (glibc's stub resolver: no cache) every 20 ms;
   - `dnsmasq`: the client host runs dnsmasq (a caching forwarder, as on most edge
     routers) on its loopback, forwarding to edgedns; resolv.conf names dnsmasq; the same
     loop asks through it;
   each trial waits a random fraction of the check interval, takes one backend's link down
   (it vanishes) and times how long until getaddrinfo() no longer returns its address,
   then brings it back and waits until it is returned again;
4. prints min/median/max per mode.

Expected: `stub` sees the change when edgedns does (bench/failover.py: about 0.5-1.0 s);
`dnsmasq` up to one pool `ttl` later, since it serves its cached answer until it expires.

Bounded: every wait gives up after 20 s, the run after --max-seconds (300); the server,
dnsmasq, pollers, namespaces and the per-namespace resolv.conf go on every way out.
"""

from __future__ import annotations

import argparse
import datetime
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, BenchError, Proc, lab_main, one_pool_yaml, write_json

sys.path.insert(0, str(REPO))
from edgedns.pools.health.checks import CheckSpec  # noqa: E402
from tests.netns import Host, NetnsLab  # noqa: E402

NAME = "app.pool.lan"
POLL = 0.02
GIVE_UP = 20.0

POLLER = """\
import json, socket, sys, time
last = None
while True:
    try:
        found = sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], None, socket.AF_INET,
                                                            socket.SOCK_STREAM)})
    except socket.gaierror as exc:
        found = [f"error: {exc}"]
    if found != last:
        print(json.dumps({"t": time.monotonic(), "addresses": found}), flush=True)
        last = found
    time.sleep(float(sys.argv[2]))
"""


class Client:
    """The poller in the client namespace, and what it saw."""

    def __init__(self, host: Host, log: Path) -> None:
        self.proc = Proc("poller", ["ip", "netns", "exec", host.netns, sys.executable, "-c",
                                    POLLER, NAME, str(POLL)], log, json_lines=True)

    def until(self, since: float, want, deadline: float) -> float:
        """Seconds from `since` to the first answer after it that `want`s (0 when the
        client already had one)."""
        give_up = time.monotonic() + GIVE_UP
        while True:
            self.proc.check_alive()
            lines = list(self.proc.lines)
            for line in lines:
                if line["t"] >= since and want(frozenset(line["addresses"])):
                    return line["t"] - since
            if lines and lines[-1]["t"] < since and want(frozenset(lines[-1]["addresses"])):
                return 0.0  # already so when asked
            if time.monotonic() > min(give_up, deadline):
                raise BenchError(f"the client did not see the change within {GIVE_UP:g} s: "
                                 f"{self.proc.lines[-3:]}; its log:\n{self.proc.log_tail()}")
            time.sleep(POLL)

    def stop(self) -> None:
        self.proc.stop()


def run_mode(mode: str, lab: NetnsLab, backends: list[Host], client_host: Host, tmp: Path,
             repeats: int, deadline: float) -> list[float]:
    resolv_dir = Path("/etc/netns") / client_host.netns
    resolv_dir.mkdir(parents=True, exist_ok=True)
    dnsmasq = None
    try:
        if mode == "dnsmasq":
            dnsmasq = Proc("dnsmasq", [
                "ip", "netns", "exec", client_host.netns, "dnsmasq", "--keep-in-foreground",
                "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--server={client_host.gateway}", "--cache-size=1000", "--user=root",
                "--pid-file="], tmp / "dnsmasq.log")
            (resolv_dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        else:
            (resolv_dir / "resolv.conf").write_text(f"nameserver {client_host.gateway}\n")
        client = Client(client_host, tmp / f"poller-{mode}.log")
        both = frozenset(h.address for h in backends)
        times = []
        try:
            for i in range(repeats):
                host = backends[i % 2]
                client.until(0.0, lambda seen, w=both: seen == w, deadline)
                time.sleep(random.uniform(0, CheckSpec().interval))
                since = lab.unplug(host)
                gone = client.until(since, lambda seen, h=host: h.address not in seen
                                    and any(not a.startswith("error") for a in seen), deadline)
                times.append(gone)
                print(f"  {mode} trial {i + 1}/{repeats}: {host.address} gone for the client "
                      f"after {gone:.3f} s", flush=True)
                lab.plug(host)
                client.until(time.monotonic(), lambda seen, w=both: seen == w, deadline)
        finally:
            client.stop()
        return times
    finally:
        if dnsmasq is not None:
            dnsmasq.stop()
        shutil.rmtree(resolv_dir, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="trials per client mode (10)")
    parser.add_argument("--ttl", type=int, default=None,
                        help="the pool's ttl (default: edgedns's default)")
    parser.add_argument("--modes", nargs="+", choices=("stub", "dnsmasq"),
                        default=["stub", "dnsmasq"])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def run(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    deadline = time.monotonic() + args.max_seconds
    if "dnsmasq" in args.modes and shutil.which("dnsmasq") is None:
        raise BenchError("dnsmasq is missing: apt-get install -y dnsmasq-base")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgedns-clientview-") as tmp_name, \
            NetnsLab(3) as lab:
        tmp = Path(tmp_name)
        backends, client_host = lab.hosts[:2], lab.hosts[2]
        config = tmp / "clientview.yaml"
        ttl = f"        ttl: {args.ttl}\n" if args.ttl is not None else ""
        config.write_text(one_pool_yaml([h.address for h in backends],
                                        pool_keys=ttl + "        policy: all\n"))
        server = Proc("edgedns", [sys.executable, "-m", "edgedns", "serve", "-c", str(config),
                                  "--listen", f"{client_host.gateway}:53"], tmp / "edgedns.log")
        try:
            time.sleep(1.5)
            server.check_alive()
            print(f"edgedns on {client_host.gateway}:53, pool ttl "
                  f"{args.ttl if args.ttl is not None else 'default'}", flush=True)
            for mode in args.modes:
                times = run_mode(mode, lab, backends, client_host, tmp, args.repeats, deadline)
                results[mode] = {"times": times, "min": min(times),
                                 "median": statistics.median(times), "max": max(times)}
        finally:
            server.stop()
    print(f"\n{'client':8} {'min':>7} {'median':>7} {'max':>7}")
    for mode, r in results.items():
        print(f"{mode:8} {r['min']:6.3f}s {r['median']:6.3f}s {r['max']:6.3f}s")
    write_json(args.json, {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ttl": args.ttl, "results": results,
    })
    return 0


if __name__ == "__main__":
    arguments = parse_args()
    lab_main("clientview.py", lambda: run(arguments))
