"""Forwarding: names outside our zones are resolved by upstream servers, safely and boundedly.

Per question: the cache first (`edgedns.forward.cache`), then one upstream exchange shared by every
client asking the same question meanwhile. Upstreams are tried in policy order within one
time budget; UDP first, TCP when the reply is truncated, TLS (RFC 7858) for ``tls://``
upstreams. Each UDP query uses a fresh socket (a random source port) connected to the
upstream (the kernel drops datagrams from elsewhere) and a random ID; a reply counts only
when its ID and question match.

Upstream health works like CoreDNS `forward`: `max_fails` failures in a row mark an upstream
down and a background probe (``. IN NS``) watches it until it answers again. Healthy
upstreams are tried first; when all are down, all are tried anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import random
import ssl
import time
from dataclasses import dataclass, field

from edgedns.dns import names, wire
from edgedns.dns.names import Name
from edgedns.forward.cache import Cache, Key

log = logging.getLogger(__name__)

POLICIES = ("sequential", "random", "round_robin")
DEFAULT_ALLOW = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                 "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10")
_PROBE_QUESTION = b"\x00\x00\x02\x00\x01"  # . NS IN
_MAX_TCP_REPLY = 65535


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int = 53
    tls_name: str | None = None
    """Set for DNS over TLS: the name the server's certificate must carry."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.tls_name:
            return f"tls://{host}:{self.port}@{self.tls_name}"
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Route:
    """Where questions under one suffix go."""

    upstreams: tuple[Upstream, ...]
    policy: str = "sequential"
    timeout: float = 2.0
    """The whole budget for one client question, every retry included."""


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    default: Route
    zones: tuple[tuple[Name, Route], ...] = ()
    """Conditional forwarding: the longest matching suffix wins."""
    max_fails: int = 2
    health_check: float = 0.5
    """Seconds between probes of an upstream marked down."""
    max_inflight: int = 1000
    """Distinct questions waiting on upstreams at once; more get SERVFAIL at once."""
    max_waiting: int = 10_000
    """Client queries waiting on upstream answers at once; more get SERVFAIL at once."""
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in DEFAULT_ALLOW))
    tls_ca: str | None = None
    """A CA file for DoT upstreams with private certificates; the system CAs otherwise."""


