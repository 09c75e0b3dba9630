"""Failover with real hosts: network-namespace hosts go silent, stop listening or vanish, and
come back, while a real edgedns answers their pool; dnspython polls it every ~20 ms.

The product promise timed here: a member leaves the A answers within
interval × fall + timeout after its host fails, and returns within interval × rise + timeout
after it recovers. The bounds asserted add 0.2 s for scheduling noise and nothing else.
Short check settings (interval 200 ms, timeout 100 ms, fall 2, rise 2) keep it fast:
both bounds are 0.7 s. Each failure is injected at a random phase of the probe schedule.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests import netns
from tests.conftest import needs_root

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` command"),
]

netns_lab = netns.netns_lab  # the fixture

INTERVAL, TIMEOUT, FALL, RISE = 0.2, 0.1, 2, 2
SLACK = 0.2
VANISH_BOUND = INTERVAL * FALL + TIMEOUT + SLACK
RETURN_BOUND = INTERVAL * RISE + TIMEOUT + SLACK
POLL = 0.02
PORT = 8080


def config(check: str, pools: dict[str, str], members: list[str]) -> str:
    """A zone pool.lan with one pool per `pools` entry (name → when_all_down)."""
    listed = ", ".join(members)
    blocks = "".join(
        f"""
      {name}:
        ttl: 1
        when_all_down: {when}
        members: [{listed}]"""
        for name, when in pools.items()
    )
    return f"""
defaults:
  check: {{{check}, interval: {INTERVAL * 1000:.0f}ms, timeout: {TIMEOUT * 1000:.0f}ms,
          fall: {FALL}, rise: {RISE}}}
zones:
  pool.lan:
    records:
      ns1: {{A: 127.0.0.1}}
    pools:{blocks}
