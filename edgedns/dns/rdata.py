"""Record data in presentation form → dnslib rdata, with errors that say what was expected.

dnslib's own zone parser accepts trailing garbage and reports bad input as IndexError or
int() failures; every value served by edgedns passes through here instead, so a bad value is
rejected when the config loads with a message naming the expected syntax.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Callable

from dnslib import AAAA, CAA, CNAME, MX, NS, PTR, QTYPE, RD, SOA, SRV, TXT, A
from dnslib.dns import DNSBuffer

from edgedns.dns import names
from edgedns.dns.presentation import PresentationError, Token, brief, shown, unescape


class RdataError(ValueError):
    """A record value that does not parse for its type."""


SYNTAX: dict[str, str] = {
    "A": "<IPv4 address>",
    "AAAA": "<IPv6 address>",
    "NS": "<name server name>",
    "CNAME": "<target name>",
    "PTR": "<target name>",
    "MX": "<preference 0-65535> <exchange name>",
    "TXT": "<text> [<text> ...]",
    "SRV": "<priority> <weight> <port> <target name>",
    "SOA": "<mname> <rname> <serial> <refresh> <retry> <expire> <minimum>",
    "CAA": "<flags 0-255> <tag> <value>",
}
"""The supported types and the value each takes."""

_TTL_PART = re.compile(r"(\d+)([smhdw]?)", re.IGNORECASE)
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_TTL = 2**31 - 1


def parse_ttl(text: str) -> int:
    """A TTL in seconds: ``300``, or with BIND units such as ``1h30m`` or ``1d``."""
    pos = 0
    total = 0
    for match in _TTL_PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _TTL_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(text) or not text:
        raise RdataError(f"{shown(text)} is not a TTL (seconds, or units like 1h30m)")
    if total > MAX_TTL:
        raise RdataError(f"TTL {text} is over {MAX_TTL}")
    return total


def parse(rtype: str, tokens: list[Token], origin: names.Name) -> tuple[int, RD]:
    """Parse the value `tokens` of a record of type `rtype` (e.g. ``"MX"``).

    Relative names in the value are completed with `origin`. Returns the numeric type and
    the dnslib rdata; raises `RdataError` naming the expected syntax.
    """
    rtype = rtype.upper()
    parser = _PARSERS.get(rtype)
    if parser is None:
        supported = ", ".join(SYNTAX)
        raise RdataError(f"unsupported record type {shown(rtype)} (supported: {supported})")
    try:
        return getattr(QTYPE, rtype), parser([t.text for t in tokens], origin)
    except (RdataError, names.BadName, PresentationError, ValueError) as exc:
        value = " ".join(t.text for t in tokens)
        raise RdataError(f"bad {rtype} value {shown(value)}: {brief(str(exc))}; "
                         f"expected {SYNTAX[rtype]}") from None


def _arity(values: list[str], count: int) -> None:
    if len(values) != count:
        raise RdataError(f"{count} field{'s' if count > 1 else ''} needed, {len(values)} given")


def _uint(text: str, bits: int) -> int:
    if not (text.isascii() and text.isdigit()):
        raise RdataError(f"{shown(text)} is not a number")
    value = int(text)
    if value >= 1 << bits:
        raise RdataError(f"{value} is over {(1 << bits) - 1}")
    return value


def _name(text: str, origin: names.Name):
    return names.to_label(names.from_text(text, origin))


def _a(v: list[str], origin: names.Name) -> RD:
    _arity(v, 1)
    return A(str(ipaddress.IPv4Address(v[0])))


def _aaaa(v: list[str], origin: names.Name) -> RD:
    _arity(v, 1)
    return AAAA(str(ipaddress.IPv6Address(v[0])))


def _one_name(cls: type) -> Callable[[list[str], names.Name], RD]:
    def parse_one(v: list[str], origin: names.Name) -> RD:
        _arity(v, 1)
        return cls(_name(v[0], origin))

    return parse_one


def _mx(v: list[str], origin: names.Name) -> RD:
    _arity(v, 2)
    return MX(_name(v[1], origin), _uint(v[0], 16))


def _txt(v: list[str], origin: names.Name) -> RD:
    if not v:
        raise RdataError("at least one string needed")
    strings = [unescape(s) for s in v]
    for s in strings:
        if len(s) > 255:
            raise RdataError("a TXT string is at most 255 octets; split it into several")
    return TXT(strings)


def _srv(v: list[str], origin: names.Name) -> RD:
    _arity(v, 4)
    return SRV(_uint(v[0], 16), _uint(v[1], 16), _uint(v[2], 16), _name(v[3], origin))


def _soa(v: list[str], origin: names.Name) -> RD:
    _arity(v, 7)
    serial = _uint(v[2], 32)
    times = tuple(parse_ttl(t) for t in v[3:])
    return SOA(_name(v[0], origin), _name(v[1], origin), (serial, *times))


def _caa(v: list[str], origin: names.Name) -> RD:
    _arity(v, 3)
    if not re.fullmatch(r"[A-Za-z0-9]+", v[1]):
        raise RdataError(f"tag {v[1]!r} must be letters and digits")
    try:
        value = unescape(v[2]).decode("utf-8")  # dnslib packs the value as UTF-8
    except UnicodeDecodeError:
        raise RdataError(f"value {v[2]!r} is not UTF-8 text") from None
    return CAA(_uint(v[0], 8), v[1], value)


_PARSERS: dict[str, Callable[[list[str], names.Name], RD]] = {
    "A": _a,
    "AAAA": _aaaa,
    "NS": _one_name(NS),
    "CNAME": _one_name(CNAME),
    "PTR": _one_name(PTR),
    "MX": _mx,
    "TXT": _txt,
    "SRV": _srv,
    "SOA": _soa,
    "CAA": _caa,
}


def to_parts(rtype: int, rd: RD) -> tuple[bytes | names.Name, ...]:
    """`rd` in wire form for `edgedns.dns.message`: bytes, with the names it holds as `Name`s
    so replies can compress them."""
    if rtype in (QTYPE.NS, QTYPE.CNAME, QTYPE.PTR):
        return (names.from_label(rd.label),)
    if rtype == QTYPE.MX:
        return (rd.preference.to_bytes(2, "big"), names.from_label(rd.label))
    if rtype == QTYPE.SRV:
        fixed = struct.pack("!HHH", rd.priority, rd.weight, rd.port)
        return (fixed, names.from_label(rd.target))
    if rtype == QTYPE.SOA:
        return (names.from_label(rd.mname), names.from_label(rd.rname),
                struct.pack("!IIIII", *rd.times))
    if rtype in (QTYPE.A, QTYPE.AAAA):
        return (bytes(rd.data),)
    buffer = DNSBuffer()  # TXT, CAA: no names inside; dnslib packs them as served
    rd.pack(buffer)
    return (bytes(buffer.data),)
