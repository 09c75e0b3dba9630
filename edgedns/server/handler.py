"""The query pipeline: bytes in → parse → cached or built reply, or the forwarder → bytes out.

Transport-agnostic: listeners call `QueryHandler.respond` for each message and send whatever
it returns, at once when it is bytes, when done when it is a future (a forwarded question).
Authoritative and cached replies are built from bytes prepared before the query arrived.
Every answered query is counted (`edgedns.admin.metrics.QueryStats`) and, when asked for, logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from dnslib import QTYPE, RCODE, RR, TXT, DNSHeader, DNSQuestion, DNSRecord

from edgedns.admin.metrics import QueryStats
from edgedns.authority.answers import Answers, PoolReply, Reply
from edgedns.dns import names, wire
from edgedns.dns.names import Name
from edgedns.dns.wire import HEADER
from edgedns.forward.forwarder import Forwarder
from edgedns.pools.pool import PoolSet
from edgedns.server import chase, packets
from edgedns.server.packets import PacketCache, Sibling
from edgedns.server.ratelimit import RateLimitSettings, ResponseRateLimit, TokenBucket

# Plain ints: dnslib's QTYPE/CLASS attribute lookups cost more than the rest of a query.
_IN = 1
_TXT = 16
_IXFR, _AXFR = 251, 252
_RD, _CD = 0x01, 0x10
DEBUG_LABEL = b"\x08_edgedns"
"""TXT queries for ``_edgedns.<pool name>`` answer the pool's member states (to `debug_allow`)."""
FORWARDED = "forward"
_FOREVER = float("inf")
_SIBLINGS = -1.0
DEBUG_RATE = 20
"""Debug answers per second, all clients together; beyond it the zone answers as usual."""
DEBUG_REPLY_MAX = 60_000
"""Bytes of member lines a debug reply holds at most (it must fit a TCP reply)."""

query_log = logging.getLogger("edgedns.querylog")


