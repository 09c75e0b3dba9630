"""Domain names as tuples of lowercase label bytes, and their conversions.

A `Name` is ordered like the wire format, leftmost label first: ``www.site.lan.`` is
``(b"www", b"site", b"lan")`` and the root is ``()``. Every name held by edgedns is
lowercased, so names compare and hash the DNS way (RFC 4343) with plain tuple equality.
"""

from __future__ import annotations

from dnslib import DNSLabel

from edgedns.dns.presentation import shown

Name = tuple[bytes, ...]

ROOT: Name = ()
MAX_LABEL = 63
MAX_WIRE = 255


class BadName(ValueError):
    """A name that cannot exist in the DNS (empty or oversized label, too long)."""


def from_text(text: str, origin: Name | None = None) -> Name:
    """Parse presentation text into a Name.

    ``@`` is the origin; a name without a trailing dot is relative to `origin`
    (absolute when `origin` is None). Raises `BadName` for empty labels, labels over
    63 octets, names over 255 octets on the wire, non-ASCII text (use punycode) and
    backslash escapes (not supported).
    """
    if text == "@":
        if origin is None:
            raise BadName("'@' needs an origin")
        return origin
    if not text.isascii():
        raise BadName(f"{shown(text)} is not ASCII (write internationalised names in punycode)")
    if "\\" in text:
        raise BadName(f"{shown(text)}: escapes in names are not supported")
    if text == ".":
        return ()
    absolute = text.endswith(".")
    raw = (text[:-1] if absolute else text).lower().encode()
    labels: Name = tuple(raw.split(b"."))
    if b"" in labels:
        raise BadName(f"{shown(text)} has an empty label")
    if not absolute and origin is not None:
        labels += origin
    # The common case, checked cheaply: no label near 63 octets and a short name.
    if len(raw) > MAX_LABEL or len(labels) + sum(map(len, labels)) >= MAX_WIRE:
        check(labels, text)
    return labels


def check(name: Name, text: str) -> None:
    """Raise `BadName` unless `name` fits the RFC 1035 size limits."""
    for label in name:
        if len(label) > MAX_LABEL:
            raise BadName(f"{shown(text)} has a label longer than {MAX_LABEL} octets")
    if wire_length(name) > MAX_WIRE:
        raise BadName(f"{shown(text)} is longer than {MAX_WIRE} octets on the wire")


def wire_length(name: Name) -> int:
    return sum(len(label) + 1 for label in name) + 1


def to_wire(name: Name) -> bytes:
    """Uncompressed wire form, e.g. ``b"\\x03www\\x04site\\x03lan\\x00"``."""
    return b"".join(bytes((len(label),)) + label for label in name) + b"\x00"


def from_wire(wire: bytes) -> Name:
    """Inverse of `to_wire` for an uncompressed, already validated name."""
    labels = []
    append = labels.append
    pos = 0
    length = wire[0]
    while length:
        end = pos + 1 + length
        append(wire[pos + 1 : end])
        pos = end
        length = wire[pos]
    return tuple(labels)


def to_text(name: Name) -> str:
    return ".".join(label.decode("ascii", "backslashreplace") for label in name) + "."


def to_label(name: Name) -> DNSLabel:
    """The dnslib form, for building records."""
    return DNSLabel(list(name))


def is_subdomain(name: Name, parent: Name) -> bool:
    """True when `name` is `parent` or below it."""
    return not parent or name[-len(parent) :] == parent