class _State:
    """Health of one upstream."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.fails = 0
        self.down = False
        self.probe: asyncio.Task[None] | None = None
        self.results: dict[str, int] = {}
        """Attempts by outcome (for metrics): ok, timeout, error, bad_reply, and the replies
        that move a question on: servfail, refused, notimp."""

    def count(self, result: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1


class Forwarder:
    def __init__(self, settings: ForwardSettings, cache: Cache) -> None:
        self.settings = settings
        self.cache = cache
        self._routes = dict(settings.zones)
        self._states: dict[Upstream, _State] = {}
        for route in (settings.default, *self._routes.values()):
            for upstream in route.upstreams:
                self._states.setdefault(upstream, _State(upstream))
        self._turns: dict[Route, itertools.count] = {}
        self._inflight: dict[Key, asyncio.Future[wire.UpstreamReply | None]] = {}
        self._waiting = 0
        self._allowed: dict[str, bool] = {}
        self._tls = ssl.create_default_context(cafile=settings.tls_ca)
        self._tasks: set[asyncio.Task] = set()
        self.probe_errors = 0
        """Probes of a down upstream that raised unexpectedly (each logged)."""
        self.max_inflight = settings.max_inflight
        """`settings.max_inflight`, or less when open files are short (`limits`)."""

    def allows(self, client: str) -> bool:
        """Whether `client` may have names forwarded (we are no open resolver)."""
        allowed = self._allowed.get(client)
        if allowed is None:
            try:
                address = ipaddress.ip_address(client)
                allowed = any(address in net for net in self.settings.allow)
            except ValueError:
                allowed = False
            if len(self._allowed) > 10_000:
                self._allowed.clear()
            self._allowed[client] = allowed
        return allowed

    def cached(self, query: wire.Query, tcp: bool) -> tuple[bytes, float] | None:
        """The reply to `query` from the cache, and for how many seconds it stays exactly
        right; None when it is not cached (then `answer` asks upstream)."""
        fresh = self.cache.get_fresh(_key(query))
        if fresh is None:
            return None
        return wire.relay(fresh[0], query, tcp), fresh[1]

    def answer(self, query: wire.Query, tcp: bool) -> bytes | asyncio.Future[bytes]:
        """A future of the upstream's reply to `query` (after `cached` found nothing), or
        SERVFAIL at once when too many questions already wait on upstreams."""
        key = _key(query)
        pending = self._inflight.get(key)
        if pending is None:
            if len(self._inflight) >= self.max_inflight:
                return wire.servfail(query)
            pending = asyncio.get_running_loop().create_future()
            self._inflight[key] = pending
            self._spawn(self._resolve(key, query, pending))
        if self._waiting >= self.settings.max_waiting:
            return wire.servfail(query)
        self._waiting += 1
        return asyncio.ensure_future(self._reply_when_done(key, query, tcp, pending))

    async def _reply_when_done(
        self, key: Key, query: wire.Query, tcp: bool,
        pending: asyncio.Future[wire.UpstreamReply | None],
    ) -> bytes:
        try:
            reply = await asyncio.shield(pending)
        finally:
            self._waiting -= 1
        if reply is not None and reply.rcode != wire.SERVFAIL:
            return wire.relay(reply.body, query, tcp)
        # No reply, or an upstream that could not resolve it either: both are when RFC 8767
        # §5 has stale data served.
        stale = self.cache.get_stale(key)
        if stale is not None:
            return wire.relay(stale, query, tcp)
        if reply is not None:
            return wire.relay(reply.body, query, tcp)
        return wire.servfail(query)

    def adopt_health(self, previous: Forwarder) -> None:
        """Take over the health of every upstream `previous` (the forwarder a reload
        replaces) also had: its failure count, DOWN state (probed from here on) and result
        counts, so no client question waits on an upstream already known dead. Call on the
        event loop."""
        for upstream, state in self._states.items():
            old = previous._states.get(upstream)
            if old is None:
                continue
            state.fails, state.results = old.fails, dict(old.results)
            if old.down and not state.down:
                state.down = True
                state.probe = asyncio.get_running_loop().create_task(self._probe(state))

    def states(self) -> list[_State]:
        """Every upstream's health, for status and metrics."""
        return list(self._states.values())

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until no question waits on an upstream."""
        pending = [f for f in self._inflight.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def close(self) -> None:
        for state in self._states.values():
            if state.probe is not None:
                state.probe.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def route(self, qname: Name) -> Route:
        for i in range(len(qname) + 1):
            route = self._routes.get(qname[i:])
            if route is not None:
                return route
        return self.settings.default

    def _order(self, route: Route) -> list[_State]:
        states = [self._states[u] for u in route.upstreams]
        if route.policy == "random":
            random.shuffle(states)
        elif route.policy == "round_robin":
            turn = next(self._turns.setdefault(route, itertools.count())) % len(states)
            states = states[turn:] + states[:turn]
        return [s for s in states if not s.down] + [s for s in states if s.down]

    async def _resolve(
        self, key: Key, query: wire.Query,
        pending: asyncio.Future[wire.UpstreamReply | None],
    ) -> None:
        reply = None
        try:
            reply = await self._ask_upstreams(query)
            if reply is not None:
                self.cache.put(key, reply)
        finally:
            del self._inflight[key]
            if not pending.done():
                pending.set_result(reply)

    async def _ask_upstreams(self, query: wire.Query) -> wire.UpstreamReply | None:
        qname = names.from_wire(query.qname)
        route = self.route(qname)
        question = query.qname + query.data[query.name_end : query.name_end + 4]
        cd = bool(query.data[3] & 0x10)
        deadline = time.monotonic() + route.timeout
        order = self._order(route)
        servfail = None
        for i, state in enumerate(order):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                reply = await asyncio.wait_for(
                    exchange(state.upstream, question, query.edns, cd, self._tls),
                    remaining / (len(order) - i),
                )
            except (asyncio.TimeoutError, OSError, ssl.SSLError, wire.BadReply) as exc:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s asked %s: %s", names.to_text(qname), state.upstream,
                              _why(exc))
                self._failed(state, exc)
                continue
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s asked %s: rcode %d", names.to_text(qname), state.upstream,
                          reply.rcode)
            # The upstream is alive, whatever it answered.
            self._succeeded(state)
            if reply.rcode in _TRY_NEXT:
                # It could not or would not resolve this: the next upstream may. A SERVFAIL
                # reaches the client only when no upstream does better.
                state.count(_TRY_NEXT[reply.rcode])
                if reply.rcode == wire.SERVFAIL:
                    servfail = reply
                continue
            state.count("ok")
            return reply
        return servfail

    def _failed(self, state: _State, exc: BaseException) -> None:
        if isinstance(exc, asyncio.TimeoutError):
            state.count("timeout")
        elif isinstance(exc, wire.BadReply):
            state.count("bad_reply")
        else:
            state.count("error")
        state.fails += 1
        if state.fails >= self.settings.max_fails and not state.down:
            state.down = True
            log.warning("upstream %s is DOWN after %d failures (last: %s)", state.upstream,
                        state.fails, _why(exc))
            state.probe = asyncio.get_running_loop().create_task(self._probe(state))

    def _succeeded(self, state: _State) -> None:
        state.fails = 0
        if state.down:
            state.down = False  # it answered a real query: no need to wait for the probe
            log.warning("upstream %s is UP again", state.upstream)

    async def _probe(self, state: _State) -> None:
        while state.down:
            await asyncio.sleep(self.settings.health_check)
            try:
                await asyncio.wait_for(
                    exchange(state.upstream, _PROBE_QUESTION, wire.NO_EDNS, False, self._tls),
                    max(self.settings.health_check, 1.0),
                )
            except (asyncio.TimeoutError, OSError, ssl.SSLError, wire.BadReply):
                continue
            except Exception:  # a bug must not leave the upstream down for good
                self.probe_errors += 1
                log.exception("probe of upstream %s failed unexpectedly", state.upstream)
                continue
            self._succeeded(state)


_TRY_NEXT = {wire.SERVFAIL: "servfail", wire.REFUSED: "refused", wire.NOTIMP: "notimp"}
"""Reply codes after which the next upstream is asked, by the result counted for metrics."""


def _key(query: wire.Query) -> Key:
    # CD is part of the key: what a validating upstream returned unchecked (CD=1) must not
    # reach clients that rely on it validating (RFC 4035 §4.7).
    return (query.qname, query.qtype, query.edns == wire.EDNS_DO, bool(query.data[3] & 0x10))


async def exchange(
    upstream: Upstream, question: bytes, edns: int, cd: bool, tls: ssl.SSLContext
) -> wire.UpstreamReply:
    """Ask `upstream` one question: UDP, then TCP if truncated; TLS for DoT upstreams."""
    ident = os.urandom(2)
    message = wire.make_query(ident, question, edns, cd)
    if upstream.tls_name is None:
        reply = await _udp(upstream, message, ident, question)
        if not reply.truncated:
            return reply
        ident = os.urandom(2)
        message = wire.make_query(ident, question, edns, cd)
    return await _stream(upstream, message, ident, question, tls)


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self, ident: bytes, question: bytes) -> None:
        self.ident = ident
        self.question = question
        self.result: asyncio.Future[wire.UpstreamReply] = (
            asyncio.get_running_loop().create_future())

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            reply = wire.parse_upstream_reply(data, self.ident, self.question)
        except wire.Unmatched:
            return  # not ours (or forged): keep waiting for the real one
        except wire.BadReply as exc:  # ours, but no client could decode it
            if not self.result.done():
                self.result.set_exception(exc)
            return
        if not self.result.done():
            self.result.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        if not self.result.done():
            self.result.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.result.done():
            self.result.set_exception(exc or ConnectionError("socket closed"))


async def _udp(upstream: Upstream, message: bytes, ident: bytes, question: bytes
               ) -> wire.UpstreamReply:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _OneReply(ident, question), remote_addr=(upstream.host, upstream.port))
    try:
        transport.sendto(message)
        return await protocol.result
    finally:
        transport.close()


async def _stream(upstream: Upstream, message: bytes, ident: bytes, question: bytes,
                  tls: ssl.SSLContext) -> wire.UpstreamReply:
    reader, writer = await asyncio.open_connection(
        upstream.host, upstream.port,
        ssl=tls if upstream.tls_name else None,
        server_hostname=upstream.tls_name,
    )
    try:
        writer.write(len(message).to_bytes(2, "big") + message)
        size = int.from_bytes(await reader.readexactly(2), "big")
        data = await reader.readexactly(min(size, _MAX_TCP_REPLY))
        return wire.parse_upstream_reply(data, ident, question)
    except asyncio.IncompleteReadError:
        raise wire.BadReply("connection closed before the reply") from None
    finally:
        writer.transport.abort()


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    return str(exc) or type(exc).__name__