class QueryHandler:
    def __init__(
        self,
        answers: Answers,
        forwarder: Forwarder | None = None,
        stats: QueryStats | None = None,
        log_queries: bool = False,
        debug_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
        packet_cache_bytes: int = 32 << 20,
        rate_limit: RateLimitSettings | None = None,
    ) -> None:
        self.answers = answers
        self.forwarder = forwarder
        self.stats = stats if stats is not None else QueryStats()
        self.log_queries = log_queries
        self.debug_allow = debug_allow
        self._debug_budget = TokenBucket(DEBUG_RATE, DEBUG_RATE)
        self._debug_replies: dict[Name, tuple[int, bytes]] = {}
        """Per pool: (its health generation, the debug TXT reply built for it)."""
        share = packet_cache_bytes // 6
        self._packets = tuple(tuple(PacketCache(share) for _ in range(3)) for _ in (0, 1))
        """Per transport (UDP, TCP), PowerDNS-style, replies that depend on nothing but the
        question: by the exact query bytes after the ID (a repeat costs a dict lookup), and
        by the question normalized (lowercased name, type, class, CD, EDNS trait, size
        limit), so clients randomising case or sending cookies hit too. Values: (reply bytes
        after the ID, or the whole reply to patch; metric labels; until when it holds; the
        pool whose addresses it holds and that pool's generation; the rate-limit name;
        where the question ends). The third holds `Sibling` replies."""
        self.rate_limit = ResponseRateLimit(rate_limit) if rate_limit is not None else None
        """Response-rate limiting of UDP replies; None: off."""

    def respond(
        self, data: bytes, tcp: bool, client: str
    ) -> bytes | asyncio.Future[bytes] | None:
        """The reply to one DNS message from `client` (its address): bytes, a future of
        them for a forwarded question not in the cache, or None when it deserves none."""
        start = time.perf_counter()
        exact, normal, siblings = self._packets[tcp]
        entries = exact.entries
        exact_key = data[2:]
        hit = entries.get(exact_key)
        if hit is not None:
            entries.move_to_end(exact_key)
            # The hottest path: what `_holds` and `_send` do, inline for an authoritative
            # reply from an exempt or TCP client.
            if hit[2] == _FOREVER and (
                hit[3] is None or self.answers.pools.generation[hit[3]] == hit[4]
            ):
                self.stats.tally(hit[1], time.perf_counter() - start)
                rrl = self.rate_limit
                if tcp or rrl is None or rrl.prefixes.get(client, b"") is None:
                    return data[:2] + hit[0]
                return self._limited(data[:2] + hit[0], client, hit[5], hit[6])
            if self._holds(hit, client):
                self.stats.tally(hit[1], time.perf_counter() - start)
                return self._send(data[:2] + hit[0], tcp, client, hit)
        # A name never asked before, whose reply a sibling's already gave (random names).
        sibling_key = packets.sibling_key(data)
        sibling = siblings.entries.get(sibling_key)
        if sibling is not None and data[HEADER:HEADER + 9].lower() != DEBUG_LABEL:
            reply = sibling.reply_for(data, self.answers)
            if reply is not None:
                siblings.entries.move_to_end(sibling_key)
                self.stats.tally(sibling.labels, time.perf_counter() - start)
                rrl = self.rate_limit
                if tcp or rrl is None or rrl.prefixes.get(client, b"") is None:
                    return reply
                return self._limited(reply, client, sibling.limit_name
                                     or reply[HEADER:sibling.question_end - 4].lower(),
                                     sibling.question_end)
        try:
            query = wire.parse_query(data)
        except wire.Drop:
            return None
        except wire.Reject as reject:
            reply = wire.error_reply(reject)
            self._done(None, reply, "", tcp, client, start)
            if tcp or self.rate_limit is None:
                return reply
            return self._limited(reply, client, b"", reject.question_end)
        # The same question asked with other letter case, ID, RD, cookie or padding.
        limit = wire.limit(query, tcp)
        key = (query.qname, query.qtype, query.qclass, data[3] & _CD, query.edns, limit)
        hit = normal.entries.get(key)
        if hit is not None and self._holds(hit, client):
            normal.entries.move_to_end(key)
            self.stats.tally(hit[1], time.perf_counter() - start)
            return self._send(wire.patch(hit[0], query), tcp, client, hit)
        reply, zone, holds_for, pool, generation = self._answer(query, tcp, client, limit)
        if reply.__class__ is bytes:
            self._done(query, reply, zone, tcp, client, start)
            # NXDOMAIN replies are limited per zone, so random names share one bucket.
            nxdomain = reply[3] & 0x0F == wire.NXDOMAIN
            limit_name = zone.encode() if nxdomain else query.qname
            question_end = query.name_end + 4
            if holds_for == _SIBLINGS:
                if sibling_key and not self.log_queries:
                    labels = QueryStats.labels(zone, query.qtype, reply[3] & 0x0F, tcp)
                    entry = Sibling.of(reply, names.from_wire(query.qname), question_end,
                                       labels, pool, generation,
                                       limit_name if nxdomain else None, self.answers)
                    if entry is not None:
                        siblings.put(sibling_key, entry)
            elif holds_for and not self.log_queries:
                labels = QueryStats.labels(zone, query.qtype, reply[3] & 0x0F, tcp)
                until = _FOREVER if holds_for == _FOREVER else time.monotonic() + holds_for
                exact.put(exact_key, (reply[2:], labels, until, pool, generation,
                                      limit_name, question_end))
                # Kept with RD and CD clear: `wire.patch` sets the asker's.
                unpatched = reply[:2] + bytes((reply[2] & ~_RD & 0xFF,
                                               reply[3] & ~_CD & 0xFF))
                normal.put(key, (unpatched + reply[4:], labels, until, pool, generation,
                                 limit_name, question_end))
            rrl = self.rate_limit
            if not tcp and rrl is not None and rrl.prefixes.get(client, b"") is not None:
                return self._limited(reply, client, limit_name, question_end)
        else:
            reply.add_done_callback(
                lambda done: self._forwarded(done, query, zone, tcp, client, start))
        return reply

    def _holds(self, hit: tuple, client: str) -> bool:
        """Whether a remembered reply still holds for `client`: authoritative ones while
        their pool's health holds; forwarded ones while their TTLs stand still, and only for
        clients the forwarding ACL lets in."""
        until, pool, generation = hit[2], hit[3], hit[4]
        if until == _FOREVER:
            return pool is None or self.answers.pools.generation[pool] == generation
        forwarder = self.forwarder
        if time.monotonic() < until and forwarder is not None and forwarder.allows(client):
            forwarder.cache.hits += 1
            return True
        return False

    def _send(self, reply: bytes, tcp: bool, client: str, hit: tuple) -> bytes | None:
        if tcp or self.rate_limit is None:
            return reply
        return self._limited(reply, client, hit[5], hit[6])

    def _limited(self, reply: bytes, client: str, name: bytes, question_end: int
                 ) -> bytes | None:
        assert self.rate_limit is not None
        return self.rate_limit.limit(client, reply, name, question_end, time.monotonic())

    def _forwarded(self, done: asyncio.Future[bytes], query: wire.Query, zone: str, tcp: bool,
                   client: str, start: float) -> None:
        if not done.cancelled() and done.exception() is None:
            self._done(query, done.result(), zone, tcp, client, start)

    def _done(self, query: wire.Query | None, reply: bytes, zone: str, tcp: bool, client: str,
              start: float) -> None:
        elapsed = time.perf_counter() - start
        qtype = query.qtype if query is not None else 0
        rcode = reply[3] & 0x0F
        self.stats.count(zone, qtype, rcode, tcp, elapsed)
        if self.log_queries:
            name = names.to_text(names.from_wire(query.qname)) if query is not None else "-"
            query_log.info(
                "client=%s name=%s type=%s rcode=%s transport=%s latency_us=%d source=%s",
                client, name, QTYPE.get(qtype), RCODE.get(rcode),
                "tcp" if tcp else "udp", elapsed * 1e6, zone or "none")

    def _answer(
        self, query: wire.Query, tcp: bool, client: str, limit: int
    ) -> tuple[bytes | asyncio.Future[bytes], str, float, Name | None, int]:
        """(reply, zone label, for how many seconds every client asking these bytes gets
        this same reply: _FOREVER while the zones say the same, 0 when it depends on who
        asks, _SIBLINGS when every name differing only in its first label gets it too (as
        long as that name is not in the zone); the pool whose addresses it holds and that
        pool's generation, if any).
        Forwarded replies count as the same for every client the ACL lets in. `limit`:
        the largest reply the query may get (`wire.limit`)."""
        qtype = query.qtype
        if query.qclass != _IN or qtype == _IXFR or qtype == _AXFR:
            # Zone transfers are not offered; AXFR is TCP-only (RFC 5936 §4.2).
            rcode = wire.NOTIMP if qtype == _AXFR and not tcp else wire.REFUSED
            return self._error(query, rcode), "", _FOREVER, None, 0
        debugging = qtype == _TXT and query.qname.startswith(DEBUG_LABEL)
        if debugging:  # who asks decides the answer: never the same for all
            debug = self._debug(query, tcp, client)
            if debug is not None:
                return debug, "debug", 0, None, 0
        entry = self.answers.lookup(query.qname, qtype)
        if entry is None:
            forwarder = self.forwarder
            if forwarder is None:
                return self._error(query, wire.REFUSED), "", _FOREVER, None, 0
            if not forwarder.allows(client):
                return self._error(query, wire.REFUSED), "", 0, None, 0
            cached = forwarder.cached(query, tcp)
            if cached is not None:
                return cached[0], FORWARDED, cached[1], None, 0
            return forwarder.answer(query, tcp), FORWARDED, 0, None, 0
        echo = None
        holds_for = 0.0 if debugging else _FOREVER
        if entry.__class__ is PoolReply:
            key = client.encode()
            if entry.picker.chooser == "hash" and query.edns:
                # Behind a resolver, the client's subnet (RFC 7871) says who really asks.
                subnet = wire.client_subnet(query)
                if subnet is not None:
                    key, echo = subnet
            packed = entry.pick(key)
            holds_for = 0.0
        else:
            packed = entry.packed
        if entry.shared and holds_for:
            # Found again as cheaply as from the packet cache, or from one entry for every
            # sibling name: spare the packet cache.
            holds_for = _SIBLINGS if entry.siblings else 0.0
        if query.edns:
            limit -= wire.OPT_SIZE if echo is None else wire.OPT_SIZE + len(echo)
        if len(packed.full) <= limit:
            reply = packed.full
        elif len(packed.reduced) <= limit:
            reply = packed.reduced
        else:
            reply = packed.stub
        reply = wire.answer_to(reply, query)
        if echo is not None:
            reply = wire.add_option(reply, echo)
        if entry.__class__ is Reply and entry.chase is not None:
            forwarder = self.forwarder
            if forwarder is not None:
                if not forwarder.allows(client):  # others get it chased: not for all
                    return reply, entry.zone, 0, None, 0
                chased = chase.chase(forwarder, query, tcp, wire.answer_to(packed.full, query),
                                     entry.chase)
                return chased, entry.zone, 0, None, 0
        return reply, entry.zone, holds_for, entry.pool, entry.generation

    def _debug(self, query: wire.Query, tcp: bool, client: str) -> bytes | None:
        """Member states of the pool named after the `_edgedns` label, as TXT records, for
        clients in `debug_allow`, at most `DEBUG_RATE` a second; None (answer normally)
        otherwise. The reply is built once per pool health generation."""
        pools: PoolSet = self.answers.pools
        name = names.from_wire(query.qname)[1:]
        pool = pools.pools.get(name)
        if pool is None or not self._debug_allowed(client):
            return None
        if not self._debug_budget.take(time.monotonic()):
            return None
        generation = pools.generation[name]
        cached = self._debug_replies.get(name)
        if cached is None or cached[0] != generation:
            cached = self._debug_replies[name] = (generation, _debug_reply(query.qname, pools,
                                                                           name))
        full = cached[1]
        if len(full) + (wire.OPT_SIZE if query.edns else 0) > wire.limit(query, tcp):
            full = wire.truncated(full, query.name_end + 4)
        return wire.patch(wire.with_opt(full, query.edns), query)

    def _debug_allowed(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.debug_allow)

    @staticmethod
    def _error(query: wire.Query, rcode: int) -> bytes:
        reject = wire.Reject(rcode, query.data, query.name_end + 4, query.edns)
        return wire.error_reply(reject)


