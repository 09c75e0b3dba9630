"""Linux socket options for serving virtual addresses: replying from the address a query
was sent to (IP_PKTINFO / IPV6_PKTINFO) and binding an address this host does not hold yet
(IP_FREEBIND). Kept here so another platform needs only another module of this shape.

Why: a listener on a wildcard address replies from the address the kernel's routing picks,
the host's own, and clients drop replies that do not come from the address they asked (the
virtual one). And a backup must be able to listen on the virtual address before it owns it.
"""

from __future__ import annotations

import socket
import struct

IP_PKTINFO = 8
IP_FREEBIND = 15
IPV6_FREEBIND = 78
_ANCILLARY_SPACE = socket.CMSG_SPACE(20)
"""Room for either pktinfo struct (in_pktinfo: 12 bytes, in6_pktinfo: 20)."""


def set_freebind(sock: socket.socket) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)


def want_destination(sock: socket.socket) -> None:
    """Have `recvfrom_with_destination` report what each datagram was sent to."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


Source = list[tuple[int, int, bytes]]
"""Ancillary data for `sendmsg` that sends from the address a query came to."""


def recvfrom_with_destination(sock: socket.socket, size: int) -> tuple[bytes, tuple, Source]:
    """(datagram, sender, ancillary data that replies from its destination address)."""
    data, ancillary, _, address = sock.recvmsg(size, _ANCILLARY_SPACE)
    source: Source = []
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
            # in_pktinfo: ifindex, spec_dst, addr; reply with spec_dst = addr, any interface
            source = [(socket.IPPROTO_IP, IP_PKTINFO,
                       struct.pack("i4s4s", 0, value[8:12], bytes(4)))]
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 20:
            source = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, value[:20])]
    return data, address, source


def sendto_from(sock: socket.socket, data: bytes, address: tuple, source: Source) -> None:
    """Send `data` to `address` from the address `source` names; raises OSError."""
    if source:
        try:
            sock.sendmsg([data], source, 0, address)
            return
        except OSError:
            pass  # e.g. a query sent to a broadcast address: reply from the host's own
    sock.sendto(data, address)
