"""ICMP echo check over one shared socket per address family.

One socket serves every member, so probing thousands of hosts costs no file descriptor each.
Replies must prove themselves (`echo`): the identifier, the sequence number the probe of that
address was sent with, and the probe's random nonce echoed as payload. Anything else,
forged or late, is counted in `IcmpProber.unmatched` and ignored.

Raw sockets (root or CAP_NET_RAW) get a random identifier and a kernel filter (`bpf`) that
passes only our echo replies, so other pings on the host cost nothing. Without raw sockets,
Linux allows unprivileged "ping sockets" for groups in `net.ipv4.ping_group_range`; the kernel
then picks the identifier and hands each socket only its own replies. When neither works,
`IcmpProber.ensure` raises `IcmpUnavailable` saying how to fix it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgedns.pools.health import bpf, echo
from edgedns.pools.health.checks import ProbeResult, Target, os_reason

log = logging.getLogger(__name__)

_FIX = (
    "ICMP health checks need a raw or a ping socket: run edgedns as root, grant it "
    "CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW; or setcap cap_net_raw+ep on the "
    "python binary), or allow ping sockets for its group with "
    "sysctl -w net.ipv4.ping_group_range='0 2147483647'; or use tcp/http checks"
)
_READS_PER_WAKEUP = 256
_RECEIVE_BUFFER = 4 << 20
_MAX_SEQUENCES = 65_536
"""Addresses whose next sequence number is remembered; beyond it they start afresh."""
_SOL_RAW = 255
_ICMP_FILTER = 1  # Linux: a bitmask of ICMPv4 types a raw socket drops
_ICMP6_FILTER = 1  # Linux: a 256-bit map of ICMPv6 types a raw socket drops
_PROTOCOL = {4: (socket.AF_INET, socket.IPPROTO_ICMP),
             6: (socket.AF_INET6, socket.IPPROTO_ICMPV6)}


class IcmpUnavailable(RuntimeError):
    """Neither raw nor unprivileged ICMP sockets can be opened here; the message says why."""


def open_socket(version: int, raw: bool) -> socket.socket:
    """A raw or ping ICMP socket; PermissionError when not allowed."""
    family, protocol = _PROTOCOL[version]
    return socket.socket(family, socket.SOCK_RAW if raw else socket.SOCK_DGRAM, protocol)


@dataclass(slots=True)
class _Probe:
    nonce: bytes
    done: Callable[[ProbeResult], None]
    timer: asyncio.TimerHandle
    sent: float


class _Family:
    """One ICMP socket with its probes in flight."""

    def __init__(self, sock: socket.socket, version: int, raw: bool) -> None:
        self.sock = sock
        self.version = version
        self.raw = raw
        self.ident = secrets.randbelow(0x10000)
        """Ours on raw sockets; on ping sockets the kernel writes its own in (and checks)."""
        self.sequences: dict[str, int] = {}
        self.pending: dict[tuple[str, int], _Probe] = {}
        """(address, sequence) → the probe in flight."""
        self.unmatched = 0
        self.foreign = 0

    def next_sequence(self, address: str) -> int:
        sequence = self.sequences.get(address)
        if sequence is None:
            if len(self.sequences) >= _MAX_SEQUENCES:
                self.sequences.clear()
            sequence = secrets.randbelow(0x10000)
        self.sequences[address] = (sequence + 1) & 0xFFFF
        return sequence

    def readable(self) -> None:
        # Drain what is queued (bounded): a burst of replies left in the socket buffer would
        # otherwise overflow it and read as dead hosts.
        now = time.monotonic()
        for _ in range(_READS_PER_WAKEUP):
            try:
                packet, source = self.sock.recvfrom(1024)
            except OSError:  # BlockingIOError: drained
                return
            parsed = echo.parse_reply(packet, self.version, self.raw and self.version == 4)
            if parsed is None:
                continue
            ident, sequence, payload = parsed
            if self.raw and ident != self.ident:
                self.foreign += 1  # another prober's: only where no kernel filter is attached
                continue
            # The kernel's text form of the source is canonical, as member addresses are,
            # but for IPv4-mapped IPv6, which Python's ipaddress writes otherwise.
            key = (source[0], sequence)
            probe = self.pending.get(key)
            if probe is None and self.version == 6:
                key = (str(ipaddress.ip_address(source[0])), sequence)
                probe = self.pending.get(key)
            if probe is None or probe.nonce != payload:
                self.unmatched += 1
                continue
            del self.pending[key]
            probe.timer.cancel()
            probe.done(ProbeResult(True, "echo reply", now - probe.sent))

    def send(self, address: str, sequence: int, nonce: bytes) -> None:
        self.sock.sendto(echo.request(self.version, self.ident, sequence, nonce), (address, 0))


class IcmpProber:
    """Echo requests to any number of hosts over at most two sockets (IPv4, IPv6), opened
    as the config first needs each version and kept until `close`."""

    def __init__(self) -> None:
        self._families: dict[int, _Family] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def versions(self) -> set[int]:
        """The IP versions this prober has sockets for."""
        return set(self._families)

    @property
    def unmatched(self) -> int:
        """Echo replies that matched no probe in flight: forged, late or duplicated."""
        return sum(family.unmatched for family in self._families.values())

    @property
    def foreign(self) -> int:
        """Echo replies to other probers' identifiers that reached us: 0 while the kernel
        filter works."""
        return sum(family.foreign for family in self._families.values())

    def ensure(self, versions: set[int]) -> None:
        """Open sockets for the IP `versions` (4 and/or 6) not open yet: raw when allowed,
        else ping sockets. Raises `IcmpUnavailable` (opening none of them) when one cannot
        be opened. Call on the event loop; their replies are read from it."""
        opened: dict[int, _Family] = {}
        try:
            for version in sorted(versions - self.versions):
                opened[version] = _open_family(version)
        except IcmpUnavailable:
            for family in opened.values():
                family.sock.close()
            raise
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        for version, family in opened.items():
            loop.add_reader(family.sock.fileno(), family.readable)
            self._families[version] = family

    def keep_only(self, versions: set[int]) -> None:
        """Close the sockets of IP versions no longer in `versions` (a reload removed the
        last ICMP check of that version); probes still waiting on them time out."""
        for version in self.versions - versions:
            family = self._families.pop(version)
            if self._loop is not None:
                self._loop.remove_reader(family.sock.fileno())
            family.sock.close()

    def close(self) -> None:
        for family in self._families.values():
            if self._loop is not None:
                self._loop.remove_reader(family.sock.fileno())
            family.sock.close()
        self._families.clear()

    def begin(self, target: Target, done: Callable[[ProbeResult], None]
              ) -> Callable[[], None]:
        """Send one echo request to `target.address`. `done` gets the result exactly once:
        the reply, a send failure (at once) or a timeout after `target.timeout`. Returns a
        function that abandons the probe (`done` is then not called).

        No task per probe: a reply or a timer finishes it (at thousands of probes a second,
        a Task each cost more than the rest of the probe)."""
        address = target.address  # canonical text, as the config reader wrote it
        family = self._families.get(6 if ":" in address else 4)
        if family is None:
            done(ProbeResult(False, "no ICMP socket for this address family"))
            return _nothing
        sequence = family.next_sequence(address)
        nonce = os.urandom(echo.NONCE_SIZE)
        key = (address, sequence)
        sent = time.monotonic()
        try:
            family.send(address, sequence, nonce)
        except OSError as exc:
            done(ProbeResult(False, f"send failed: {os_reason(exc)}"))
            return _nothing
        pending = family.pending

        def expire() -> None:
            if pending.pop(key, None) is not None:
                done(ProbeResult(False, f"timeout after {target.timeout * 1000:.0f}ms"))

        loop = self._loop or asyncio.get_running_loop()
        pending[key] = _Probe(nonce, done, loop.call_later(target.timeout, expire), sent)

        def abandon() -> None:
            probe = pending.pop(key, None)
            if probe is not None:
                probe.timer.cancel()

        return abandon


def _nothing() -> None:
    pass


def missing_privilege(versions: set[int]) -> str | None:
    """Why ICMP checks of these IP versions could not run here (the fix included), or None
    when a raw or ping socket opens for each (for ``edgedns check``)."""
    for version in sorted(versions):
        for raw in (True, False):
            try:
                open_socket(version, raw).close()
                break
            except PermissionError:
                continue
            except OSError as exc:
                return f"cannot open an ICMPv{version} socket: {exc.strerror or exc}"
        else:
            return _FIX
    return None


def _open_family(version: int) -> _Family:
    for raw in (True, False):
        try:
            sock = open_socket(version, raw)
        except PermissionError:
            continue
        except OSError as exc:
            raise IcmpUnavailable(f"cannot open an ICMPv{version} socket: {exc.strerror or exc}"
                                  ) from None
        sock.setblocking(False)
        family = _Family(sock, version, raw)
        _tune(family)
        log.info("ICMPv%d checks use %s socket", version,
                 "a raw" if raw else "an unprivileged ping")
        return family
    raise IcmpUnavailable(_FIX)


def _tune(family: _Family) -> None:
    """Room for a burst of replies; on raw sockets, only our echo replies let in."""
    sock, version = family.sock, family.version
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
    except OSError as exc:
        log.warning("could not enlarge the ICMPv%d receive buffer: %s", version, exc)
    if not family.raw:
        return  # the kernel already hands a ping socket only its own replies
    try:
        bpf.attach(sock, bpf.echo_reply_program(version, family.ident))
        return
    except OSError as exc:
        log.warning("no kernel filter on the ICMPv%d socket (%s): other ICMP traffic on the "
                    "host is read and dropped in edgedns", version, exc)
    try:  # second best: the kernel drops other ICMP types at least
        if version == 4:
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", ~1 & 0xFFFFFFFF))
        else:
            words = [0xFFFFFFFF] * 8
            words[echo.REPLY[6] >> 5] &= ~(1 << (echo.REPLY[6] & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *words))
    except OSError as exc:
        log.warning("could not filter the ICMPv%d socket: %s", version, exc)

