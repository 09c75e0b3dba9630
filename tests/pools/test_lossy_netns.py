"""A lossy link does not flap members: with the default checks (fall 5, retries every
100 ms) single lost probes are forgiven. 20 members behind a link that drops 10 % of echo
requests at random (nftables in the host's namespace) for 15 s: about 60 probes are lost,
and no member goes down. With the old defaults (fall 2, no retries) about 6 would have.
bench/lossy.py runs the long version (100 members, 5 %, 10 minutes)."""

from __future__ import annotations

import logging
import shutil
import time

import pytest

from tests import netns
from tests.conftest import needs_root

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` command"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables' `nft` command"),
]

netns_lab = netns.netns_lab  # the fixture

MEMBERS, LOSS, SECONDS = 20, 10, 15.0


def test_random_icmp_loss_is_forgiven_at_the_default_checks(edgedns_server, netns_lab,
                                                            caplog):
    lab = netns_lab(1)
    (farm,) = lab.hosts
    addresses = lab.add_addresses(farm, MEMBERS)
    srv = edgedns_server(f"""
zones:
  pool.lan:
    records:
      ns1: {{A: 127.0.0.1}}
    pools:
      app:
        members: [{", ".join(addresses)}]
""")
    deadline = time.monotonic() + 5
    while not (srv.server.pools.all_probed()
               and all(h.up for h in srv.server.pools.health.values())):
        assert time.monotonic() < deadline, "members not all up within 5 s"
        time.sleep(0.05)

    failed: list[str] = []
    sink = srv.server.scheduler.on_result

    def counting(target, result):
        if not result.ok:
            failed.append(target.address)
        return sink(target, result)

    srv.server.scheduler.on_result = counting
    caplog.set_level(logging.INFO, logger="edgedns.pools.pool")
    lab.drop_icmp(farm, LOSS)
    time.sleep(SECONDS)
    downs = [m for m in caplog.messages if " is DOWN" in m]
    assert downs == []
    assert all(h.up for h in srv.server.pools.health.values())
    assert len(failed) >= 20, "the link lost too few probes for this test to mean anything"
