"""VRRP adverts on the wire: VRRPv3 (RFC 5798 §5) and VRRPv2 with a password (RFC 3768)."""

import struct

import pytest

from edgedns.vip import packet
from edgedns.vip.packet import Advert, BadAdvert

SRC, DST = "198.19.0.11", packet.GROUP_V4


def v3(**fields) -> Advert:
    base = dict(version=3, vrid=51, priority=200, interval=0.1, addresses=("198.19.0.100",))
    return Advert(**{**base, **fields})


def test_v3_advert_round_trips() -> None:
    wire = packet.encode(v3(), SRC, DST)
    assert packet.decode(wire, 4, SRC, DST) == v3()


def test_v3_header_fields_sit_where_rfc_5798_puts_them() -> None:
    wire = packet.encode(v3(addresses=("198.19.0.100", "198.19.0.101")), SRC, DST)
    first, vrid, priority, count, word = struct.unpack_from("!BBBBH", wire)
    assert (first >> 4, first & 0xF, vrid, priority, count) == (3, 1, 51, 200, 2)
    assert word == 10  # 100 ms in centiseconds, reserved bits zero
    assert wire[8:12] == bytes([198, 19, 0, 100]) and len(wire) == 16


def test_v3_ipv4_checksum_covers_the_pseudo_header() -> None:
    wire = packet.encode(v3(), SRC, DST)
    pseudo = bytes([198, 19, 0, 11, 224, 0, 0, 18, 0, 112, 0, len(wire)])
    assert packet.checksum(pseudo + wire) == 0
    with pytest.raises(BadAdvert, match="checksum"):
        packet.decode(wire, 4, "198.19.0.12", DST)  # another sender: the sum no longer holds


def test_v3_checksum_without_pseudo_header_is_accepted_and_flagged() -> None:
    body = bytearray(packet.encode(v3(), SRC, DST))
    body[6:8] = b"\0\0"
    body[6:8] = struct.pack("!H", packet.checksum(bytes(body)))
    advert = packet.decode(bytes(body), 4, SRC, DST)
    assert advert.checksum_as_v2 and advert.priority == 200


def test_corrupted_advert_is_refused() -> None:
    wire = bytearray(packet.encode(v3(), SRC, DST))
    wire[3] ^= 0x40
    with pytest.raises(BadAdvert):
        packet.decode(bytes(wire), 4, SRC, DST)


def test_v2_advert_carries_whole_seconds_and_the_password() -> None:
    advert = Advert(2, 7, 150, 1.0, ("198.19.0.100",), b"secret")
    wire = packet.encode(advert)
    assert wire[4:6] == bytes([packet.AUTH_PASS, 1])
    assert wire[-8:] == b"secret\0\0"
    assert packet.checksum(wire) == 0
    assert packet.decode(wire, 4, SRC, DST) == advert


def test_ipv6_advert_leaves_the_checksum_to_the_kernel() -> None:
    advert = v3(addresses=("2001:2::100",))
    wire = packet.encode(advert)
    assert wire[6:8] == b"\0\0" and len(wire) == 8 + 16
    assert packet.decode(wire, 6) == advert


@pytest.mark.parametrize("data, why", [
    (b"\x31\x33", "too short"),
    (bytes([0x32, 51, 100, 1, 0, 10, 0, 0]), "type 2"),
    (bytes([0x41, 51, 100, 0, 0, 10, 0, 0]), "version 4"),
    (bytes([0x31, 51, 100, 3, 0, 10, 0, 0]) + bytes(4), "do not fit"),
])
def test_malformed_adverts_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(BadAdvert, match=why):
        packet.decode(data, 4, SRC, DST)


def test_zero_interval_is_refused() -> None:
    advert = packet.encode(v3(), SRC, DST)
    zeroed = bytearray(advert)
    zeroed[4:6] = b"\0\0"
    zeroed[6:8] = b"\0\0"
    pseudo = bytes([198, 19, 0, 11, 224, 0, 0, 18, 0, 112, 0, len(zeroed)])
    zeroed[6:8] = struct.pack("!H", packet.checksum(pseudo + bytes(zeroed)))
    with pytest.raises(BadAdvert, match="interval 0"):
        packet.decode(bytes(zeroed), 4, SRC, DST)
