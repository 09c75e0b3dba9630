"""ICMP echo packets: requests as the wire wants them, replies read with or without the IPv4
header in front."""

from __future__ import annotations

import struct

from edgedns.pools.health import echo


def test_the_checksum_of_a_packet_with_its_checksum_in_place_is_zero() -> None:
    packet = echo.request(4, 0x1234, 7, b"0123456789abcdef")
    assert echo.checksum(packet) == 0


def test_the_checksum_matches_rfc_1071s_worked_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded); the checksum is ~ddf2.
    assert echo.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_an_odd_length_is_padded_with_a_zero_byte() -> None:
    assert echo.checksum(b"\x01") == echo.checksum(b"\x01\x00")


def test_a_v4_request_is_type_8_with_identifier_sequence_and_nonce() -> None:
    packet = echo.request(4, 0xBEEF, 0x0102, b"n" * 16)
    kind, code, _, ident, sequence = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, ident, sequence) == (8, 0, 0xBEEF, 0x0102)
    assert packet[8:] == b"n" * 16


def test_a_v6_request_is_type_128_and_leaves_the_checksum_to_the_kernel() -> None:
    packet = echo.request(6, 1, 2, b"n" * 16)
    assert packet[:4] == b"\x80\x00\x00\x00"


def test_a_v4_reply_is_read_past_its_ip_header() -> None:
    ip_header = bytes((0x46,)) + bytes(23)  # IHL 6: a 24-byte header with options
    icmp = struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 9) + b"payload"
    assert echo.parse_reply(ip_header + icmp, 4, ip_header=True) == (0xBEEF, 9, b"payload")


def test_anything_but_an_echo_reply_is_none() -> None:
    unreachable = struct.pack("!BBHHH", 3, 1, 0, 0, 0) + bytes(28)
    assert echo.parse_reply(unreachable, 4, ip_header=False) is None
    assert echo.parse_reply(struct.pack("!BBHHH", 129, 1, 0, 1, 1), 6, ip_header=False) is None
    assert echo.parse_reply(b"\x81\x00\x00", 6, ip_header=False) is None  # cut short
    assert echo.parse_reply(b"", 4, ip_header=True) is None
