"""ICMP check: echo requests over one shared socket per family; a reply counts only with our
identifier, the sequence sent to its address and the probe's nonce."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
from collections.abc import Iterator

import pytest

from edgedns.pools.health import echo, icmp
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target
from edgedns.pools.health.icmp import IcmpProber, IcmpUnavailable

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root here")
UNROUTED = "198.18.0.77"
"""Benchmarking space (RFC 2544): sent towards the default route, never answered here."""


def icmp_target(address: str) -> Target:
    return Target.for_member(CheckSpec(), address)


async def probe(prober: IcmpProber, target: Target) -> ProbeResult:
    """One probe, awaited (the scheduler takes the callback instead)."""
    result: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
    abandon = prober.begin(target, lambda r: result.done() or result.set_result(r))
    try:
        return await result
    finally:
        abandon()


async def with_prober(body):
    prober = IcmpProber()
    prober.ensure({4})
    try:
        return await body(prober)
    finally:
        prober.close()


@needs_root
def test_loopback_answers_an_echo_request() -> None:
    async def body(prober: IcmpProber) -> ProbeResult:
        return await asyncio.wait_for(probe(prober, icmp_target("127.0.0.1")), 5)

    result = asyncio.run(with_prober(body))
    assert (result.ok, result.reason) == (True, "echo reply")
    assert result.rtt is not None and 0 <= result.rtt < 5


@needs_root
def test_concurrent_probes_of_many_addresses_share_one_socket_and_all_get_replies() -> None:
    addresses = [f"127.0.0.{i}" for i in range(1, 21)]

    async def body(prober: IcmpProber) -> list[ProbeResult]:
        probes = [probe(prober, icmp_target(a)) for a in addresses for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*probes), 10)

    results = asyncio.run(with_prober(body))
    assert [r.reason for r in results] == ["echo reply"] * 60


@needs_root
def test_an_address_that_never_replies_times_out_and_leaves_nothing_behind() -> None:
    async def body(prober: IcmpProber) -> ProbeResult:
        result = await asyncio.wait_for(probe(prober, icmp_target(UNROUTED)), 5)
        # Nothing is left behind to match a late reply against ...
        assert all(not family.pending for family in prober._families.values())
        # ... and the shared socket still serves other probes.
        assert (await asyncio.wait_for(probe(prober, icmp_target("127.0.0.1")), 5)).ok
        return result

    result = asyncio.run(with_prober(body))
    assert (result.ok, result.reason) == (False, "timeout after 100ms")


def denied(version: int, raw: bool) -> socket.socket:
    """Stands in for `icmp.open_socket` where the kernel refuses both kinds."""
    raise PermissionError(1, "Operation not permitted")


class PingOnly:
    """Stands in for `icmp.open_socket` where only ping sockets may be opened; records them."""

    def __init__(self) -> None:
        self.opened: list[socket.socket] = []

    def __call__(self, version: int, raw: bool) -> socket.socket:
        if raw or version == 6:
            raise PermissionError(1, "Operation not permitted")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stands in for a ping socket
        self.opened.append(sock)
        return sock


def test_no_raw_nor_ping_socket_raises_icmp_unavailable_saying_how_to_fix_it(monkeypatch) -> None:
    monkeypatch.setattr(icmp, "open_socket", denied)
    with pytest.raises(IcmpUnavailable) as info:
        IcmpProber().ensure({4})
    message = str(info.value)
    for fix in ("run edgedns as root", "CAP_NET_RAW", "AmbientCapabilities=CAP_NET_RAW",
                "setcap cap_net_raw+ep", "net.ipv4.ping_group_range", "use tcp/http checks"):
        assert fix in message


def test_without_raw_sockets_an_unprivileged_ping_socket_is_used(monkeypatch, caplog) -> None:
    opener = PingOnly()
    monkeypatch.setattr(icmp, "open_socket", opener)
    caplog.set_level(logging.INFO, logger="edgedns.pools.health.icmp")

    async def body() -> None:
        prober = IcmpProber()
        prober.ensure({4})
        prober.close()

    asyncio.run(body())
    assert caplog.messages == ["ICMPv4 checks use an unprivileged ping socket"]
    assert opener.opened[-1].getblocking() is False


def test_a_family_that_cannot_open_closes_the_sockets_already_opened(monkeypatch) -> None:
    opener = PingOnly()
    monkeypatch.setattr(icmp, "open_socket", opener)
    with pytest.raises(IcmpUnavailable):
        IcmpProber().ensure({4, 6})
    assert [s.fileno() for s in opener.opened] == [-1]


def test_another_socket_error_is_reported_with_its_family(monkeypatch) -> None:
    def broken(version: int, raw: bool) -> socket.socket:
        raise OSError(97, "Address family not supported by protocol")

    monkeypatch.setattr(icmp, "open_socket", broken)
    with pytest.raises(IcmpUnavailable) as info:
        IcmpProber().ensure({6})
    assert str(info.value) == (
        "cannot open an ICMPv6 socket: Address family not supported by protocol")


def test_versions_opened_later_join_the_same_prober(monkeypatch) -> None:
    async def body() -> set[int]:
        prober = IcmpProber()
        prober.ensure(set())
        assert prober.versions == set()
        monkeypatch.setattr(icmp, "open_socket", PingOnly())
        prober.ensure({4})
        prober.ensure({4})  # already open: nothing more
        versions = prober.versions
        prober.close()
        return versions

    assert asyncio.run(body()) == {4}


# --- matching replies -----------------------------------------------------------------------


class Inbox:
    """A socket stand-in that hands `readable` the given packets, then reports drained."""

    def __init__(self, packets: list[tuple[bytes, str]]) -> None:
        self.packets = packets

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.packets:
            raise BlockingIOError
        packet, source = self.packets.pop(0)
        return packet, (source, 0)


def reply(ident: int, sequence: int, payload: bytes) -> bytes:
    """An ICMPv6 echo reply (no IP header in front, as raw ICMPv6 sockets deliver them)."""
    return bytes((129, 0, 0, 0)) + ident.to_bytes(2, "big") + sequence.to_bytes(2, "big") + payload


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def family_waiting_on(loop: asyncio.AbstractEventLoop, address: str
                      ) -> tuple[icmp._Family, list[ProbeResult], int, bytes]:
    """A family with one probe of `address` in flight; its results land in the list."""
    family = icmp._Family(Inbox([]), 6, raw=True)  # type: ignore[arg-type]
    sequence = family.next_sequence(address)
    nonce = os.urandom(echo.NONCE_SIZE)
    results: list[ProbeResult] = []
    timer = loop.call_later(3600, lambda: None)
    family.pending[(address, sequence)] = icmp._Probe(nonce, results.append, timer, 0.0)
    return family, results, sequence, nonce


@pytest.mark.parametrize("forgery", ["payload", "sequence", "source"])
def test_a_reply_that_does_not_prove_itself_is_counted_and_ignored(loop, forgery: str) -> None:
    family, results, sequence, nonce = family_waiting_on(loop, "2001:db8::1")
    payload = b"edgedns-health!!" if forgery == "payload" else nonce
    seq = (sequence + 1) & 0xFFFF if forgery == "sequence" else sequence
    source = "2001:db8::2" if forgery == "source" else "2001:db8::1"
    family.sock = Inbox([(reply(family.ident, seq, payload), source)])  # type: ignore[assignment]
    family.readable()
    assert results == []
    assert family.unmatched == 1


def test_a_reply_with_the_identifier_sequence_and_nonce_answers_its_probe(loop) -> None:
    family, results, sequence, nonce = family_waiting_on(loop, "2001:db8::1")
    family.sock = Inbox([  # type: ignore[assignment]
        (reply(family.ident ^ 1, sequence, nonce), "2001:db8::1"),  # another prober's: skipped
        (reply(family.ident, sequence, nonce), "2001:db8::1"),
        (reply(family.ident, sequence, nonce), "2001:db8::1"),  # a duplicate: unmatched
    ])
    family.readable()
    assert [r.reason for r in results] == ["echo reply"]
    assert (family.unmatched, family.foreign) == (1, 1)


def test_a_reply_from_an_ipv4_mapped_address_matches_its_canonical_form(loop) -> None:
    # The kernel writes ::ffff:1.2.3.4; the config (Python's ipaddress) ::ffff:102:304.
    family, results, sequence, nonce = family_waiting_on(loop, "::ffff:102:304")
    family.sock = Inbox([(reply(family.ident, sequence, nonce), "::ffff:1.2.3.4")])  # type: ignore[assignment]
    family.readable()
    assert [r.ok for r in results] == [True]


def test_sequences_count_per_address_from_a_random_start() -> None:
    family = icmp._Family(Inbox([]), 4, raw=True)  # type: ignore[arg-type]
    a = [family.next_sequence("192.0.2.1") for _ in range(3)]
    b = family.next_sequence("192.0.2.2")
    assert a == [a[0], (a[0] + 1) & 0xFFFF, (a[0] + 2) & 0xFFFF]
    assert family.sequences == {"192.0.2.1": (a[0] + 3) & 0xFFFF, "192.0.2.2": (b + 1) & 0xFFFF}


# --- the kernel filter ----------------------------------------------------------------------


def readable_within(sock: socket.socket, seconds: float) -> bool:
    return bool(select.select([sock], [], [], seconds)[0])


@needs_root
@pytest.mark.parametrize(("version", "address"), [(4, "127.0.0.1"), (6, "::1")])
def test_the_kernel_filter_passes_only_our_echo_replies(version: int, address: str) -> None:
    if version == 6 and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    ours = icmp._open_family(version)
    try:
        assert ours.raw
        with icmp.open_socket(version, raw=True) as other:
            foreign = (ours.ident + 1) & 0xFFFF
            other.sendto(echo.request(version, foreign, 1, b"x" * 16), (address, 0))
            assert readable_within(other, 2)  # the other prober got its reply ...
            assert not readable_within(ours.sock, 0.3)  # ... and the filter kept it from us
            other.sendto(echo.request(version, ours.ident, 1, b"y" * 16), (address, 0))
            assert readable_within(ours.sock, 2)
            packet, _ = ours.sock.recvfrom(1024)
            assert echo.parse_reply(packet, version, version == 4) == (ours.ident, 1, b"y" * 16)
    finally:
        ours.sock.close()


@needs_root
def test_two_probers_in_one_process_never_take_each_others_replies() -> None:
    """The old identifier was the PID, so two instances with one PID (containers on the host
    network are all PID 1) took each other's replies. Prober `b` waits on every sequence
    number prober `a` uses, as if it had sent the same probes and lost them all."""
    async def body() -> tuple[int, int, int]:
        a, b = IcmpProber(), IcmpProber()
        a.ensure({4})
        b.ensure({4})
        try:
            target = icmp_target("127.0.0.1")
            fa, fb = a._families[4], b._families[4]
            start = fa.sequences.get("127.0.0.1")
            loop = asyncio.get_running_loop()
            waited, resolved = 0, []
            for _ in range(20):
                sequence = fa.sequences.get("127.0.0.1", start)
                if sequence is not None:
                    timer = loop.call_later(3600, lambda: None)
                    fb.pending[("127.0.0.1", sequence)] = icmp._Probe(
                        os.urandom(16), resolved.append, timer, 0.0)
                    waited += 1
                assert (await asyncio.wait_for(probe(a, target), 5)).ok
            await asyncio.sleep(0.1)
            for waiting in fb.pending.values():
                waiting.timer.cancel()
            return len(resolved), waited, b.unmatched
        finally:
            a.close()
            b.close()

    resolved, waited, unmatched = asyncio.run(body())
    assert waited >= 19  # all but the first, whose sequence is drawn inside the probe
    assert resolved == 0
    assert unmatched == 0  # the kernel filter kept a's replies out of b's socket altogether
