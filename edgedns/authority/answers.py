"""Replies for our zones, built when first asked for and kept in a cache bounded in bytes.

A reply is looked up in the zone data (`Catalog.resolve`) and packed (`edgedns.dns.message`)
the first time its (lowercased name, type) is asked, then served from `ReplyCache` until it is
evicted or, for a reply holding a pool's addresses, until that pool's generation moves on: a
health change bumps the generation (O(1)), and the next query for a dependent name rebuilds
it. Nothing is compiled ahead of time and no index grows with the names clients ask.

A question answered from a pool with a per-query choice (round_robin, random, weighted,
hash) has one packed reply per variant of the pool's selection, each packed when first
picked (`PoolReply`).

Each reply comes in three forms (`Packed`): full, without optional data, and the TC=1 stub;
the handler sends the largest that fits the query's size limit.
"""

from __future__ import annotations

import hashlib
import random
import socket
from bisect import bisect
from collections import OrderedDict
from dataclasses import replace

from dnslib import RCODE

from edgedns.authority.catalog import Catalog
from edgedns.authority.zone import EXISTS, NXDOMAIN, Outcome, RRset, Section
from edgedns.dns import names
from edgedns.dns.message import Packed, Record, pack_reply
from edgedns.dns.names import Name
from edgedns.pools.pool import PoolSet, Selection

DEFAULT_MAX_BYTES = 32 << 20
"""What the reply cache may hold, counting reply bytes plus a fixed overhead per entry."""
ENTRY_OVERHEAD = 512
"""Bytes of Python objects around one cached reply: key, entry objects, the reply's bytes
objects, the ordered dict's slot and link (about 500, measured with tracemalloc)."""
_A, _AAAA = 1, 28


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _mix64(x: int) -> int:
    """splitmix64's finalizer: every input bit flips about half the output bits, so scores
    of one client under different members are independent (CRC32, XOR-linear, is not)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


HASH_MEMO = 4_096
"""Clients whose hash pick a pool answer remembers (per selection: it starts afresh when
health changes)."""
HASH_ATTEMPTS = 64
"""Seeds a hash-policy client tries before settling for a fixed healthy member (needed only
when nearly every member is down)."""


def _jump(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping and Veach, 2014): `key` → a bucket in [0, `buckets`)
    in O(log buckets); adding a bucket moves only 1/n of the keys."""
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


class Reply:
    """A reply that is the same for every client: its forms and the zone it came from."""

    __slots__ = ("packed", "zone", "pool", "generation", "shared", "siblings", "size", "chase")

    def __init__(self, packed: Packed, zone: str, pool: Name | None = None,
                 generation: int = 0, shared: bool = False, chase: Name | None = None,
                 siblings: bool = False) -> None:
        self.packed = packed
        self.chase = chase
        """The CNAME chain ends at this name outside our zones (a forwarder may chase it)."""
        self.zone = zone
        """The zone's apex as text, for metrics."""
        self.pool = pool
        """The pool whose addresses (or all-down rule) this reply holds, if any."""
        self.generation = generation
        """That pool's generation when this was built."""
        self.shared = shared
        """Serves every name synthesized like the one asked (see `Answers.lookup`): cheap to
        find again, so not worth remembering by each query's bytes."""
        self.siblings = siblings
        """Shared, and the parent of the name asked is where it landed (its closest
        encloser or the delegation): every absent name under that parent gets this reply,
        which the query path remembers by the query without its first label."""
        self.size = packed.size + ENTRY_OVERHEAD


