"""Zone data and the RFC 1034 §4.3.2 lookup, with RFC 4592 wildcards and RFC 2308 negatives.

A `Zone` is immutable once built: `Zone.build` validates the records (conflicts are errors at
load time, never surprises at query time) and `Zone.find` answers one name and type from this
zone's data alone. Following CNAMEs across zones is the catalog's job (`edgedns.authority.catalog`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from dnslib import QTYPE, RCODE

from edgedns.dns import names, rdata
from edgedns.dns.names import Name
from edgedns.dns.rdata import Rdata
from edgedns.pools.pool import PoolSpec

ANY = QTYPE.ANY
CNAME = QTYPE.CNAME
NS = QTYPE.NS
SOA = QTYPE.SOA
DS = QTYPE.DS
ADDRESS_TYPES = (QTYPE.A, QTYPE.AAAA)
# Types whose targets get their addresses added to the additional section (RFC 1035 §3.3),
# and where the target sits in their data.
_TARGET_AT = {QTYPE.NS: 0, QTYPE.MX: 1, QTYPE.SRV: 1}
EXISTS, REFERRAL, WILDCARD, NXDOMAIN = range(4)
"""Where a name lands in a zone (`Zone.locate`)."""
# RFC 8482: a node answers ANY with one RRset; these are preferred, in order (the SOA only
# exists at the apex), else the lowest type code.
_ANY_PREFERENCE = (QTYPE.SOA, QTYPE.CNAME, QTYPE.A, QTYPE.AAAA)
_PLAIN = frozenset((QTYPE.CNAME, QTYPE.SOA, QTYPE.NS))
"""A node holding one type, none of these, outside any delegation, cannot conflict."""


class ZoneError(ValueError):
    """Conflicting or misplaced zone data; `where` names the offending record's source."""

    def __init__(self, message: str, where: str | int) -> None:
        super().__init__(message)
        self.where = where
        """A key path or ``file:line``; a bare line number inside `Zone.build`."""


class Record(NamedTuple):
    """One resource record as loaded, with `where` it came from: its key path in the YAML
    file, or its line in a master file (`Zone.build` is told the file's name)."""

    owner: Name
    rtype: int
    ttl: int
    rdata: Rdata
    where: str | int


class RRset(NamedTuple):
    name: Name
    rtype: int
    ttl: int
    rdatas: tuple[Rdata, ...]
    pool: bool = False
    """A pool's A/AAAA: `rdatas` is empty and the addresses come from the pool's current
    selection when replies are built (`edgedns.authority.answers`)."""


Node = tuple[RRset, ...]
"""The RRsets at one owner name (one per type; a handful at most)."""


def rrset_in(node: Node, rtype: int) -> RRset | None:
    for rrset in node:
        if rrset.rtype == rtype:
            return rrset
    return None


class Section(NamedTuple):
    """An RRset as it appears in a response; `owner` differs from the RRset's for wildcards."""

    owner: Name
    rrset: RRset


@dataclass(slots=True)
class Outcome:
    """What one zone says about one name and type."""

    rcode: int = RCODE.NOERROR
    authoritative: bool = True
    answer: list[Section] = field(default_factory=list)
    authority: list[Section] = field(default_factory=list)
    additional: list[Section] = field(default_factory=list)
    cname_target: Name | None = None
    """Set when the answer ends in a CNAME whose target the catalog should chase."""
    external_target: Name | None = None
    """Set when the chain ends in a CNAME to a name outside every served zone: a forwarder
    may chase it (`QueryHandler`)."""
    required_glue: int = 0
    """How many of the first `additional` sections a referral cannot do without (RFC 9471)."""
    optional_authority: bool = False
    """The authority section is informational (the zone's NS beside a positive answer) and is
    left out, without setting TC, when the reply would not fit (RFC 2181 §9)."""


