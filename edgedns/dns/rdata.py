"""Record data in presentation form → wire form, with errors that say what was expected.

A record's data is kept as `Rdata`: a tuple of parts, `bytes` as they go on the wire and the
domain names inside as `Name`s (so replies can compress them, `edgedns.dns.message`). Values
are checked strictly here, once, when the config loads: trailing garbage, out-of-range
numbers and bad addresses are errors naming the expected syntax, never surprises at query
time. This is also the hot loop of loading a big zone, so each type's parser is a few
standard-library calls.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable

from edgedns.dns import names
from edgedns.dns.presentation import PresentationError, brief, shown, unescape

Rdata = "bytes | tuple[bytes | names.Name, ...]"
"""One record's data in wire form: its bytes when it holds no domain name (A, AAAA, TXT,
CAA), else a tuple of parts, bytes and the names inside as `Name`s."""

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


TYPE_CODES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
              "AAAA": 28, "SRV": 33, "CAA": 257}


def parse(rtype: str, values: list[str], origin: names.Name) -> tuple[int, Rdata]:
    """Parse the presentation `values` of a record of type `rtype` (e.g. ``"MX"``).

    Relative names in the value are completed with `origin`. Returns the numeric type and
    the data in wire form; raises `RdataError` naming the expected syntax.
    """
    parser = _PARSERS.get(rtype)
    if parser is None:
        rtype = rtype.upper()
        parser = _PARSERS.get(rtype)
    if parser is None:
        supported = ", ".join(SYNTAX)
        raise RdataError(f"unsupported record type {shown(rtype)} (supported: {supported})")
    try:
        return TYPE_CODES[rtype], parser(values, origin)
    except (RdataError, names.BadName, PresentationError, ValueError, OSError) as exc:
        value = " ".join(values)
        reason = "not a valid address" if isinstance(exc, OSError) else brief(str(exc))
        raise RdataError(f"bad {rtype} value {shown(value)}: {reason}; "
                         f"expected {SYNTAX[rtype]}") from None


def to_wire(data: Rdata) -> bytes:
    """`data` as uncompressed wire bytes."""
    if data.__class__ is bytes:
        return data
    return b"".join(part if part.__class__ is bytes else names.to_wire(part) for part in data)


def soa_minimum(data: Rdata) -> int:
    """The MINIMUM field of SOA data (the negative-caching TTL, RFC 2308)."""
    return struct.unpack_from("!I", data[2], 16)[0]


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


def _a(v: list[str], origin: names.Name) -> Rdata:
    if len(v) != 1:
        _arity(v, 1)
    try:
        return socket.inet_pton(socket.AF_INET, v[0])  # strict: four decimal octets
    except OSError:
        raise RdataError(f"{shown(v[0])} is not an IPv4 address (four decimal octets 0-255, "
                         "no leading zeros)") from None


def _aaaa(v: list[str], origin: names.Name) -> Rdata:
    _arity(v, 1)
    return socket.inet_pton(socket.AF_INET6, v[0])


def _one_name(v: list[str], origin: names.Name) -> Rdata:
    _arity(v, 1)
    return (names.from_text(v[0], origin),)


def _mx(v: list[str], origin: names.Name) -> Rdata:
    _arity(v, 2)
    return (_uint(v[0], 16).to_bytes(2, "big"), names.from_text(v[1], origin))


def _txt(v: list[str], origin: names.Name) -> Rdata:
    if not v:
        raise RdataError("at least one string needed")
    strings = [unescape(s) for s in v]
    for s in strings:
        if len(s) > 255:
            raise RdataError("a TXT string is at most 255 octets; split it into several")
    return b"".join(bytes((len(s),)) + s for s in strings)


def _srv(v: list[str], origin: names.Name) -> Rdata:
    _arity(v, 4)
    fixed = struct.pack("!HHH", _uint(v[0], 16), _uint(v[1], 16), _uint(v[2], 16))
    return (fixed, names.from_text(v[3], origin))


def _soa(v: list[str], origin: names.Name) -> Rdata:
    _arity(v, 7)
    serial = _uint(v[2], 32)
    times = [parse_ttl(t) for t in v[3:]]
    return (names.from_text(v[0], origin), names.from_text(v[1], origin),
            struct.pack("!IIIII", serial, *times))


def _caa(v: list[str], origin: names.Name) -> Rdata:
    _arity(v, 3)
    if not re.fullmatch(r"[A-Za-z0-9]+", v[1]):
        raise RdataError(f"tag {shown(v[1])} must be letters and digits")
    value = unescape(v[2])
    tag = v[1].encode("ascii")
    return bytes((_uint(v[0], 8), len(tag))) + tag + value


_PARSERS: dict[str, Callable[[list[str], names.Name], Rdata]] = {
    "A": _a,
    "AAAA": _aaaa,
    "NS": _one_name,
    "CNAME": _one_name,
    "PTR": _one_name,
    "MX": _mx,
    "TXT": _txt,
    "SRV": _srv,
    "SOA": _soa,
    "CAA": _caa,
}