class Picker:
    """How one query picks a variant of a pool's selection (see `Selection.chooser`), in
    O(1) (round_robin, random), O(log n) (weighted: a bisection; hash: jump consistent
    hashing) whatever the number of members."""

    __slots__ = ("chooser", "weights", "count", "hashed_onto", "starts", "_turn", "_clients")

    def __init__(self, selection: Selection) -> None:
        self.chooser = selection.chooser
        self.weights = selection.weights
        self.count = len(selection.variants)
        self.hashed_onto = selection.hashed_onto
        self.starts = {variant[0]: i for i, variant in enumerate(selection.variants)
                       } if self.chooser == "hash" else {}
        """hash: a healthy member's address → the variant that starts with it."""
        self._turn = -1
        self._clients: dict[bytes, int] = {}
        """hash: picks remembered per client, for clients asking again (cleared when it
        reaches `HASH_MEMO` clients, so spoofed sources cannot grow it)."""

    def pick(self, client: bytes) -> int:
        """The variant's index for a query from `client` (its address or EDNS client subnet,
        which only policy hash looks at)."""
        chooser = self.chooser
        if chooser == "round_robin":
            self._turn = (self._turn + 1) % self.count
            return self._turn
        if chooser == "random":
            return random.randrange(self.count)
        if chooser == "weighted":
            return bisect(self.weights, random.random() * self.weights[-1])
        if chooser == "hash":
            remembered = self._clients.get(client)
            if remembered is not None:
                return remembered
            if len(self._clients) >= HASH_MEMO:
                self._clients.clear()
            picked = self._clients[client] = self._hash_pick(client)
            return picked
        return 0

    def _hash_pick(self, client: bytes) -> int:
        # Each client hashes onto all the members, healthy or not (jump consistent hashing);
        # while its member is down it hashes again with the next seed. So a client stays on
        # its member while it is healthy, and a failed member's clients spread evenly over
        # the others.
        seed = _hash64(client)
        onto = self.hashed_onto
        for attempt in range(HASH_ATTEMPTS):
            start = self.starts.get(onto[_jump(_mix64(seed + attempt), len(onto))])
            if start is not None:
                return start
        return seed % self.count  # nearly every member down: a healthy one, still stable


class PoolReply:
    """The replies to one question answered from a pool with a per-query choice: one per
    variant of the pool's selection, each packed when first picked."""

    __slots__ = ("qname", "qtype", "outcome", "pooled", "soa", "selection", "picker",
                 "variants", "zone", "pool", "generation", "size", "shared_suffix", "shared")
    siblings = False
    """Never: which variant a query gets depends on it (see `Reply.siblings`)."""

    def __init__(self, qname: Name, qtype: int, outcome: Outcome, pooled: Section, soa: Section,
                 selection: Selection, zone: str, pool: Name, generation: int,
                 shared_suffix: int | None) -> None:
        self.qname = qname
        self.qtype = qtype
        self.outcome = outcome
        self.pooled = pooled
        self.soa = soa
        self.selection = selection
        self.picker = Picker(selection)
        self.variants: dict[int, Packed] = {}
        self.zone = zone
        self.pool = pool
        self.generation = generation
        self.size = ENTRY_OVERHEAD
        self.shared_suffix = shared_suffix
        self.shared = shared_suffix is not None

    def pick(self, client: bytes) -> Packed:
        index = self.picker.pick(client)
        packed = self.variants.get(index)
        if packed is None:
            outcome = _with_addresses(self.outcome, self.pooled, self.selection.variants[index],
                                      self.soa)
            packed = self.variants[index] = _pack(self.qname, self.qtype, outcome,
                                                  self.shared_suffix)
            self.size += packed.size
        return packed


Entry = Reply | PoolReply


class ReplyCache:
    """Replies by (lowercased wire-form name, type), or by the shape of the names they
    serve (see `Answers.lookup`): LRU, bounded by `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple, tuple[Entry, int]] = OrderedDict()
        """Key → (entry, the size it was charged at)."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        entry, charged = found
        if entry.__class__ is PoolReply and entry.size != charged:  # it packed a variant
            self.bytes += entry.size - charged
            self._entries[key] = (entry, entry.size)
            self._evict()
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, entry: Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (entry, entry.size)
        self.bytes += entry.size
        self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            _, (_, charged) = self._entries.popitem(last=False)
            self.bytes -= charged


