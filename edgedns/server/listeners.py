"""UDP and TCP listeners: turn datagrams and RFC 7766 streams into `respond` calls.

Both only move bytes; what to answer is the `Responder`'s business. The UDP side reads the
socket directly from the event loop's reader callback, draining a bounded batch per wake-up,
which costs far less per datagram than a DatagramProtocol.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

Responder = Callable[[bytes, bool, str], "bytes | None"]
"""(message, over_tcp, client address) → reply or None; see `QueryHandler.respond`."""

UDP_BATCH = 64
"""Datagrams handled per wake-up before yielding to other work (probes, TCP, admin)."""
UDP_RECV = 4096
"""Larger queries are not DNS queries we can answer; they arrive cut and fail to parse."""
UDP_SOCKET_BUFFER = 4 << 20


class UdpListener:
    def __init__(self, sock: socket.socket, respond: Responder) -> None:
        self.sock = sock
        self.respond = respond
        self.dropped_replies = 0

    @classmethod
    def bind(cls, host: str, port: int, respond: Responder) -> UdpListener:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, UDP_SOCKET_BUFFER)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return cls(sock, respond)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)

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

    def _send_later(self, done: asyncio.Future[bytes], addr) -> None:
        if done.cancelled() or self.sock.fileno() < 0:
            return
        if done.exception() is not None:
            log.error("forwarded query failed", exc_info=done.exception())
            return
        try:
            self.sock.sendto(done.result(), addr)
        except OSError:
            self.dropped_replies += 1


class TcpConnections:
    """Shared by every TCP listener: the open-connection cap and idle timeout (RFC 7766 §6)."""

    def __init__(self, respond: Responder, idle_timeout: float, max_connections: int) -> None:
        self.respond = respond
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.open: set[DnsStreamProtocol] = set()

    def protocol(self) -> DnsStreamProtocol:
        return DnsStreamProtocol(self)

    def close_all(self) -> None:
        for proto in list(self.open):
            proto.close()


class DnsStreamProtocol(asyncio.Protocol):
    """One TCP connection: 2-byte length framing, pipelined queries answered in order."""

    def __init__(self, owner: TcpConnections) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.idle: asyncio.TimerHandle | None = None
        self.client = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is duck-typed
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if len(self.owner.open) >= self.owner.max_connections:
            transport.abort()
            return
        self.owner.open.add(self)
        # Replies to a client that does not read would pile up: stop reading first.
        transport.set_write_buffer_limits(high=256 * 1024)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.open.discard(self)
        if self.idle is not None:
            self.idle.cancel()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        replies = []
        while len(buffer) >= 2:
            size = buffer[0] << 8 | buffer[1]
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2 : 2 + size])
            del buffer[: 2 + size]
            try:
                reply = self.owner.respond(message, True, self.client)
            except Exception:
                log.exception("query handling failed")
                reply = None
            if reply.__class__ is bytes:
                replies.append(len(reply).to_bytes(2, "big") + reply)
            elif reply is not None:
                # Forwarded: sent when it comes, possibly after later queries' (RFC 7766 §7).
                reply.add_done_callback(self._send_later)
        if replies:
            self._send(b"".join(replies))

    def _send(self, framed: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(framed)
            self._arm_idle()

    def _send_later(self, done: asyncio.Future[bytes]) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            log.error("forwarded query failed", exc_info=done.exception())
            return
        reply = done.result()
        self._send(len(reply).to_bytes(2, "big") + reply)

    def eof_received(self) -> bool:
        return False  # close once replies are flushed

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.owner.idle_timeout, self._idle_expired)

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