@dataclass(frozen=True)
class Zone:
    origin: Name
    nodes: dict[Name, Node]
    empty_non_terminals: frozenset[Name]
    cuts: frozenset[Name]
    """Delegation points: names below the apex that own NS records."""
    counts: dict[int, int]
    """Records per type (pools' placeholders not counted), for summaries and /status."""

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    @property
    def soa(self) -> RRset:
        soa = rrset_in(self.nodes[self.origin], SOA)
        assert soa is not None
        return soa

    def get(self, owner: Name, rtype: int) -> RRset | None:
        """The RRset of `rtype` at `owner`, if the zone has one."""
        node = self.nodes.get(owner)
        return rrset_in(node, rtype) if node is not None else None

    @classmethod
    def build(
        cls, origin: Name, records: Iterable[Record], pools: Iterable[PoolSpec] = (),
        source: str | None = None,
    ) -> Zone:
        """Validate `records` and `pools` and index them. Raises `ZoneError` on the first
        conflict; a pool's `where` is its config key path, a record's line number becomes
        ``source:line``. `records` may be an iterator: they are consumed once, not kept."""
        try:
            return cls._build(origin, records, pools, source)
        except ZoneError as exc:
            exc.where = _place(exc.where, source)
            raise

    @classmethod
    def _build(cls, origin: Name, records: Iterable[Record], pools: Iterable[PoolSpec],
               source: str | None) -> Zone:
        # An owner with one record (most of a big zone) keeps just that record until built.
        grouped: dict[Name, Record | dict[int, list[Record]]] = {}
        for rec in records:
            owner = rec.owner
            if owner[len(owner) - len(origin):] != origin:
                raise ZoneError(
                    f"{names.to_text(owner)} is outside the zone {names.to_text(origin)}",
                    rec.where,
                )
            found = grouped.get(owner)
            if found is None:
                grouped[owner] = rec
                continue
            if found.__class__ is Record:
                found = grouped[owner] = {found.rtype: [found]}
            same = found.setdefault(rec.rtype, [])
            for prior in same:
                if prior.rdata == rec.rdata:
                    raise ZoneError(f"duplicate record (first at {_place(prior.where, source)})",
                                    rec.where)
                if prior.ttl != rec.ttl:
                    raise ZoneError(
                        f"TTL {rec.ttl} differs from {prior.ttl} of the same RRset at "
                        f"{_place(prior.where, source)} (RFC 2181 §5.2)",
                        rec.where,
                    )
            same.append(rec)
        _check_apex(origin, _by_type(grouped.get(origin)))
        cuts = frozenset(n for n, found in grouped.items()
                         if n != origin and NS in _by_type(found))
        pools = list(pools)
        for pool in pools:
            _check_pool(pool, origin, _by_type(grouped.get(pool.name)), cuts, source)
        nodes: dict[Name, Node] = {}
        singles: dict[int, int] = {}  # owners with one record, by type
        counts: dict[int, int] = {}  # the other records, by type
        new = tuple.__new__  # a named tuple without its keyword-handling __new__: cheaper
        # Owners leave `grouped` as their node is built, so the records are freed as we go.
        while grouped:
            owner, found = grouped.popitem()
            if found.__class__ is Record:
                rtype = found.rtype
                if cuts or rtype in _PLAIN:
                    _check_node(owner, {rtype: [found]}, origin, cuts)
                nodes[owner] = (new(RRset, (owner, rtype, found.ttl, (found.rdata,), False)),)
                singles[rtype] = singles.get(rtype, 0) + 1
                continue
            if cuts or len(found) > 1 or not _PLAIN.isdisjoint(found):
                _check_node(owner, found, origin, cuts)
            nodes[owner] = tuple(
                [new(RRset, (owner, rtype, recs[0].ttl, tuple([r.rdata for r in recs]), False))
                 for rtype, recs in found.items()]
            )
            for rtype, recs in found.items():
                counts[rtype] = counts.get(rtype, 0) + len(recs)
        for rtype, n in singles.items():
            counts[rtype] = counts.get(rtype, 0) + n
        for pool in pools:
            node = nodes.get(pool.name, ())
            nodes[pool.name] = node + tuple(
                RRset(pool.name, QTYPE.A if version == 4 else QTYPE.AAAA, pool.ttl, (),
                      pool=True)
                for version in sorted(pool.families()))
        depth = len(origin) + 1
        ents = {
            owner[i:]
            for owner in nodes if len(owner) > depth
            for i in range(1, len(owner) - len(origin))
            if owner[i:] not in nodes
        }
        return cls(origin, nodes, frozenset(ents), cuts, counts)

    @cached_property
    def negative_soa(self) -> Section:
        """The SOA for a negative answer, TTL = min(SOA TTL, SOA minimum) (RFC 2308 §3)."""
        soa = self.soa
        ttl = min(soa.ttl, rdata.soa_minimum(soa.rdatas[0]))
        return Section(self.origin, RRset(self.origin, SOA, ttl, soa.rdatas))

    @cached_property
    def apex_ns(self) -> RRset:
        ns = self.get(self.origin, NS)
        assert ns is not None
        return ns

    def locate(self, qname: Name, qtype: int) -> tuple[int, Name]:
        """Where `qname` (at or below the origin) lands, as (kind, anchor): (EXISTS, qname)
        for a node or empty non-terminal; (REFERRAL, the cut) at or below a delegation;
        (WILDCARD, the closest encloser) when its wildcard answers; else (NXDOMAIN, the
        closest encloser).

        Every name landing on the same REFERRAL or WILDCARD anchor, or NXDOMAIN in this zone,
        gets the same reply but for the name itself: RFC 1034 §4.3.2 synthesizes it from
        the anchor's data alone."""
        cuts = self.cuts
        if cuts:
            for depth in range(len(self.origin) + 1, len(qname) + 1):
                name = qname[-depth:]
                if name in cuts and not (name == qname and qtype == DS):
                    return REFERRAL, name
        nodes = self.nodes
        ents = self.empty_non_terminals
        if qname in nodes or qname in ents:
            return EXISTS, qname
        encloser = qname[1:]
        while encloser not in nodes and encloser not in ents:
            encloser = encloser[1:]
        if (b"*", *encloser) in nodes:
            return WILDCARD, encloser
        return NXDOMAIN, encloser

    def find(self, qname: Name, qtype: int) -> Outcome:
        """Answer `qname` (at or below the origin) and `qtype` from this zone's data."""
        kind, anchor = self.locate(qname, qtype)
        if kind == REFERRAL:
            return self._referral(anchor)
        if kind == WILDCARD:
            return self._from_node(qname, self.nodes[(b"*", *anchor)], qtype)
        if kind == NXDOMAIN:
            return Outcome(rcode=RCODE.NXDOMAIN, authority=[self.negative_soa])
        node = self.nodes.get(qname)
        if node is None:  # an empty non-terminal
            return Outcome(authority=[self.negative_soa])
        return self._from_node(qname, node, qtype)

    def _from_node(self, owner: Name, node: Node, qtype: int) -> Outcome:
        if qtype == ANY:
            rrset = next((r for t in _ANY_PREFERENCE for r in node if r.rtype == t),
                         min(node, key=lambda r: r.rtype))
            return Outcome(answer=[Section(owner, rrset)])
        rrset = rrset_in(node, qtype)
        if rrset is not None:
            return self._positive(Section(owner, rrset))
        cname = rrset_in(node, CNAME)
        if cname is not None:
            target = cname.rdatas[0][0]
            return Outcome(answer=[Section(owner, cname)], cname_target=target)
        return Outcome(authority=[self.negative_soa])

    def _positive(self, answer: Section) -> Outcome:
        """An answer with the zone's NS in authority and the addresses of every name the
        answer and the NS records point at in additional, as classic authoritative servers
        (NSD, BIND without minimal-responses) give it."""
        ns = self.apex_ns
        out = Outcome(answer=[answer])
        targets = [answer.rrset]
        if answer.rrset is not ns:
            out.authority = [Section(self.origin, ns)]
            out.optional_authority = True
            targets.append(ns)
        shown = {(answer.owner, answer.rrset.rtype)}
        for rrset in targets:
            for section in self._addresses_for_targets(rrset):
                if (section.owner, section.rrset.rtype) not in shown:
                    shown.add((section.owner, section.rrset.rtype))
                    out.additional.append(section)
        return out

    def _referral(self, cut: Name) -> Outcome:
        ns = self.get(cut, NS)
        assert ns is not None
        glue = self._addresses_for_targets(ns)
        required = sum(1 for s in glue if names.is_subdomain(s.owner, cut))
        glue.sort(key=lambda s: not names.is_subdomain(s.owner, cut))
        return Outcome(
            authoritative=False,
            authority=[Section(cut, ns)],
            additional=glue,
            required_glue=required,
        )

    def _addresses_for_targets(self, rrset: RRset) -> list[Section]:
        at = _TARGET_AT.get(rrset.rtype)
        if at is None:
            return []
        out: list[Section] = []
        seen: set[Name] = set()
        for rd in rrset.rdatas:
            target = rd[at]
            if target in seen or not names.is_subdomain(target, self.origin):
                continue
            seen.add(target)
            node = self.nodes.get(target, ())
            out.extend(Section(target, rrset) for t in ADDRESS_TYPES for rrset in node
                       if rrset.rtype == t and not rrset.pool)
        return out


