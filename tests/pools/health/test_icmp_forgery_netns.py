"""Forged echo replies cannot keep a dead member up. A silenced host's namespace runs a
forger that sees every echo request sent to it and answers each with the identifier and
sequence copied, but a payload of its own: a constant, or the nonce of the request before
(a replay). The member must go down and stay down, and the forgeries be counted."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests import netns
from tests.conftest import needs_root
from tests.pools.test_failover_netns import ICMP, Poller, config, exactly, wait_healthy

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` command"),
]

netns_lab = netns.netns_lab  # the fixture

FORGER = """\
import socket, struct, sys
mode = sys.argv[1]
def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
previous = b"edgedns-health!!"
print("ready", flush=True)
while True:
    packet, (source, _) = s.recvfrom(2048)
    start = (packet[0] & 0x0F) * 4
    if packet[start] != 8:
        continue
    ident, sequence = struct.unpack_from("!HH", packet, start + 4)
    nonce = packet[start + 8:]
    payload = previous if mode == "replay" else b"edgedns-health!!"
    previous = nonce
    reply = struct.pack("!BBHHH", 0, 0, 0, ident, sequence) + payload
    reply = reply[:2] + checksum(reply).to_bytes(2, "big") + reply[4:]
    s.sendto(reply, (source, 0))
"""


@pytest.mark.parametrize("mode", ["constant", "replay"])
def test_forged_replies_do_not_keep_a_silenced_host_up(edgedns_server, netns_lab, mode):
    lab = netns_lab(2)
    a, b = lab.hosts
    srv = edgedns_server(config(ICMP, {"www": "serve_all"}, [a.address, b.address]))
    www = Poller(srv, "www.pool.lan")
    wait_healthy(srv, www, [a.address, b.address])

    forger = subprocess.Popen(["ip", "netns", "exec", a.netns, sys.executable, "-c", FORGER,
                               mode], stdout=subprocess.PIPE, text=True)
    try:
        assert forger.stdout is not None and forger.stdout.readline().strip() == "ready"
        since = lab.silence_icmp(a)  # the kernel stops answering; only the forger does
        www.until(since, exactly(b.address), 2.0, "silenced host leaves despite forgeries")
        www.steady(1.5, exactly(b.address), "silenced host stays out")
        assert forger.poll() is None, "the forger stopped"
        assert srv.server.icmp.unmatched >= 5  # one forgery per probe, every 200 ms
    finally:
        forger.kill()
        forger.wait(5)
