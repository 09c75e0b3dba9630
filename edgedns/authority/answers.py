"""Compiled answers: (lowercased question name, type) → reply bytes for every request trait.

Replies are packed with dnslib once, when zones load (every owner name and type present) or on
first use (names only reached through wildcards, NXDOMAIN, NODATA for absent types), never per
query. A query then costs a dict lookup plus `wire.patch`.

A question answered from a pool has one entry per variant of the pool's selection, picked per
query (`PoolEntry`), and is recompiled when the pool's health changes (`AnswerTable.refresh`).

Each entry holds, for each EDNS trait (none / OPT / OPT+DO), three forms: the full reply, the
reply without optional additional records, and the TC=1 stub; the smallest that fits the
query's size limit is sent (RFC 2181 §9: dropping additional data needs no TC bit, except glue
a referral cannot do without, RFC 9471).
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace

from dnslib import AAAA, QTYPE, RCODE, A, DNSHeader, DNSQuestion, DNSRecord

from edgedns.authority.catalog import Catalog
from edgedns.authority.zone import Outcome, RRset, Section
from edgedns.dns import names, wire
from edgedns.dns.names import Name
from edgedns.pools.pool import PoolSet, Selection

Forms = tuple[bytes, bytes, bytes]
"""(full, without optional additional, truncated stub)."""
Entry = tuple[Forms, Forms, Forms, str]
"""Forms indexed by wire.NO_EDNS, wire.EDNS, wire.EDNS_DO; then the zone's name (metrics)."""
Key = tuple[bytes, int]

DEFAULT_CACHE = 20_000
_PRECOMPILED_EXTRA = (QTYPE.A, QTYPE.AAAA, QTYPE.ANY)
"""Types compiled for every name even when absent, since clients ask them most."""


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _mix64(x: int) -> int:
    """splitmix64's finalizer: every input bit flips about half the output bits, so scores
    of one client under different members are independent (CRC32, XOR-linear, is not)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class PoolEntry:
    """The entries of a question answered from a pool, one per variant of its selection;
    each query picks one by the pool's policy (see `edgedns.pools.pool.Selection`)."""

    __slots__ = ("entries", "chooser", "weights", "hash_keys", "_turn")

    def __init__(self, entries: list[Entry], selection: Selection) -> None:
        self.entries = entries
        self.chooser = selection.chooser
        self.weights = selection.weights
        self.hash_keys = [_hash64(variant[0].encode()) for variant in selection.variants]
        self._turn = -1

    def pick(self, client: bytes) -> Entry:
        """The entry for a query from `client` (its address or EDNS client subnet, which
        only policy hash looks at)."""
        chooser = self.chooser
        if chooser == "round_robin":
            self._turn = (self._turn + 1) % len(self.entries)
            return self.entries[self._turn]
        if chooser == "random":
            return self.entries[random.randrange(len(self.entries))]
        if chooser == "weighted":
            return self.entries[bisect(self.weights, random.random() * self.weights[-1])]
        # hash: rendezvous hashing keeps each client on one member while it stays healthy,
        # and spreads a failed member's clients evenly over the others.
        seed = _hash64(client)
        scores = [_mix64(seed ^ key) for key in self.hash_keys]
        return self.entries[scores.index(max(scores))]


class AnswerTable:
    """Reply bytes for our zones. Not thread-safe: it lives on the server's event loop."""

    def __init__(
        self, catalog: Catalog, pools: PoolSet | None = None, cache_size: int = DEFAULT_CACHE
    ) -> None:
        self.catalog = catalog
        self.pools = pools if pools is not None else PoolSet(())
        self._static: dict[Key, Entry | PoolEntry] = {}
        self._lazy: OrderedDict[Key, Entry | PoolEntry] = OrderedDict()
        self._cache_size = cache_size
        self._dependents: dict[Name, set[Key]] = {}
        """Pool name → questions whose answers hold that pool's addresses."""
        self.on_change: list[Callable[[], None]] = []
        """Called after `refresh` changed answers (caches of finished replies listen)."""
        for zone in catalog.zones.values():
            for owner, node in zone.nodes.items():
                for qtype in {*node, *_PRECOMPILED_EXTRA}:
                    self._static[(names.to_wire(owner), qtype)] = self._compile(owner, qtype)

    def __len__(self) -> int:
        return len(self._static) + len(self._lazy)

    def lookup(self, qname: bytes, qtype: int) -> Entry | PoolEntry | None:
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

    def refresh(self, pool_names: Iterable[Name]) -> int:
        """Recompile every answer holding one of `pool_names`; returns how many changed."""
        keys = set().union(*(self._dependents.get(n, ()) for n in pool_names))
        for key in keys:
            table = self._static if key in self._static else self._lazy
            if key in table:
                table[key] = self._compile(names.from_wire(key[0]), key[1])
        if keys:
            for listener in self.on_change:
                listener()
        return len(keys)

    def _compile(self, qname: Name, qtype: int) -> Entry | PoolEntry:
        outcome = self.catalog.resolve(qname, qtype)
        zone = self.catalog.zone_for(qname)
        assert outcome is not None and zone is not None
        label = names.to_text(zone.origin)
        pooled = next((s for s in outcome.answer if s.rrset.pool), None)
        if pooled is None:
            return compile_outcome(qname, qtype, outcome, label)
        pool = pooled.rrset
        self._dependents.setdefault(pool.name, set()).add((names.to_wire(qname), qtype))
        selection = self.pools.selection(pool.name, 4 if pool.rtype == QTYPE.A else 6)
        if selection.servfail:
            servfail = Outcome(RCODE.SERVFAIL, authoritative=False)
            return compile_outcome(qname, qtype, servfail, label)
        entries = [
            compile_outcome(qname, qtype, self._with_addresses(outcome, pooled, addresses), label)
            for addresses in selection.variants
        ]
        return entries[0] if len(entries) == 1 else PoolEntry(entries, selection)

    def _with_addresses(self, outcome: Outcome, pooled: Section, addresses: tuple[str, ...]
                        ) -> Outcome:
        """`outcome` with the pool's placeholder RRset filled with `addresses`; no addresses
        make it NODATA (after any CNAMEs leading to the pool)."""
        answer = [s for s in outcome.answer if s is not pooled]
        if not addresses:
            zone = self.catalog.zone_for(pooled.rrset.name)
            assert zone is not None
            return replace(outcome, answer=answer, authority=[zone.negative_soa()],
                           additional=[], optional_authority=False, required_glue=0)
        rdata = A if pooled.rrset.rtype == QTYPE.A else AAAA
        rrset = RRset(pooled.rrset.name, pooled.rrset.rtype, pooled.rrset.ttl,
                      tuple(rdata(a) for a in addresses))
        return replace(outcome, answer=[*answer, Section(pooled.owner, rrset)])


def compile_outcome(qname: Name, qtype: int, outcome: Outcome, zone: str) -> Entry:
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
    forms = [
        (wire.with_opt(full, e), wire.with_opt(reduced, e), wire.with_opt(stub, e))
        for e in (wire.NO_EDNS, wire.EDNS, wire.EDNS_DO)
    ]
    return (*forms, zone)  # type: ignore[return-value]


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