def _check_pool(pool: PoolSpec, origin: Name, by_type: dict[int, list[Record]],
                cuts: frozenset, source: str | None) -> None:
    shown = names.to_text(pool.name)
    where = f"pool {shown}"
    if not names.is_subdomain(pool.name, origin):
        raise ZoneError(f"pool {shown} is outside the zone {names.to_text(origin)}", where)
    clash = [t for t in (QTYPE.A, QTYPE.AAAA, CNAME) if t in by_type]
    if clash:
        record = by_type[clash[0]][0]
        raise ZoneError(
            f"pool {shown} clashes with the {QTYPE.get(clash[0])} record at "
            f"{_place(record.where, source)}; a pool's name gets its A/AAAA from the pool alone",
            where,
        )
    below = [pool.name[i:] for i in range(len(pool.name) - len(origin))
             if pool.name[i:] in cuts]
    if below:
        raise ZoneError(f"pool {shown} is at or below the delegation at "
                        f"{names.to_text(below[0])}", where)


def _by_type(found: Record | dict[int, list[Record]] | None) -> dict[int, list[Record]]:
    if found is None:
        return {}
    return {found.rtype: [found]} if found.__class__ is Record else found


def _place(where: str | int, source: str | None) -> str:
    return f"{source}:{where}" if isinstance(where, int) else where


