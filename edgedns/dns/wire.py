"""Bytes-level DNS on the per-query path: parse a query, build error replies, patch answers.

Nothing here allocates dnslib objects. A query is parsed just far enough to answer it:
header, the one question, and the OPT record (RFC 6891) wherever it sits in the additional
section. Every length is checked before it is used, so any input either parses or raises
`Drop` / `Reject`; nothing loops longer than the packet is long.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = 12
OPT = 41
MAX_TTL = 2**31 - 1
MAX_UDP = 1232
"""Our EDNS UDP payload size (the DNS Flag Day 2020 value) and largest UDP reply."""

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16

OPT_SIZE = 11
"""Bytes of our OPT record (no options)."""

NO_EDNS, EDNS, EDNS_DO = 0, 1, 2
"""Request traits that change an answer's bytes: OPT absent, present, present with DO."""

_ECS = 8
_ECS_FAMILY_BITS = {1: 32, 2: 128}
_NO_RECORDS = bytes(6)
_ONE_ADDITIONAL = b"\x00\x00\x00\x00\x00\x01"
_QR = 0x80
_TC = 0x02
_RD = 0x01
_CD = 0x10
_RA = 0x80
_DO = 0x8000


class Drop(Exception):
    """Input that gets no reply at all: too short for a header, or itself a response."""


class Reject(Exception):
    """A query answered only with an error `rcode` (FORMERR, NOTIMP, BADVERS, ...)."""

    def __init__(self, rcode: int, query: bytes, question_end: int, edns: int) -> None:
        self.rcode = rcode
        self.query = query
        self.question_end = question_end
        """Offset after the question, or HEADER when the question did not parse."""
        self.edns = edns


@dataclass(slots=True)
class Query:
    """The parts of a query that pick and patch the answer."""

    data: bytes
    name_end: int
    """Offset just past the question name; the question ends 4 bytes later."""
    qname: bytes
    """The question name in wire form, lowercased (the lookup key)."""
    qtype: int
    qclass: int
    edns: int
    """NO_EDNS, EDNS or EDNS_DO."""
    udp_size: int
    """The requestor's advertised UDP payload size (512 without EDNS)."""
    options: tuple[int, int] = (0, 0)
    """Start and end offsets of the OPT record's options in `data` (empty without EDNS)."""


def parse_query(data: bytes) -> Query:
    """Parse `data` as a query; raises `Drop` or `Reject` for anything else."""
    n = len(data)
    if n < HEADER or data[2] & _QR:
        raise Drop
    if (data[2] >> 3) & 0x0F:
        raise Reject(NOTIMP, data, HEADER, NO_EDNS)
    if data[4] or data[5] != 1:
        raise Reject(FORMERR, data, HEADER, NO_EDNS)
    pos = HEADER
    while True:
        if pos >= n:
            raise Reject(FORMERR, data, HEADER, NO_EDNS)
        length = data[pos]
        if length == 0:
            break
        if length > 63:  # compression pointers have nothing to point at in a question
            raise Reject(FORMERR, data, HEADER, NO_EDNS)
        pos += length + 1
    name_end = pos + 1
    if name_end - HEADER > 255 or name_end + 4 > n:
        raise Reject(FORMERR, data, HEADER, NO_EDNS)
    qtype = data[name_end] << 8 | data[name_end + 1]
    qclass = data[name_end + 2] << 8 | data[name_end + 3]
    edns, udp_size, options = NO_EDNS, 512, (0, 0)
    end = name_end + 4
    counts = data[6:HEADER]
    if counts == _NO_RECORDS:
        pass
    elif (
        counts == _ONE_ADDITIONAL
        and data[end : end + 3] == b"\x00\x00\x29"
        and end + 11 <= n  # a cut-short OPT goes the slow way, to its FORMERR
        and end + 11 + (data[end + 9] << 8 | data[end + 10]) == n
    ):
        # The usual case, a lone OPT right after the question: read it in place.
        _check_options(data, end + 11, n, end)
        edns = EDNS_DO if data[end + 7] & 0x80 else EDNS
        if data[end + 6]:  # EDNS version above 0 (RFC 6891 §6.1.3)
            raise Reject(BADVERS, data, end, edns)
        udp_size = max(data[end + 3] << 8 | data[end + 4], 512)
        options = (end + 11, n)
    else:
        edns, udp_size, options = _find_opt(data, end)
    return Query(
        data, name_end, data[HEADER:name_end].lower(), qtype, qclass, edns, udp_size, options
    )


