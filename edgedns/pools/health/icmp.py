"""ICMP echo check over one shared socket per address family.

icmplib builds and parses the packets (its sockets' `_create_packet` and `_parse_reply`,
hence the pin to icmplib 3.x); this module owns the sockets, sends and drains them from the
event loop, and matches replies to probes by (source address, sequence), with the identifier
checked too on raw sockets. One
socket serves every member, so probing thousands of hosts costs no file descriptor each
(icmplib's own `multiping` opens one per host).

Raw sockets need root or CAP_NET_RAW. Without them, Linux allows unprivileged "ping sockets"
for groups in `net.ipv4.ping_group_range`; the kernel then owns the identifier. When neither
works, `IcmpProber.open` raises `IcmpUnavailable` saying how to fix it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import socket
import struct
import time

from icmplib import ICMPv4Socket, ICMPv6Socket
from icmplib.exceptions import ICMPLibError, SocketPermissionError

from edgedns.pools.health.checks import ProbeResult, Target, os_reason

log = logging.getLogger(__name__)

_ECHO_REPLY = {4: 0, 6: 129}
_FIX = (
    "ICMP health checks need a raw or a ping socket: run edgedns as root, grant it "
    "CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW; or setcap cap_net_raw+ep on the "
    "python binary), or allow ping sockets for its group with "
    "sysctl -w net.ipv4.ping_group_range='0 2147483647'; or use tcp/http checks"
)


_READS_PER_WAKEUP = 256
_RECEIVE_BUFFER = 4 << 20
_PAYLOAD = b"edgedns-health!!"
_SOL_RAW = 255
_ICMP_FILTER = 1  # Linux: a bitmask of ICMPv4 types a raw socket drops
_ICMP6_FILTER = 1  # Linux: a 256-bit map of ICMPv6 types a raw socket drops


class IcmpUnavailable(RuntimeError):
    """Neither raw nor unprivileged ICMP sockets can be opened here; the message says why."""


class _Family:
    """One ICMP socket with its in-flight probes."""

    def __init__(self, sock: ICMPv4Socket | ICMPv6Socket, version: int, privileged: bool) -> None:
        self.sock = sock
        self.version = version
        self.privileged = privileged
        self.ident = os.getpid() & 0xFFFF
        self.sequence = itertools.count(1)
        self.pending: dict[tuple[str, int], asyncio.Future[float]] = {}

    def next_sequence(self) -> int:
        # 65,535 values cycle in 65 s at 1,000 probes/s, far beyond any probe timeout.
        return next(self.sequence) & 0xFFFF

    def readable(self) -> None:
        # Drain what is queued (bounded), parsing with icmplib: a burst of replies left in
        # the socket buffer would otherwise overflow it and read as dead hosts.
        raw = self.sock.sock
        now = time.monotonic()
        for _ in range(_READS_PER_WAKEUP):
            try:
                packet, address = raw.recvfrom(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            reply = self.sock._parse_reply(packet, address[0], now)
            if reply is None or reply.type != _ECHO_REPLY[self.version]:
                continue
            if self.privileged and reply.id != self.ident:
                continue  # another process's ping seen on our raw socket
            waiter = self.pending.get((_canonical(address[0]), reply.sequence))
            if waiter is not None and not waiter.done():
                waiter.set_result(now)

    def send(self, address: str, sequence: int) -> None:
        """One echo request, built by icmplib; sent directly (icmplib's `send` would resolve
        the address and set TTL and TOS again for every packet, doubling the cost)."""
        packet = self.sock._create_packet(self.ident, sequence, _PAYLOAD)
        self.sock.sock.sendto(packet, (address, 0))


class IcmpProber:
    """Echo requests to any number of hosts over at most two sockets (IPv4, IPv6)."""

    def __init__(self, families: dict[int, _Family]) -> None:
        self._families = families

    @classmethod
    def open(cls, versions: set[int]) -> IcmpProber:
        """Open sockets for the IP `versions` needed (4 and/or 6): raw when privileged, else
        unprivileged. Raises `IcmpUnavailable` when neither kind may be opened."""
        families: dict[int, _Family] = {}
        for version in sorted(versions):
            socket_class = ICMPv4Socket if version == 4 else ICMPv6Socket
            for privileged in (True, False):
                try:
                    sock = socket_class(privileged=privileged)
                except SocketPermissionError:
                    continue
                except ICMPLibError as exc:
                    raise IcmpUnavailable(f"cannot open an ICMPv{version} socket: {exc}") from None
                sock.blocking = False
                _tune(sock.sock, version, privileged)
                families[version] = _Family(sock, version, privileged)
                log.info("ICMPv%d checks use %s socket", version,
                         "a raw" if privileged else "an unprivileged ping")
                break
            else:
                for family in families.values():
                    family.sock.close()
                raise IcmpUnavailable(_FIX)
        return cls(families)

    @property
    def versions(self) -> set[int]:
        """The IP versions this prober has sockets for."""
        return set(self._families)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for family in self._families.values():
            loop.add_reader(family.sock.sock.fileno(), family.readable)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        for family in self._families.values():
            loop.remove_reader(family.sock.sock.fileno())
            family.sock.close()
        self._families.clear()

    async def probe(self, target: Target) -> ProbeResult:
        """One echo request to `target.address`; the scheduler bounds the wait."""
        address = _canonical(target.address)
        family = self._families[ipaddress.ip_address(address).version]
        sequence = family.next_sequence()
        key = (address, sequence)
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        family.pending[key] = waiter
        try:
            start = time.monotonic()
            try:
                family.send(address, sequence)
            except OSError as exc:
                return ProbeResult(False, f"send failed: {os_reason(exc)}")
            answered = await waiter
            return ProbeResult(True, "echo reply", answered - start)
        finally:
            del family.pending[key]


def _tune(raw: socket.socket, version: int, privileged: bool) -> None:
    """Room for a burst of replies, and on raw sockets only echo replies let in (a raw
    socket otherwise also queues our own requests looped back, and every other ICMP)."""
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        if privileged and version == 4:
            raw.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", ~(1 << 0) & 0xFFFFFFFF))
        elif privileged:
            words = [0xFFFFFFFF] * 8
            words[129 >> 5] &= ~(1 << (129 & 31))
            raw.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *words))
    except OSError as exc:  # an optimisation only: probing works without it
        log.warning("could not tune the ICMPv%d socket: %s", version, exc)


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))