def _check_apex(origin: Name, apex: dict[int, list[Record]]) -> None:
    shown = names.to_text(origin)
    if SOA not in apex:
        raise ZoneError(f"zone {shown} has no SOA record at its apex", shown)
    if len(apex[SOA]) > 1:
        raise ZoneError(f"zone {shown} has more than one SOA record", apex[SOA][1].where)
    if NS not in apex:
        raise ZoneError(f"zone {shown} has no NS records at its apex", apex[SOA][0].where)


def _check_node(
    owner: Name, by_type: dict[int, list[Record]], origin: Name, cuts: frozenset[Name]
) -> None:
    text = names.to_text  # names are written out only for an error
    if CNAME in by_type:
        cname = by_type[CNAME]
        if len(cname) > 1:
            raise ZoneError(f"{text(owner)} has more than one CNAME", cname[1].where)
        others = [QTYPE.get(t) for t in by_type if t != CNAME]
        if others:
            raise ZoneError(f"CNAME at {text(owner)} cannot coexist with other data "
                            f"(found {', '.join(others)})", cname[0].where)
    if SOA in by_type and owner != origin:
        raise ZoneError(f"SOA at {text(owner)} is not at the zone apex", by_type[SOA][0].where)
    if owner[:1] == (b"*",) and NS in by_type:
        raise ZoneError(f"wildcard {text(owner)} cannot own NS records (RFC 4592 §4.2)",
                        by_type[NS][0].where)
    if not cuts:
        return
    below = [owner[i:] for i in range(1, len(owner) - len(origin)) if owner[i:] in cuts]
    if below:
        wrong = [t for t in by_type if t not in ADDRESS_TYPES]
        if wrong:
            raise ZoneError(f"{text(owner)} is below the delegation at {text(below[0])}; only "
                            f"A/AAAA glue may live there (found {QTYPE.get(wrong[0])})",
                            by_type[wrong[0]][0].where)
    elif owner in cuts:
        wrong = [t for t in by_type if t not in (NS, DS, *ADDRESS_TYPES)]
        if wrong:
            raise ZoneError(f"{text(owner)} is a delegation point; it may hold only NS, DS and "
                            f"glue (found {QTYPE.get(wrong[0])})", by_type[wrong[0]][0].where)