def _find_opt(data: bytes, pos: int) -> tuple[int, int, tuple[int, int]]:
    """Walk answer, authority and additional records for the OPT; FORMERR on any flaw."""
    n = len(data)
    count = (data[6] << 8 | data[7]) + (data[8] << 8 | data[9]) + (data[10] << 8 | data[11])
    question_end = pos
    found: tuple[int, int, tuple[int, int]] | None = None
    version = 0
    for index in range(count):
        if pos >= n:
            raise Reject(FORMERR, data, question_end, NO_EDNS)
        owner_root = data[pos] == 0
        pos = _skip_name(data, pos, question_end)
        if pos + 10 > n:
            raise Reject(FORMERR, data, question_end, NO_EDNS)
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        end = pos + rdlen
        if end > n:
            raise Reject(FORMERR, data, question_end, NO_EDNS)
        if rtype == OPT:
            in_additional = index >= count - (data[10] << 8 | data[11])
            if found is not None or not owner_root or not in_additional:
                raise Reject(FORMERR, data, question_end, NO_EDNS)
            _check_options(data, pos, end, question_end)
            version = (ttl >> 16) & 0xFF
            found = (EDNS_DO if ttl & _DO else EDNS, max(rclass, 512), (pos, end))
        pos = end
    # BADVERS only once the whole message is known well-formed: a second OPT or a broken
    # record later on is FORMERR (RFC 6891 §6.1.1), whatever the first OPT's version.
    if found is not None and version:  # EDNS version above 0 (RFC 6891 §6.1.3)
        raise Reject(BADVERS, data, question_end, found[0])
    return found or (NO_EDNS, 512, (0, 0))


def _skip_name(data: bytes, pos: int, question_end: int) -> int:
    n = len(data)
    for _ in range(128):
        if pos >= n:
            break
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length > 63:
            break
        pos += length + 1
    raise Reject(FORMERR, data, question_end, NO_EDNS)


def _check_options(data: bytes, pos: int, end: int, question_end: int) -> None:
    while pos < end:
        if pos + 4 > end or pos + 4 + (data[pos + 2] << 8 | data[pos + 3]) > end:
            raise Reject(FORMERR, data, question_end, NO_EDNS)
        pos += 4 + (data[pos + 2] << 8 | data[pos + 3])


def client_subnet(query: Query) -> tuple[bytes, bytes] | None:
    """The query's EDNS Client Subnet (RFC 7871) as (the subnet's bytes, to key on; the
    option to echo, its scope set to the whole source prefix), or None when it has none
    or it is malformed (a malformed ECS is ignored rather than answered FORMERR)."""
    data = query.data
    pos, end = query.options
    while pos + 4 <= end:
        code = data[pos] << 8 | data[pos + 1]
        length = data[pos + 2] << 8 | data[pos + 3]
        body = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if code != _ECS or length < 4:
            continue
        family, source = body[0] << 8 | body[1], body[2]
        address = body[4:]
        limit = _ECS_FAMILY_BITS.get(family)
        if limit is None or source > limit or len(address) != (source + 7) // 8:
            return None
        echo = b"\x00\x08" + length.to_bytes(2, "big") + body[:3] + bytes((source,)) + address
        return body[:3] + address, echo
    return None


def add_option(reply: bytes, option: bytes) -> bytes:
    """`reply`, whose last record is our option-less OPT, with `option` put into it."""
    return reply[:-2] + len(option).to_bytes(2, "big") + option


def opt_record(edns: int, ext_rcode: int = 0) -> bytes:
    """Our OPT record: payload size MAX_UDP, version 0, DO echoed (RFC 3225 §3)."""
    flags = _DO if edns == EDNS_DO else 0
    return struct.pack("!BHHBBHH", 0, OPT, MAX_UDP, ext_rcode, 0, flags, 0)


_OPT_RECORDS = {EDNS: opt_record(EDNS), EDNS_DO: opt_record(EDNS_DO)}


def answer_to(answer: bytes, query: Query) -> bytes:
    """`patch` and, for an EDNS query, `with_opt` in one go: the reply to `query` from
    `answer` (packed without OPT, RD or CD, for its lowercased question or a name of the
    same length sharing it)."""
    data = query.data
    question_end = query.name_end + 4
    flags = bytes((answer[2] | (data[2] & _RD), answer[3] | (data[3] & _CD)))
    if query.edns == NO_EDNS:
        return (data[:2] + flags + answer[4:HEADER] + data[HEADER:question_end]
                + answer[question_end:])
    arcount = ((answer[10] << 8 | answer[11]) + 1).to_bytes(2, "big")
    return b"".join((data[:2], flags, answer[4:10], arcount, data[HEADER:question_end],
                     answer[question_end:], _OPT_RECORDS[query.edns]))


def with_opt(message: bytes, edns: int) -> bytes:
    """`message` (a reply without OPT) with our OPT appended and ARCOUNT raised by one."""
    if edns == NO_EDNS:
        return message
    arcount = (message[10] << 8 | message[11]) + 1
    return message[:10] + arcount.to_bytes(2, "big") + message[HEADER:] + _OPT_RECORDS[edns]


