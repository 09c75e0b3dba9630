"""A local CNAME into a forwarded name, answered with the chased records (as CoreDNS does):
`www.site.lan CNAME app.example.com.` gets the CNAME and then what the forwarder answers for
`app.example.com`, so stub resolvers, which do not chase CNAMEs themselves, get an address.

The rcode and authority section are the upstream's (RFC 6604: the last name's); the answer
is ours then theirs. A merged reply too big for the client is cut to the TC stub.
"""

from __future__ import annotations

import asyncio

from dnslib import DNSError, DNSRecord

from edgedns.dns import names, wire
from edgedns.dns.names import Name
from edgedns.forward.forwarder import Forwarder


def chase(forwarder: Forwarder, query: wire.Query, tcp: bool, ours: bytes, target: Name
          ) -> bytes | asyncio.Future[bytes]:
    """`ours` (our reply to `query`, ending in a CNAME to `target`) completed with the
    forwarder's answer for `target`: at once from its cache, else a future."""
    question = names.to_wire(target) + query.data[query.name_end : query.name_end + 4]
    sub = wire.parse_query(wire.make_query(b"\x00\x00", question, query.edns,
                                           bool(query.data[3] & 0x10)))
    cached = forwarder.cached(sub, True)  # the whole answer: the client's limit comes after
    if cached is not None:
        return _merge(ours, cached[0], query, tcp)
    upstream = forwarder.answer(sub, True)
    if upstream.__class__ is bytes:
        return _merge(ours, upstream, query, tcp)
    merged: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def done(future: asyncio.Future[bytes]) -> None:
        if merged.done():
            return
        if future.cancelled() or future.exception() is not None:
            merged.set_result(ours)  # what we know ourselves beats no answer
        else:
            merged.set_result(_merge(ours, future.result(), query, tcp))

    upstream.add_done_callback(done)
    return merged


def _merge(ours: bytes, theirs: bytes, query: wire.Query, tcp: bool) -> bytes:
    try:
        mine, upstream = DNSRecord.parse(ours), DNSRecord.parse(theirs)
    except DNSError:
        return ours
    mine.rr.extend(upstream.rr)
    mine.auth = upstream.auth
    mine.header.rcode = upstream.header.rcode
    mine.header.ra = 1
    reply = bytes(mine.pack())
    if len(reply) > wire.limit(query, tcp):
        reply = wire.truncated_keeping_opt(reply, query.name_end + 4)
    return reply
