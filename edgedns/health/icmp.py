"""ICMP echo check over one shared socket per address family.

icmplib builds and parses the packets; this module owns the sockets and matches replies to
probes by (source address, sequence), with the identifier checked too on raw sockets. One
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
import time

from icmplib import ICMPRequest, ICMPv4Socket, ICMPv6Socket
from icmplib.exceptions import ICMPLibError, SocketPermissionError

from edgedns.health.checks import ProbeResult, Target

log = logging.getLogger(__name__)

_ECHO_REPLY = {4: 0, 6: 129}
_FIX = (
    "ICMP health checks need a raw or a ping socket: run edgedns as root, grant it "
    "CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW; or setcap cap_net_raw+ep on the "
    "python binary), or allow ping sockets for its group with "
    "sysctl -w net.ipv4.ping_group_range='0 2147483647'; or use tcp/http checks"
)


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
        # One packet per wake-up: icmplib's receive() would wait out its timeout on an empty
        # socket, and the loop calls us again at once while more packets are queued.
        try:
            reply = self.sock.receive(None, timeout=0.01)
        except ICMPLibError:
            return
        if reply.type != _ECHO_REPLY[self.version]:
            return
        if self.privileged and reply.id != self.ident:
            return  # another process's ping seen on our raw socket
        waiter = self.pending.get((_canonical(reply.source), reply.sequence))
        if waiter is not None and not waiter.done():
            waiter.set_result(time.monotonic())


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
                family.sock.send(ICMPRequest(address, family.ident, sequence, payload_size=16))
            except ICMPLibError as exc:
                return ProbeResult(False, f"send failed: {exc}")
            answered = await waiter
            return ProbeResult(True, "echo reply", answered - start)
        finally:
            del family.pending[key]


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))
