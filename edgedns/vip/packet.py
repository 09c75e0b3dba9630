"""VRRP advertisements on the wire: VRRPv3 (RFC 5798 §5, RFC 9568) and VRRPv2 (RFC 3768 §5).

Only the advertisement type exists. VRRPv3's checksum covers a pseudo-header (source,
destination, protocol 112, length), as for UDP; VRRPv2's covers the message alone. Some
VRRPv3 speakers (keepalived's ``v3_checksum_as_v2``, older routers) leave the IPv4
pseudo-header out, so `decode` accepts either form and says which it saw; `encode` writes
the RFC form. For IPv6 the kernel computes and checks the checksum (``IPV6_CHECKSUM``), so
neither function is asked to.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from edgedns.pools.health.echo import checksum

PROTOCOL = 112
"""IP protocol number of VRRP."""
GROUP_V4 = "224.0.0.18"
GROUP_V6 = "ff02::12"
TTL = 255
"""Adverts are sent with TTL / hop limit 255 and any other is dropped (RFC 5798 §7.1): a
forged advert cannot come from beyond the link."""
_ADVERT = 1
AUTH_NONE = 0
AUTH_PASS = 1
"""VRRPv2 simple text password (RFC 2338 §5.3.6.1): eight bytes, zero-padded."""
_HEADER = struct.Struct("!BBBBHH")


class BadAdvert(ValueError):
    """Not a VRRP advertisement we can take: the reason is the message."""


@dataclass(frozen=True, slots=True)
class Advert:
    version: int
    """3, or 2 for VRRPv2 peers."""
    vrid: int
    priority: int
    """0: the master is leaving; 255: the address owner."""
    interval: float
    """Seconds between adverts (centiseconds on the wire for v3, whole seconds for v2)."""
    addresses: tuple[str, ...]
    auth_pass: bytes = b""
    """VRRPv2 only: the password, without its zero padding."""
    checksum_as_v2: bool = False
    """Received VRRPv3 whose checksum leaves the IPv4 pseudo-header out."""


def _pseudo_header(source: str, destination: str, length: int) -> bytes:
    return (ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address(destination).packed
            + struct.pack("!BBH", 0, PROTOCOL, length))


def encode(advert: Advert, source: str | None = None, destination: str | None = None) -> bytes:
    """The wire form of `advert`. IPv4 VRRPv3 needs the `source` and `destination` its IP
    header will carry, for the checksum; IPv6 leaves the checksum to the kernel."""
    addresses = b"".join(ipaddress.ip_address(a).packed for a in advert.addresses)
    if advert.version == 2:
        auth_type = AUTH_PASS if advert.auth_pass else AUTH_NONE
        head = bytes((0x20 | _ADVERT, advert.vrid, advert.priority, len(advert.addresses),
                      auth_type, max(1, min(255, round(advert.interval)))))
        body = head + b"\0\0" + addresses + advert.auth_pass.ljust(8, b"\0")[:8]
        return body[:6] + struct.pack("!H", checksum(body)) + body[8:]
    centis = max(1, min(0xFFF, round(advert.interval * 100)))
    body = _HEADER.pack(0x30 | _ADVERT, advert.vrid, advert.priority,
                        len(advert.addresses), centis, 0) + addresses
    if ":" in (advert.addresses[0] if advert.addresses else ""):
        return body  # IPv6: the kernel fills the checksum in (IPV6_CHECKSUM)
    if source is None or destination is None:
        raise ValueError("IPv4 VRRPv3 needs the source and destination for its checksum")
    value = checksum(_pseudo_header(source, destination, len(body)) + body)
    return body[:6] + struct.pack("!H", value) + body[8:]


def decode(data: bytes, family: int, source: str | None = None,
           destination: str | None = None) -> Advert:
    """An advert from the VRRP message `data` (the IP header already taken off). `family`
    is 4 or 6; IPv4 needs `source` and `destination` to check a VRRPv3 checksum. Raises
    `BadAdvert`."""
    if len(data) < 8:
        raise BadAdvert(f"{len(data)} bytes is too short")
    first, vrid, priority, count, word, _ = _HEADER.unpack_from(data)
    version, kind = first >> 4, first & 0x0F
    if kind != _ADVERT:
        raise BadAdvert(f"type {kind} is not an advertisement")
    size = 4 if family == 4 else 16
    if version == 3:
        end = 8 + count * size
        if len(data) < end:
            raise BadAdvert(f"{count} addresses do not fit in {len(data)} bytes")
        as_v2 = False
        if family == 4:
            if source is None or destination is None:
                raise ValueError("IPv4 VRRPv3 needs the source and destination")
            if checksum(_pseudo_header(source, destination, len(data[:end])) + data[:end]):
                if checksum(data[:end]):
                    raise BadAdvert("bad checksum")
                as_v2 = True
        interval = (word & 0x0FFF) / 100
        auth = b""
    elif version == 2 and family == 4:
        end = 8 + count * 4 + 8
        if len(data) < end:
            raise BadAdvert(f"{count} addresses do not fit in {len(data)} bytes")
        if checksum(data[:end]):
            raise BadAdvert("bad checksum")
        interval = float(word & 0xFF)
        auth = data[end - 8:end].rstrip(b"\0") if word >> 8 == AUTH_PASS else b""
        as_v2 = False
    else:
        raise BadAdvert(f"version {version} is not VRRPv3 or (IPv4) VRRPv2")
    if interval <= 0:
        raise BadAdvert("advert interval 0")
    addresses = tuple(str(ipaddress.ip_address(data[8 + i * size:8 + (i + 1) * size]))
                      for i in range(count))
    return Advert(version, vrid, priority, interval, addresses, auth, as_v2)
