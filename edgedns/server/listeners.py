"""UDP and TCP listeners: turn datagrams and RFC 7766 streams into `respond` calls.

Both only move bytes; what to answer is the `Responder`'s business. The UDP side reads the
socket directly from the event loop's reader callback, draining a bounded batch per wake-up,
which costs far less per datagram than a DatagramProtocol. A listener on a wildcard address
replies from the address each query was sent to (`sockopts`): clients of a virtual address
accept replies from it alone.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from edgedns.server import sockopts

log = logging.getLogger(__name__)

Responder = Callable[[bytes, bool, str], "bytes | None"]
"""(message, over_tcp, client address) → reply or None; see `QueryHandler.respond`."""

UDP_BATCH = 64
"""Datagrams handled per wake-up before yielding to other work (probes, TCP, admin)."""
UDP_RECV = 4096
"""Larger queries are not DNS queries we can answer; they arrive cut and fail to parse."""
UDP_SOCKET_BUFFER = 4 << 20
MDNS_PORT = 5353
"""mDNS responders (avahi, on most Linux desktops) hold 0.0.0.0:5353 with SO_REUSEADDR, as
mDNS needs the port shared (RFC 6762 §15.1). A listener on one address of that port sets it
too, so it binds beside them (the example config's 127.0.0.1:5353) and, being the more
specific socket, gets the unicast queries sent to its address; multicast stays theirs."""


WILDCARDS = ("0.0.0.0", "::")


class UdpListener:
    def __init__(self, sock: socket.socket, respond: Responder, wildcard: bool = False) -> None:
        self.sock = sock
        self.respond = respond
        self.wildcard = wildcard
        """Replies go out from each query's destination address."""
        self.dropped_replies = 0

    @classmethod
    def bind(cls, host: str, port: int, respond: Responder,
             freebind: bool = False) -> UdpListener:
        """A listener on `host`:`port`; `freebind` binds an address this host may not hold
        yet (a virtual address)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, UDP_SOCKET_BUFFER)
            if freebind:
                sockopts.set_freebind(sock)
            if port == MDNS_PORT and host not in WILDCARDS:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if host in WILDCARDS:
                sockopts.want_destination(sock)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return cls(sock, respond, host in WILDCARDS)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(),
                        self._readable_wildcard if self.wildcard else self._readable)

    def pause(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop reading queries; replies still pending can still be sent."""
        loop.remove_reader(self.sock.fileno())

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock.fileno() >= 0:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        respond = self.respond
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(UDP_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable reported for an earlier send
                continue
            try:
                reply = respond(data, False, addr[0])
            except Exception:  # a bug must cost one query, never the listener
                log.exception("query handling failed")
                continue
            if reply.__class__ is bytes:
                try:
                    sendto(reply, addr)
                except OSError:
                    self.dropped_replies += 1
            elif reply is not None:
                reply.add_done_callback(lambda done, addr=addr: self._send_later(done, addr))

    def _readable_wildcard(self) -> None:
        """`_readable`, replying from the address each query came to."""
        receive = sockopts.recvfrom_with_destination
        respond = self.respond
        for _ in range(UDP_BATCH):
            try:
                data, addr, source = receive(self.sock, UDP_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            try:
                reply = respond(data, False, addr[0])
            except Exception:
                log.exception("query handling failed")
                continue
            if reply.__class__ is bytes:
                try:
                    sockopts.sendto_from(self.sock, reply, addr, source)
                except OSError:
                    self.dropped_replies += 1
            elif reply is not None:
                reply.add_done_callback(
                    lambda done, addr=addr, source=source: self._send_later(done, addr, source))

    def _send_later(self, done: asyncio.Future[bytes], addr,
                    source: sockopts.Source | None = None) -> None:
        if done.cancelled() or self.sock.fileno() < 0:
            return
        if done.exception() is not None:
            log.error("forwarded query failed", exc_info=done.exception())
            return
        try:
            sockopts.sendto_from(self.sock, done.result(), addr, source or [])
        except OSError:
            self.dropped_replies += 1


REPLY_BYTES_QUEUED = 64 * 1024
"""Reply bytes a TCP connection may have waiting to be written before it stops reading and
answering (RFC 7766 §6.2): a client that does not read holds about this much, not a reply
per query it sent."""
QUERY_BYTES_BUFFERED = 64 * 1024 + 2
"""Query bytes a paused connection may hold before it stops reading from the socket."""
FORWARDED_PER_CONNECTION = 8
"""Forwarded questions one connection may have waiting on upstreams; more wait unread. Their
replies are written when they come, so this also bounds what a non-reading client can add
beyond `REPLY_BYTES_QUEUED` (8 replies of at most 64 KiB)."""
BUSY_SHARE = 0.5
"""Above this share of `max_connections` in use, idle timeouts shorten (as NSD and Knot do),
down to `BUSY_IDLE` when the table is full, so idle and slow clients give way sooner."""
BUSY_IDLE = 1.0
EVICT_IDLE = 0.5
"""With the connection table full, a new connection takes the place of the oldest one that
has not been answered yet (a slowloris never is), else of the one idle longest if that has
had no reply for this many seconds; without such a one it is refused."""


class TcpConnections:
    """Shared by every TCP listener: the connection caps, in all and per client address, and
    the idle timeout, which shortens as the table fills (RFC 7766 §6.2). With the table full,
    a new connection may replace an idle one (`EVICT_IDLE`)."""

    def __init__(self, respond: Responder, idle_timeout: float, max_connections: int,
                 max_per_client: int) -> None:
        self.respond = respond
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.open: set[DnsStreamProtocol] = set()
        self.per_client: dict[str, int] = {}
        self.refused = 0
        """Connections closed at once because a cap was reached."""
        self.evicted = 0
        """Idle connections closed to make room for a new one."""

    def protocol(self) -> DnsStreamProtocol:
        return DnsStreamProtocol(self)

    def admit(self, proto: DnsStreamProtocol, now: float) -> bool:
        held = self.per_client.get(proto.client, 0)
        if held >= self.max_per_client or (
            len(self.open) >= self.max_connections and not self._evict_idlest(now)
        ):
            self.refused += 1
            return False
        self.open.add(proto)
        self.per_client[proto.client] = held + 1
        return True

    def _evict_idlest(self, now: float) -> bool:
        # Never answered and not waiting on an upstream either: a slowloris, most likely.
        unanswered = [p for p in self.open if not p.answered and not p.forwarded]
        idlest = min(unanswered or self.open, key=lambda p: p.last_active)
        if not unanswered and now - idlest.last_active < EVICT_IDLE:
            return False
        self.evicted += 1
        self.release(idlest)
        idlest.abort()
        return True

    def release(self, proto: DnsStreamProtocol) -> None:
        if proto in self.open:
            self.open.discard(proto)
            held = self.per_client.get(proto.client, 1) - 1
            if held:
                self.per_client[proto.client] = held
            else:
                self.per_client.pop(proto.client, None)

    def current_idle_timeout(self) -> float:
        """`idle_timeout`, shortened linearly to `BUSY_IDLE` between `BUSY_SHARE` and a full
        connection table."""
        share = len(self.open) / self.max_connections
        if share <= BUSY_SHARE or self.idle_timeout <= BUSY_IDLE:
            return self.idle_timeout
        busy = (share - BUSY_SHARE) / (1 - BUSY_SHARE)
        return self.idle_timeout - (self.idle_timeout - BUSY_IDLE) * min(busy, 1.0)

    def close_all(self) -> None:
        for proto in list(self.open):
            proto.close()


class DnsStreamProtocol(asyncio.Protocol):
    """One TCP connection: 2-byte length framing, pipelined queries answered as they come
    (forwarded ones when their answer arrives, RFC 7766 §7).

    Back-pressure: queries are answered only while fewer than `REPLY_BYTES_QUEUED` reply
    bytes wait to be written and fewer than `FORWARDED_PER_CONNECTION` questions wait on
    upstreams; otherwise the queries stay buffered (up to `QUERY_BYTES_BUFFERED`, then the
    socket is not read) until the client reads or the upstreams answer."""

    def __init__(self, owner: TcpConnections) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.idle: asyncio.TimerHandle | None = None
        self.client = ""
        self.writing_paused = False
        self.reading_paused = False
        self.forwarded = 0
        self.last_active = 0.0
        """Loop time of the connection's start or its last reply."""
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is duck-typed
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.last_active = asyncio.get_running_loop().time()
        if not self.owner.admit(self, self.last_active):
            transport.abort()
            return
        transport.set_write_buffer_limits(high=REPLY_BYTES_QUEUED)  # type: ignore[attr-defined]
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.release(self)
        if self.idle is not None:
            self.idle.cancel()
        self.buffer.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._answer_buffered()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._answer_buffered()

    def _answer_buffered(self) -> None:
        """Answer complete queries from the buffer while back-pressure allows, then read
        more only if there is room."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        buffer = self.buffer
        while (len(buffer) >= 2 and not self.writing_paused
               and self.forwarded < FORWARDED_PER_CONNECTION):
            size = buffer[0] << 8 | buffer[1]
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2 : 2 + size])
            del buffer[: 2 + size]
            try:
                reply = self.owner.respond(message, True, self.client)
            except Exception:
                log.exception("query handling failed")
                continue
            if reply.__class__ is bytes:
                self._send(reply)
            elif reply is not None:
                self.forwarded += 1
                reply.add_done_callback(self._send_later)
        full = len(buffer) >= QUERY_BYTES_BUFFERED
        if full and not self.reading_paused:
            self.reading_paused = True
            transport.pause_reading()
        elif not full and self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def _send(self, reply: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(len(reply).to_bytes(2, "big") + reply)
            self.answered += 1
            self._arm_idle()

    def _send_later(self, done: asyncio.Future[bytes]) -> None:
        self.forwarded -= 1
        if done.cancelled():
            return
        if done.exception() is not None:
            log.error("forwarded query failed", exc_info=done.exception())
            return
        self._send(done.result())
        self._answer_buffered()  # queries held back while upstreams were busy

    def eof_received(self) -> bool:
        return False  # close once replies are flushed

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.last_active = loop.time()
        self.idle = loop.call_later(self.owner.current_idle_timeout(), self._idle_expired)

    def _idle_expired(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            # Replies still unsent a whole idle period after the last one: the client is not
            # reading. close() would wait for them forever and hold a connection slot.
            transport.abort()
        else:
            transport.close()
