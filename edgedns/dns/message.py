"""Packing replies: sections of records → message bytes, with RFC 1035 §4.1.4 name compression.

Record data arrives already in wire form, as a tuple of parts: `bytes` copied as they are and
`Name`s written (compressed for the RFC 1035 types that allow it, RFC 3597 §4). This keeps
packing to a few dict lookups and byte appends per record, cheap enough to build a reply when
it is first asked for rather than ahead of time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgedns.dns import names
from edgedns.dns.names import Name
from edgedns.dns.rdata import Rdata

HEADER = 12
Record = tuple[Name, int, int, tuple[Rdata, ...]]
"""(owner, type, TTL, the RRset's rdatas): one RRset as it appears in a section."""

COMPRESSIBLE = frozenset((2, 5, 6, 12, 15))
"""NS, CNAME, SOA, PTR, MX: the types whose rdata names may be compressed (RFC 3597 §4)."""
_MAX_POINTER = 0x3FFF
_QR, _AA, _TC = 0x80, 0x04, 0x02
_RR_FIXED = struct.Struct("!HHIH")


@dataclass(frozen=True, slots=True)
class Packed:
    """One reply in its three sizes, none carrying an OPT record (added per query)."""

    full: bytes
    reduced: bytes
    """Without the optional data (informational authority, additional addresses a referral
    can do without): dropping it needs no TC bit (RFC 2181 §9, RFC 9471)."""
    stub: bytes
    """Header and question only, with TC set: 'retry over TCP' (RFC 7766)."""

    @property
    def size(self) -> int:
        """Bytes held, for caches bounded in bytes."""
        extra = 0 if self.reduced is self.full else len(self.reduced)
        return len(self.full) + extra + len(self.stub)


def pack_reply(
    qname: Name,
    qtype: int,
    *,
    rcode: int = 0,
    authoritative: bool = True,
    answer: list[Record],
    authority: list[Record],
    additional: list[Record],
    optional_authority: bool = False,
    required_additional: int = 0,
    shared_suffix: int | None = None,
) -> Packed:
    """The reply to (`qname`, `qtype`, IN) with ID 0 and RD clear (patched per query).

    `optional_authority` marks the authority section informational, and only the first
    `required_additional` additional RRsets are needed; the rest make up the `full` form only.

    `shared_suffix` makes the reply serve every name of `qname`'s wire length that ends in
    its last `shared_suffix` labels (names synthesized from one wildcard, NXDOMAIN in one
    zone): compression then points only at the whole question name and at those labels,
    which sit at the same offsets in all of them, so copying another such name over the
    question (`wire.patch`) leaves a correct reply.
    """
    out = bytearray(HEADER)
    table: dict[Name, int] = {}
    if shared_suffix is None:
        _name(out, qname, table)
    else:
        table[qname] = HEADER
        offset = HEADER
        for i, label in enumerate(qname):
            if i >= len(qname) - shared_suffix:
                table[qname[i:]] = offset
            offset += len(label) + 1
        out += names.to_wire(qname)
    out += struct.pack("!HH", qtype, 1)
    question_end = len(out)
    counts = []
    for section in (answer, authority, additional):
        counts.append(sum(len(rdatas) for _, _, _, rdatas in section))
    flags = bytes((_QR | (_AA if authoritative else 0), rcode & 0x0F))
    for owner, rtype, ttl, rdatas in answer:
        _rrset(out, owner, rtype, ttl, rdatas, table)
    answer_end = len(out)
    for owner, rtype, ttl, rdatas in authority:
        _rrset(out, owner, rtype, ttl, rdatas, table)
    authority_end = len(out)
    required_end = authority_end
    for i, (owner, rtype, ttl, rdatas) in enumerate(additional):
        _rrset(out, owner, rtype, ttl, rdatas, table)
        if i < required_additional:
            required_end = len(out)
    out[:HEADER] = b"\x00\x00" + flags + struct.pack("!HHHH", 1, *counts)
    full = bytes(out)

    kept_additional = sum(len(r[3]) for r in additional[:required_additional])
    if optional_authority and authority:
        if kept_additional:
            raise ValueError("optional authority with required additional data")
        reduced_counts = (counts[0], 0, 0)
        reduced_end = answer_end
    else:
        reduced_counts = (counts[0], counts[1], kept_additional)
        reduced_end = required_end
    if reduced_counts == tuple(counts):
        reduced = full
    else:
        reduced = full[:2] + flags + struct.pack("!HHHH", 1, *reduced_counts) + full[
            HEADER:reduced_end]
    stub = full[:2] + bytes((flags[0] | _TC, flags[1])) + b"\x00\x01" + bytes(6) + full[
        HEADER:question_end]
    return Packed(full, reduced, stub)


def _rrset(out: bytearray, owner: Name, rtype: int, ttl: int,
           rdatas: tuple[Rdata, ...], table: dict[Name, int]) -> None:
    compress = rtype in COMPRESSIBLE
    for parts in rdatas:
        _name(out, owner, table)
        if parts.__class__ is bytes:  # data without names: its length is known
            out += _RR_FIXED.pack(rtype, 1, ttl, len(parts))
            out += parts
            continue
        fixed = len(out)
        out += _RR_FIXED.pack(rtype, 1, ttl, 0)
        start = len(out)
        for part in parts:
            if part.__class__ is bytes:
                out += part
            elif compress:
                _name(out, part, table)
            else:
                out += names.to_wire(part)
        struct.pack_into("!H", out, fixed + 8, len(out) - start)


def _name(out: bytearray, name: Name, table: dict[Name, int]) -> None:
    """Append `name`, ending in a pointer to the longest suffix already written."""
    for i in range(len(name)):
        suffix = name[i:]
        pointer = table.get(suffix)
        if pointer is not None:
            out += (0xC000 | pointer).to_bytes(2, "big")
            return
        if len(out) <= _MAX_POINTER:
            table[suffix] = len(out)
        label = name[i]
        out.append(len(label))
        out += label
    out.append(0)
