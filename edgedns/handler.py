"""The query pipeline: bytes in → parse → compiled answer, cache or forwarder → bytes out.

Transport-agnostic: listeners call `QueryHandler.respond` for each message and send whatever
it returns, at once when it is bytes, when done when it is a future (a forwarded question).
Authoritative and cached replies are built from bytes prepared before the query arrived.
"""

from __future__ import annotations

import asyncio

from edgedns import wire
from edgedns.answers import AnswerTable, PoolEntry
from edgedns.forward import Forwarder

# Plain ints: dnslib's QTYPE/CLASS attribute lookups cost more than the rest of a query.
_IN = 1
_IXFR, _AXFR = 251, 252


class QueryHandler:
    def __init__(self, answers: AnswerTable, forwarder: Forwarder | None = None) -> None:
        self.answers = answers
        self.forwarder = forwarder

    def respond(
        self, data: bytes, tcp: bool, client: str
    ) -> bytes | asyncio.Future[bytes] | None:
        """The reply to one DNS message from `client` (its address): bytes, a future of
        them for a forwarded question not in the cache, or None when it deserves none."""
        try:
            query = wire.parse_query(data)
        except wire.Drop:
            return None
        except wire.Reject as reject:
            return wire.error_reply(reject)
        qtype = query.qtype
        if query.qclass != _IN or qtype == _IXFR or qtype == _AXFR:
            # Zone transfers are not offered; AXFR is TCP-only (RFC 5936 §4.2).
            rcode = wire.NOTIMP if qtype == _AXFR and not tcp else wire.REFUSED
            return self._error(query, rcode)
        entry = self.answers.lookup(query.qname, qtype)
        if entry is None:
            forwarder = self.forwarder
            if forwarder is None or not forwarder.allows(client):
                return self._error(query, wire.REFUSED)
            return forwarder.answer(query, tcp)
        echo = None
        if entry.__class__ is PoolEntry:
            key = client.encode()
            if entry.chooser == "hash" and query.edns:
                # Behind a resolver, the client's subnet (RFC 7871) says who really asks.
                subnet = wire.client_subnet(query)
                if subnet is not None:
                    key, echo = subnet
            entry = entry.pick(key)
        full, reduced, stub = entry[query.edns]
        limit = wire.limit(query, tcp)
        if echo is not None:
            limit -= len(echo)
        if len(full) <= limit:
            reply = full
        elif len(reduced) <= limit:
            reply = reduced
        else:
            reply = stub
        reply = wire.patch(reply, query)
        return reply if echo is None else wire.add_option(reply, echo)

    @staticmethod
    def _error(query: wire.Query, rcode: int) -> bytes:
        reject = wire.Reject(rcode, query.data, query.name_end + 4, query.edns)
        return wire.error_reply(reject)