def _debug_reply(qname: bytes, pools: PoolSet, name: Name) -> bytes:
    """The TXT reply (no OPT, ID 0) listing the members of pool `name` and their state, as
    many as fit in a TCP reply, and how many more there are."""
    owner = names.to_label(names.from_wire(qname))
    reply = DNSRecord(DNSHeader(qr=1, aa=1), q=DNSQuestion(owner, QTYPE.TXT))
    members = pools.pools[name].members
    size = wire.HEADER + len(qname) + 4
    for shown, member in enumerate(members):
        if size > DEBUG_REPLY_MAX:
            more = f"... and {len(members) - shown} more members"
            reply.add_answer(RR(reply.q.qname, QTYPE.TXT, ttl=0, rdata=TXT(more)))
            break
        target = member.target
        health = pools.health.get(target) if target is not None else None
        last = health.last if health is not None else None
        rtt = f" rtt={last.rtt * 1000:.1f}ms" if last and last.rtt is not None else ""
        text = (f"{member.address} {'up' if pools.is_up(member) else 'down'} "
                f"check={target or 'none'} reason={last.reason if last else 'none'}{rtt}")
        reply.add_answer(RR(reply.q.qname, QTYPE.TXT, ttl=0, rdata=TXT(text[:255])))
        size += 2 + 10 + 1 + min(len(text), 255)  # owner pointer, fixed fields, one string
    return reply.pack()
