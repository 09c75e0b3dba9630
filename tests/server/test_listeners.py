"""Listeners serving virtual addresses: a wildcard listener replies from the address each
query was sent to, and a listener may bind a virtual address before this host holds it."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.query
import pytest

from edgedns import config as config_mod
from edgedns.server.lifecycle import Server
from edgedns.server.listeners import UdpListener

CONFIG = """\
listen: [0.0.0.0:0]
admin: false
reload_interval: 0
zones:
  site.lan:
    records:
      www: {A: 192.0.2.1}
"""


def test_wildcard_listener_replies_from_the_address_asked(tmp_path: Path) -> None:
    # 127.0.0.2 is this host's (all of 127/8 is), but routing would pick 127.0.0.1 as the
    # source of a reply; dnspython refuses a reply from any address but the one it asked.
    path = tmp_path / "edgedns.yaml"
    path.write_text(CONFIG)

    async def main() -> list[str]:
        server = Server(config_mod.load(path))
        await server.start()
        try:
            port = server.bound[0].port
            answers = []
            for address in ("127.0.0.2", "127.0.0.1"):
                query = dns.message.make_query("www.site.lan", "A")
                reply = await dns.asyncquery.udp(query, address, port=port, timeout=2,
                                                 ignore_unexpected=False)
                answers.append(reply.answer[0][0].address)
            return answers
        finally:
            await server.stop()

    assert asyncio.run(main()) == ["192.0.2.1", "192.0.2.1"]


def test_a_virtual_address_binds_before_it_is_held() -> None:
    absent = "192.0.2.77"  # TEST-NET-1: never an address of this host
    with pytest.raises(OSError) as info:
        UdpListener.bind(absent, 0, lambda *a: None)
    assert info.value.errno == errno.EADDRNOTAVAIL
    listener = UdpListener.bind(absent, 0, lambda *a: None, freebind=True)
    try:
        assert listener.sock.getsockname()[0] == absent
        assert not listener.wildcard
    finally:
        listener.sock.close()


def test_only_wildcards_ask_for_destination_addresses() -> None:
    listener = UdpListener.bind("0.0.0.0", 0, lambda *a: None)
    try:
        assert listener.wildcard
        assert listener.sock.getsockopt(socket.IPPROTO_IP, 8) == 1  # IP_PKTINFO
    finally:
        listener.sock.close()


def test_the_example_port_binds_beside_an_mdns_responder(tmp_path: Path) -> None:
    # avahi holds 0.0.0.0:5353 (UDP) with SO_REUSEADDR on most Linux desktops.
    avahi = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    avahi.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        avahi.bind(("0.0.0.0", 5353))
    except OSError as exc:
        avahi.close()
        pytest.skip(f"port 5353 is taken here without SO_REUSEADDR: {exc}")
    path = tmp_path / "edgedns.yaml"
    path.write_text(CONFIG.replace("0.0.0.0:0", "127.0.0.1:5353"))

    async def main() -> str:
        server = Server(config_mod.load(path))
        await server.start()
        try:
            query = dns.message.make_query("www.site.lan", "A")
            reply = await dns.asyncquery.udp(query, "127.0.0.1", port=5353, timeout=2)
            return reply.answer[0][0].address
        finally:
            await server.stop()

    with avahi:
        assert asyncio.run(main()) == "192.0.2.1"
