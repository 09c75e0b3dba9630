"""ICMP check: echo requests over one shared socket per family, replies matched per target."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest
from icmplib.exceptions import ICMPSocketError, SocketPermissionError

from edgedns.pools.health import icmp
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target
from edgedns.pools.health.icmp import IcmpProber, IcmpUnavailable

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root here")
UNROUTED = "198.18.0.77"
"""Benchmarking space (RFC 2544): sent towards the default route, never answered here."""


def icmp_target(address: str) -> Target:
    return Target.for_member(CheckSpec(), address)


async def with_prober(body):
    loop = asyncio.get_running_loop()
    prober = IcmpProber.open({4})
    prober.start(loop)
    try:
        return await body(prober)
    finally:
        prober.close(loop)


@needs_root
def test_loopback_answers_an_echo_request() -> None:
    async def body(prober: IcmpProber) -> ProbeResult:
        return await asyncio.wait_for(prober.probe(icmp_target("127.0.0.1")), 5)

    result = asyncio.run(with_prober(body))
    assert (result.ok, result.reason) == (True, "echo reply")
    assert result.rtt is not None and 0 <= result.rtt < 5


@needs_root
def test_concurrent_probes_of_many_addresses_share_one_socket_and_all_get_replies() -> None:
    addresses = [f"127.0.0.{i}" for i in range(1, 21)]

    async def body(prober: IcmpProber) -> list[ProbeResult]:
        probes = [prober.probe(icmp_target(a)) for a in addresses for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*probes), 10)

    results = asyncio.run(with_prober(body))
    assert [r.reason for r in results] == ["echo reply"] * 60


@needs_root
def test_an_address_that_never_replies_leaves_the_probe_waiting_until_cut() -> None:
    async def body(prober: IcmpProber) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(prober.probe(icmp_target(UNROUTED)), 0.3)
        # The abandoned probe left nothing behind to match a late reply against.
        assert all(not family.pending for family in prober._families.values())
        # ...and the shared socket still serves other probes.
        assert (await asyncio.wait_for(prober.probe(icmp_target("127.0.0.1")), 5)).ok

    asyncio.run(with_prober(body))


class DeniedSocket:
    """Stands in for an icmplib socket class where the kernel refuses both kinds."""

    def __init__(self, address: str | None = None, privileged: bool = True) -> None:
        raise SocketPermissionError(privileged)


class FakeSocket:
    """An icmplib socket stand-in that opens unprivileged only, and records closes."""

    opened: list[FakeSocket] = []

    def __init__(self, address: str | None = None, privileged: bool = True) -> None:
        if privileged:
            raise SocketPermissionError(privileged)
        self.blocking = True
        self.closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stands in for tuning
        FakeSocket.opened.append(self)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def test_no_raw_nor_ping_socket_raises_icmp_unavailable_saying_how_to_fix_it(monkeypatch) -> None:
    monkeypatch.setattr(icmp, "ICMPv4Socket", DeniedSocket)
    with pytest.raises(IcmpUnavailable) as info:
        IcmpProber.open({4})
    message = str(info.value)
    for fix in ("run edgedns as root", "CAP_NET_RAW", "AmbientCapabilities=CAP_NET_RAW",
                "setcap cap_net_raw+ep", "net.ipv4.ping_group_range", "use tcp/http checks"):
        assert fix in message


def test_without_raw_sockets_an_unprivileged_ping_socket_is_used(monkeypatch, caplog) -> None:
    monkeypatch.setattr(icmp, "ICMPv4Socket", FakeSocket)
    caplog.set_level(logging.INFO, logger="edgedns.pools.health.icmp")
    IcmpProber.open({4})
    assert caplog.messages == ["ICMPv4 checks use an unprivileged ping socket"]
    assert FakeSocket.opened[-1].blocking is False


def test_a_family_that_cannot_open_closes_the_sockets_already_opened(monkeypatch) -> None:
    monkeypatch.setattr(icmp, "ICMPv4Socket", FakeSocket)
    monkeypatch.setattr(icmp, "ICMPv6Socket", DeniedSocket)
    FakeSocket.opened.clear()
    with pytest.raises(IcmpUnavailable):
        IcmpProber.open({4, 6})
    assert [s.closed for s in FakeSocket.opened] == [True]


def test_another_socket_error_is_reported_with_its_family(monkeypatch) -> None:
    class Broken:
        def __init__(self, address: str | None = None, privileged: bool = True) -> None:
            raise ICMPSocketError("Address family not supported by protocol")

    monkeypatch.setattr(icmp, "ICMPv6Socket", Broken)
    with pytest.raises(IcmpUnavailable) as info:
        IcmpProber.open({6})
    assert str(info.value) == (
        "cannot open an ICMPv6 socket: Address family not supported by protocol")
