"""ICMP echo packets (RFC 792, RFC 4443 §4): built and parsed here, a few dozen lines, so
that probing depends on no library's private functions.

A probe proves itself three ways: the socket's random identifier, a sequence number per
target, and a random nonce as payload that the reply must carry back. Someone who has seen
earlier probes knows the identifier and can guess sequences, but not the next nonce.
"""

from __future__ import annotations

import struct

REQUEST = {4: 8, 6: 128}
REPLY = {4: 0, 6: 129}
NONCE_SIZE = 16
_HEADER = struct.Struct("!BBHHH")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def request(version: int, ident: int, sequence: int, nonce: bytes) -> bytes:
    """An echo request. ICMPv6 checksums cover a pseudo-header only the kernel knows, and
    Linux fills them in on ICMPv6 sockets (and on ping sockets of both versions); ICMPv4 raw
    sockets send what they are given."""
    packet = _HEADER.pack(REQUEST[version], 0, 0, ident, sequence) + nonce
    if version == 4:
        packet = packet[:2] + checksum(packet).to_bytes(2, "big") + packet[4:]
    return packet


def parse_reply(packet: bytes, version: int, ip_header: bool) -> tuple[int, int, bytes] | None:
    """(identifier, sequence, payload) of an echo reply, or None for anything else.
    `ip_header`: the packet starts with its IPv4 header (raw ICMPv4 sockets deliver it)."""
    start = (packet[0] & 0x0F) * 4 if ip_header and packet else 0
    if len(packet) < start + _HEADER.size:
        return None
    kind, code, _, ident, sequence = _HEADER.unpack_from(packet, start)
    if kind != REPLY[version] or code != 0:
        return None
    return ident, sequence, packet[start + _HEADER.size :]