class Answers:
    """Replies for our zones. Not thread-safe: it lives on the server's event loop."""

    def __init__(self, catalog: Catalog, pools: PoolSet | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.catalog = catalog
        self.pools = pools if pools is not None else PoolSet(())
        self.cache = ReplyCache(max_bytes)

    def lookup(self, qname: bytes, qtype: int) -> Entry | None:
        """The reply for a lowercased wire-form name, or None when no zone of ours holds it.

        Names that exist are cached by name. A name that does not exist lands on an anchor
        (`Zone.locate`): a wildcard's closest encloser, a delegation, or NXDOMAIN in its
        zone; every such name of the same wire length gets the same reply bytes but for the
        question, so one reply per (anchor, type, length, whether the name's parent is the
        anchor) serves them all, and a flood of random names costs one lookup in the zone
        each, never a cache entry each."""
        key: tuple = (qname, qtype)
        entry = self.cache.get(key)
        if entry is not None and (entry.pool is None or self.is_current(entry)):
            return entry
        name = names.from_wire(qname)
        zone = self.catalog.zone_for(name)
        if zone is None:
            return None
        kind, anchor = zone.locate(name, qtype)
        shared_suffix = None
        siblings = False
        if kind != EXISTS:
            siblings = len(anchor) + 1 == len(name)
            if kind == NXDOMAIN:
                anchor = zone.origin  # the reply holds nothing of the closest encloser
            key = (kind, anchor, qtype, len(qname), siblings)
            shared_suffix = len(anchor)
            entry = self.cache.get(key)
            if entry is not None and (entry.pool is None or self.is_current(entry)):
                return entry
        entry = self._build(name, qtype, shared_suffix, siblings)
        self.cache.put(key, entry)
        return entry

    def is_current(self, entry: Entry) -> bool:
        """Whether `entry` still says what the zones and pools say now."""
        return entry.pool is None or self.pools.generation[entry.pool] == entry.generation

    def _build(self, qname: Name, qtype: int, shared_suffix: int | None,
               siblings: bool = False) -> Entry:
        outcome = self.catalog.resolve(qname, qtype)
        zone = self.catalog.zone_for(qname)
        assert outcome is not None and zone is not None
        label = names.to_text(zone.origin)
        pooled = next((s for s in outcome.answer if s.rrset.pool), None)
        shared = shared_suffix is not None
        if pooled is None:
            return Reply(_pack(qname, qtype, outcome, shared_suffix), label, shared=shared,
                         chase=outcome.external_target, siblings=siblings)
        pool = pooled.rrset.name
        generation = self.pools.generation[pool]
        selection = self.pools.selection(pool, 4 if pooled.rrset.rtype == _A else 6)
        if selection.servfail:
            servfail = Outcome(RCODE.SERVFAIL, authoritative=False)
            return Reply(_pack(qname, qtype, servfail, shared_suffix), label, pool, generation,
                         shared, siblings=siblings)
        pool_zone = self.catalog.zone_for(pool)
        assert pool_zone is not None
        soa = pool_zone.negative_soa
        if len(selection.variants) == 1:
            outcome = _with_addresses(outcome, pooled, selection.variants[0], soa)
            return Reply(_pack(qname, qtype, outcome, shared_suffix), label, pool, generation,
                         shared, siblings=siblings)
        return PoolReply(qname, qtype, outcome, pooled, soa, selection, label, pool, generation,
                         shared_suffix)


def _with_addresses(outcome: Outcome, pooled: Section, addresses: tuple[str, ...],
                    soa: Section) -> Outcome:
    """`outcome` with the pool's placeholder RRset filled with `addresses`; no addresses make
    it NODATA (after any CNAMEs leading to the pool), with `soa`, the pool's zone's."""
    answer = [s for s in outcome.answer if s is not pooled]
    rrset = pooled.rrset
    if not addresses:
        return replace(outcome, answer=answer, authority=[soa],
                       additional=[], optional_authority=False, required_glue=0)
    family = socket.AF_INET if rrset.rtype == _A else socket.AF_INET6
    wire = tuple(socket.inet_pton(family, a) for a in addresses)
    filled = RRset(rrset.name, rrset.rtype, rrset.ttl, wire)
    return replace(outcome, answer=[*answer, Section(pooled.owner, filled)])


def _pack(qname: Name, qtype: int, outcome: Outcome, shared_suffix: int | None) -> Packed:
    return pack_reply(
        qname, qtype,
        rcode=outcome.rcode,
        authoritative=outcome.authoritative,
        answer=_records(outcome.answer),
        authority=_records(outcome.authority),
        additional=_records(outcome.additional),
        optional_authority=outcome.optional_authority,
        required_additional=outcome.required_glue,
        shared_suffix=shared_suffix,
    )


def _records(sections: list[Section]) -> list[Record]:
    return [(s.owner, s.rrset.rtype, s.rrset.ttl, s.rrset.rdatas) for s in sections]