def truncated(message: bytes, question_end: int) -> bytes:
    """Header and question of `message` only, with TC set: 'retry over TCP' (RFC 7766)."""
    flags = bytes((message[2] | _TC, message[3]))
    return message[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + message[
        HEADER:question_end
    ]


def truncated_keeping_opt(message: bytes, question_end: int) -> bytes:
    """`truncated`, keeping the OPT record of `message` when it has one (RFC 6891 §7: a
    reply to an EDNS query carries OPT). Walks the records, so it is for rare replies."""
    short = truncated(message, question_end)
    if not message[10] | message[11]:
        return short
    try:
        edns, _, (start, end) = _find_opt(message, question_end)
    except Reject:
        return short
    if edns == NO_EDNS:
        return short
    return short[:11] + b"\x01" + short[HEADER:] + message[start - 11 : end]


def error_reply(reject: Reject) -> bytes:
    """The reply to a rejected query: its ID, opcode and RD, our rcode, its question if it
    parsed, and our OPT when the query carried one (extended rcode bits go there).

    An opcode we do not implement echoes no flags at all: RD and CD mean something only
    for QUERY, and genreport's `opcodeflg` check expects them clear."""
    query = reject.query
    rcode = reject.rcode
    if query[2] & 0x78:
        flags = bytes((_QR | (query[2] & 0x78), rcode & 0x0F))
    else:
        flags = bytes((_QR | (query[2] & _RD), (query[3] & _CD) | (rcode & 0x0F)))
    qdcount = b"\x00\x01" if reject.question_end > HEADER else b"\x00\x00"
    arcount = b"\x00\x00" if reject.edns == NO_EDNS else b"\x00\x01"
    head = query[:2] + flags + qdcount + b"\x00\x00\x00\x00" + arcount
    tail = b"" if reject.edns == NO_EDNS else opt_record(reject.edns, rcode >> 4)
    return head + query[HEADER : reject.question_end] + tail


def patch(answer: bytes, query: Query) -> bytes:
    """`answer` (packed for the lowercased question, or for a name of the same length that
    shares its reply) made the reply to `query`: its ID, its RD and CD bits, and its
    question bytes, so the name comes back exactly as asked."""
    data = query.data
    flags = bytes((answer[2] | (data[2] & _RD), answer[3] | (data[3] & _CD)))
    question_end = query.name_end + 4
    return data[:2] + flags + answer[4:HEADER] + data[HEADER:question_end] + answer[question_end:]


def limit(query: Query, tcp: bool) -> int:
    """The largest reply `query` may get (RFC 1035 §4.2.1, RFC 6891 §6.2.5)."""
    if tcp:
        return 65535
    if query.edns == NO_EDNS:
        return 512
    return min(query.udp_size, MAX_UDP)


class BadReply(Exception):
    """An upstream message that is not a well-formed reply to the question we sent."""


class Unmatched(BadReply):
    """A message whose ID or question is not ours: maybe a spoofing try, to be ignored."""


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """An upstream's reply, ready to relay and to cache."""

    body: bytes
    """The reply without its OPT record, ID zeroed, RD clear (`patch` sets the client's), RA
    set."""
    ttl_offsets: tuple[int, ...]
    """Offsets in `body` of every record's TTL field."""
    rcode: int
    truncated: bool
    cache_ttl: int | None
    """Seconds it may be cached: its smallest TTL; for NXDOMAIN/NODATA min(SOA TTL, SOA
    minimum) (RFC 2308 §5); None when it must not be (truncated, errors, no SOA)."""


def parse_upstream_reply(data: bytes, sent_id: bytes, question: bytes) -> UpstreamReply:
    """Check that `data` answers our query (ID `sent_id`, lowercased `question` section) and
    split it for relaying. Raises `Unmatched` for another ID or question (maybe a spoofing
    try), `BadReply` for a reply to it that does not decode."""
    n = len(data)
    qend = HEADER + len(question)
    if n < qend or data[:2] != sent_id or not data[2] & _QR or data[4:6] != b"\x00\x01":
        raise Unmatched("not a reply to our query")
    if data[HEADER : qend - 4].lower() != question[:-4] or data[qend - 4 : qend] != question[-4:]:
        raise Unmatched("reply to another question")
    answers = data[6] << 8 | data[7]
    authorities = data[8] << 8 | data[9]
    count = answers + authorities + (data[10] << 8 | data[11])
    pos = qend
    offsets: list[int] = []
    ttls: list[int] = []
    negative_ttl: int | None = None
    opt_at = None
    for index in range(count):
        if pos >= n or opt_at is not None:
            raise BadReply("truncated message, or records after the OPT")
        start = pos
        pos = _name_end(data, pos)
        if pos + 10 > n:
            raise BadReply("truncated record")
        rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        if ttl > MAX_TTL:
            ttl = 0  # RFC 2181 §8: a TTL with the top bit set is zero
        if pos + 10 + rdlen > n:
            raise BadReply("truncated record data")
        _check_rdata_names(data, rtype, pos + 10, pos + 10 + rdlen)
        if rtype == OPT:
            if index < answers + authorities:
                raise BadReply("OPT outside the additional section")
            opt_at = start
        else:
            offsets.append(pos + 4)
            ttls.append(ttl)
            if rtype == 6 and answers <= index < answers + authorities and rdlen >= 20:
                minimum = struct.unpack_from("!I", data, pos + 10 + rdlen - 4)[0]
                negative_ttl = min(ttl, minimum)
        pos += 10 + rdlen
    rcode = data[3] & 0x0F
    truncated = bool(data[2] & _TC)
    body = bytearray(data[:opt_at] if opt_at is not None else data)
    body[0:2] = b"\x00\x00"
    body[2] &= ~_RD & 0xFF
    body[3] |= _RA  # we recurse for the client, whatever the upstream is
    if opt_at is not None:
        arcount = (data[10] << 8 | data[11]) - 1
        body[10:12] = arcount.to_bytes(2, "big")
    if truncated or rcode not in (NOERROR, NXDOMAIN):
        cache_ttl = None
    elif rcode == NOERROR and answers:
        cache_ttl = min(ttls)
    else:
        cache_ttl = negative_ttl
    return UpstreamReply(bytes(body), tuple(offsets), rcode, truncated, cache_ttl)


_NAMES_IN_RDATA = {2: 1, 5: 1, 12: 1, 39: 1, 15: 1, 6: 2, 33: 1}
"""Types whose data holds (possibly compressed) names: how many, first at `_NAME_AT`."""
_NAME_AT = {15: 2, 33: 6}


def _check_rdata_names(data: bytes, rtype: int, start: int, end: int) -> None:
    """Raise `BadReply` unless every name in the record data decodes within it."""
    count = _NAMES_IN_RDATA.get(rtype)
    if count is None:
        return
    pos = start + _NAME_AT.get(rtype, 0)
    for _ in range(count):
        pos = _name_end(data, pos)
        if pos > end:
            raise BadReply("a name runs past its record data")


def _name_end(data: bytes, pos: int) -> int:
    """Where the name at `pos` ends in place; raises `BadReply` unless it decodes. Every
    compression pointer must point before the run of labels it ends (a prior occurrence,
    RFC 1035 §4.1.4), so following them always ends, and the name fits 255 bytes: a reply
    a client could not decode is never cached or relayed."""
    n = len(data)
    end = None
    run = pos
    length = 1
    while True:
        if pos >= n:
            raise BadReply("a name runs past the message")
        size = data[pos]
        if size == 0:
            return end if end is not None else pos + 1
        if size & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise BadReply("a name runs past the message")
            target = (size & 0x3F) << 8 | data[pos + 1]
            if target >= run:
                raise BadReply("a compression pointer that does not point back (a loop)")
            if end is None:
                end = pos + 2
            run = pos = target
            continue
        if size > 63:
            raise BadReply("a label type that does not exist")
        length += size + 1
        if length > 255:
            raise BadReply("a name over 255 bytes")
        pos += size + 1


def ttl_at(message: bytes, offset: int) -> int:
    """The TTL field at `offset`, as RFC 2181 §8 reads it (top bit set: zero)."""
    ttl = struct.unpack_from("!I", message, offset)[0]
    return 0 if ttl > MAX_TTL else ttl


def make_query(ident: bytes, question: bytes, edns: int, cd: bool) -> bytes:
    """A recursive query for `question` (name, type, class in wire form) with our OPT."""
    flags = bytes((_RD, _CD if cd else 0))
    arcount = b"\x00\x00" if edns == NO_EDNS else b"\x00\x01"
    head = ident + flags + b"\x00\x01\x00\x00\x00\x00" + arcount
    return head + question + (opt_record(edns) if edns != NO_EDNS else b"")


def relay(body: bytes, query: Query, tcp: bool) -> bytes:
    """A forwarded or cached `body` (no OPT) as the reply to `query`: our OPT added when it
    has EDNS, cut to the TC stub when too large for it, then `patch`ed."""
    message = with_opt(body, query.edns)
    if len(message) > limit(query, tcp):
        message = with_opt(truncated(body, query.name_end + 4), query.edns)
    return patch(message, query)


def servfail(query: Query) -> bytes:
    """SERVFAIL for a query we tried to forward, with RA set: we do offer recursion."""
    reply = error_reply(Reject(SERVFAIL, query.data, query.name_end + 4, query.edns))
    return reply[:3] + bytes((reply[3] | _RA,)) + reply[4:]
