"""Compiled answers: (lowercased question name, type) → reply bytes for every request trait.

Replies are packed with dnslib once, when zones load (every owner name and type present) or on
first use (names only reached through wildcards, NXDOMAIN, NODATA for absent types), never per
query. A query then costs a dict lookup plus `wire.patch`.

Each entry holds, for each EDNS trait (none / OPT / OPT+DO), three forms: the full reply, the
reply without optional additional records, and the TC=1 stub; the smallest that fits the
query's size limit is sent (RFC 2181 §9: dropping additional data needs no TC bit, except glue
a referral cannot do without, RFC 9471).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from dnslib import QTYPE, DNSHeader, DNSQuestion, DNSRecord

from edgedns import names, wire
from edgedns.catalog import Catalog
from edgedns.names import Name
from edgedns.zone import Outcome, Section

Forms = tuple[bytes, bytes, bytes]
"""(full, without optional additional, truncated stub)."""
Entry = tuple[Forms, Forms, Forms]
"""Forms indexed by wire.NO_EDNS, wire.EDNS, wire.EDNS_DO."""

DEFAULT_CACHE = 20_000
_PRECOMPILED_EXTRA = (QTYPE.A, QTYPE.AAAA, QTYPE.ANY)
"""Types compiled for every name even when absent, since clients ask them most."""


class AnswerTable:
    """Reply bytes for our zones. Not thread-safe: it lives on the server's event loop."""

    def __init__(self, catalog: Catalog, cache_size: int = DEFAULT_CACHE) -> None:
        self.catalog = catalog
        self._static: dict[tuple[bytes, int], Entry] = {}
        self._lazy: OrderedDict[tuple[bytes, int], Entry] = OrderedDict()
        self._cache_size = cache_size
        for zone in catalog.zones.values():
            for owner, node in zone.nodes.items():
                for qtype in {*node, *_PRECOMPILED_EXTRA}:
                    self._static[(names.to_wire(owner), qtype)] = self._compile(owner, qtype)

    def __len__(self) -> int:
        return len(self._static) + len(self._lazy)

    def lookup(self, qname: bytes, qtype: int) -> Entry | None:
        """The entry for a lowercased wire-form name, or None when no zone of ours holds it."""
        key = (qname, qtype)
        entry = self._static.get(key)
        if entry is not None:
            return entry
        entry = self._lazy.get(key)
        if entry is not None:
            self._lazy.move_to_end(key)
            return entry
        name = names.from_wire(qname)
        if self.catalog.zone_for(name) is None:
            return None
        entry = self._compile(name, qtype)
        self._lazy[key] = entry
        if len(self._lazy) > self._cache_size:
            self._lazy.popitem(last=False)
        return entry

    def _compile(self, qname: Name, qtype: int) -> Entry:
        outcome = self.catalog.resolve(qname, qtype)
        assert outcome is not None
        return compile_outcome(qname, qtype, outcome)


def compile_outcome(qname: Name, qtype: int, outcome: Outcome) -> Entry:
    """Pack `outcome` as the reply to (`qname`, `qtype`, IN) in all its forms."""
    full = _pack(qname, qtype, outcome, outcome.authority, outcome.additional)
    authority = [] if outcome.optional_authority else outcome.authority
    required = outcome.additional[: outcome.required_glue]
    if authority == outcome.authority and required == outcome.additional:
        reduced = full
    else:
        reduced = _pack(qname, qtype, outcome, authority, required)
    question_end = wire.HEADER + names.wire_length(qname) + 4
    stub = wire.truncated(full, question_end)
    return tuple(
        (wire.with_opt(full, e), wire.with_opt(reduced, e), wire.with_opt(stub, e))
        for e in (wire.NO_EDNS, wire.EDNS, wire.EDNS_DO)
    )  # type: ignore[return-value]


def _pack(
    qname: Name, qtype: int, outcome: Outcome, authority: list[Section], additional: list[Section]
) -> bytes:
    header = DNSHeader(qr=1, aa=int(outcome.authoritative), rd=0, rcode=outcome.rcode)
    reply = DNSRecord(header, q=DNSQuestion(names.to_label(qname), qtype))
    reply.add_answer(*_rrs(outcome.answer))
    reply.add_auth(*_rrs(authority))
    reply.add_ar(*_rrs(additional))
    return reply.pack()


def _rrs(sections: Iterable[Section]) -> list:
    return [rr for s in sections for rr in s.rrset.rrs(s.owner)]