"""


ICMP = "type: icmp"
TCP = f"type: tcp, port: {PORT}"


@dataclass
class Poller:
    """Polls one name's A answer and keeps what it saw, for assertions and diagnostics."""

    srv: object
    qname: str
    seen: list[tuple[float, str, frozenset[str]]] = field(default_factory=list)

    def answer(self) -> tuple[str, frozenset[str]]:
        query = dns.message.make_query(self.qname, "A", use_edns=False)
        try:
            reply = dns.query.udp(query, self.srv.host, port=self.srv.port, timeout=0.5)
        except dns.exception.Timeout:
            return "TIMEOUT", frozenset()
        addresses = frozenset(
            rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
            for rd in rrset
        )
        return dns.rcode.to_text(reply.rcode()), addresses

    def until(self, since: float, want, limit: float, what: str) -> float:
        """Seconds from `since` (monotonic) to the first answer for which `want(rcode,
        addresses)` holds; fails when it takes over `limit` (polling up to 1 s longer, so the
        message says how late it was)."""
        while True:
            rcode, addresses = self.answer()
            now = time.monotonic()
            self.seen.append((now - since, rcode, addresses))
            if want(rcode, addresses):
                elapsed = now - since
                print(f"{what}: {elapsed:.3f} s (bound {limit:.3f} s)")
                assert elapsed <= limit, (
                    f"{what}: took {elapsed:.3f} s, bound {limit:.3f} s\n{self.history(since)}"
                )
                return elapsed
            if now - since > limit + 1.0:
                pytest.fail(f"{what}: not within {limit + 1.0:.1f} s\n{self.history(since)}")
            time.sleep(POLL)

    def steady(self, seconds: float, want, what: str) -> None:
        """Every answer for `seconds` satisfies `want` (no flapping back)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rcode, addresses = self.answer()
            assert want(rcode, addresses), f"{what}: got {rcode} {sorted(addresses)}"
            time.sleep(POLL)

    def history(self, since: float) -> str:
        return "\n".join(f"  +{t:.3f}s {rcode} {sorted(a)}" for t, rcode, a in self.seen[-60:])


def exactly(*addresses: str):
    wanted = frozenset(addresses)
    return lambda rcode, seen: rcode == "NOERROR" and seen == wanted


def wait_healthy(srv, poller: Poller, addresses: list[str]) -> None:
    """Every target has its first verdict and the pool answers all `addresses`."""
    deadline = time.monotonic() + 5
    while not srv.server.pools.all_probed():
        assert time.monotonic() < deadline, "first probes did not complete within 5 s"
        time.sleep(POLL)
    poller.until(time.monotonic(), exactly(*addresses), 5, "pool healthy at start")


def random_phase() -> None:
    """Inject the next failure at a random point of the probe cycle."""
    time.sleep(random.uniform(0, INTERVAL))


def test_icmp_silenced_host_leaves_and_returns(edgedns_server, netns_lab):
    lab = netns_lab(2)
    a, b = lab.hosts
    srv = edgedns_server(config(ICMP, {"www": "serve_all"}, [a.address, b.address]))
    www = Poller(srv, "www.pool.lan")
    wait_healthy(srv, www, [a.address, b.address])

    random_phase()
    www.until(lab.silence_icmp(a), exactly(b.address), VANISH_BOUND, "silenced host leaves")
    www.steady(2 * INTERVAL, exactly(b.address), "silenced host stays out")

    random_phase()
    www.until(lab.unsilence_icmp(a), exactly(a.address, b.address), RETURN_BOUND,
              "answering host returns")
    www.steady(2 * INTERVAL, exactly(a.address, b.address), "returned host stays in")


def test_tcp_listener_stopped_leaves_and_returns(edgedns_server, netns_lab):
    lab = netns_lab(2)
    a, b = lab.hosts
    for host in (a, b):
        lab.start_tcp_listener(host, PORT)
    srv = edgedns_server(config(TCP, {"www": "serve_all"}, [a.address, b.address]))
    www = Poller(srv, "www.pool.lan")
    wait_healthy(srv, www, [a.address, b.address])

    random_phase()
    www.until(lab.stop_tcp_listener(a, PORT), exactly(b.address), VANISH_BOUND,
              "host without listener leaves")
    www.steady(2 * INTERVAL, exactly(b.address), "host without listener stays out")

    random_phase()
    www.until(lab.start_tcp_listener(a, PORT), exactly(a.address, b.address), RETURN_BOUND,
              "listening host returns")
    www.steady(2 * INTERVAL, exactly(a.address, b.address), "returned host stays in")


@pytest.mark.parametrize("check", [ICMP, TCP], ids=["icmp", "tcp"])
def test_vanished_host_leaves(edgedns_server, netns_lab, check):
    lab = netns_lab(2)
    a, b = lab.hosts
    if check == TCP:
        for host in (a, b):
            lab.start_tcp_listener(host, PORT)
    srv = edgedns_server(config(check, {"www": "serve_all"}, [a.address, b.address]))
    www = Poller(srv, "www.pool.lan")
    wait_healthy(srv, www, [a.address, b.address])

    random_phase()
    www.until(lab.remove_link(a), exactly(b.address), VANISH_BOUND, "vanished host leaves")
    www.steady(2 * INTERVAL, exactly(b.address), "vanished host stays out")


def test_all_members_down(edgedns_server, netns_lab):
    lab = netns_lab(2)
    a, b = lab.hosts
    both = (a.address, b.address)
    srv = edgedns_server(
        config(ICMP, {"sf": "servfail", "sa": "serve_all"}, [a.address, b.address])
    )
    sf, sa = Poller(srv, "sf.pool.lan"), Poller(srv, "sa.pool.lan")
    wait_healthy(srv, sf, list(both))
    wait_healthy(srv, sa, list(both))

    random_phase()
    lab.silence_icmp(a)
    since = lab.silence_icmp(b)
    sf.until(since, lambda rcode, _: rcode == "SERVFAIL", VANISH_BOUND,
             "servfail pool fails once all are down")
    # Both pools share the probes, so serve_all switched in the same instant.
    sa.steady(2 * INTERVAL, exactly(*both), "serve_all pool answers every member")
    sf.steady(2 * INTERVAL, lambda rcode, _: rcode == "SERVFAIL", "servfail pool stays failed")

    random_phase()
    lab.unsilence_icmp(a)
    since = lab.unsilence_icmp(b)
    sf.until(since, exactly(*both), RETURN_BOUND, "servfail pool answers again")
    sa.steady(2 * INTERVAL, exactly(*both), "serve_all pool answers every member")
