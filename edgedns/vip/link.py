"""Linux: the link a virtual router lives on. Its addresses (netlink, through pyroute2),
VRRP sockets, gratuitous ARP and unsolicited neighbour advertisements.

Everything platform-specific about virtual addresses is here, so another system needs
only another module of this shape. Needs CAP_NET_ADMIN (addresses) and CAP_NET_RAW
(sockets); `Link.open` raises `LinkError` saying which is missing.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from edgedns.vip import packet
from edgedns.vip.settings import VirtualAddress

IP_PKTINFO = 8
IPV6_CHECKSUM = 7
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
_ETH_P_ARP = 0x0806
_IFA_F_NODAD = 0x02
"""A virtual IPv6 address is usable at once, without duplicate address detection: the
VRRP election already made sure nobody else holds it."""
_NA_OVERRIDE = 0x20000000


class LinkError(OSError):
    """The link cannot be used for VRRP; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Received:
    data: bytes
    """The VRRP message, IP header taken off."""
    source: str
    destination: str
    ttl: int


class Link:
    """One interface, opened for the IP families of its virtual routers."""

    def __init__(self, name: str, families: tuple[int, ...]) -> None:
        self.name = name
        self.families = families
        self.index = 0
        self.mac = b""
        self.sockets: dict[int, socket.socket] = {}
        self._ipr = None
        self._arp: socket.socket | None = None
        self._icmp6: socket.socket | None = None

    def open(self) -> None:
        """Find the interface and open the sockets. Raises `LinkError`."""
        try:
            from pyroute2 import IPRoute
        except ImportError:  # pragma: no cover - a dependency of the package
            raise LinkError("vrrp needs pyroute2 (pip install pyroute2)") from None
        self._ipr = IPRoute()
        found = self._ipr.link_lookup(ifname=self.name)
        if not found:
            self.close()
            raise LinkError(f"vrrp.interface: no interface {self.name!r} on this host "
                            "(`ip link` lists them)")
        self.index = found[0]
        link = self._ipr.get_links(self.index)[0]
        self.mac = bytes.fromhex((link.get_attr("IFLA_ADDRESS") or "").replace(":", ""))
        try:
            for family in self.families:
                self.sockets[family] = self._vrrp_socket(family)
            if 4 in self.families:
                self._arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                          socket.htons(_ETH_P_ARP))
                self._arp.bind((self.name, _ETH_P_ARP))
            if 6 in self.families:
                self._icmp6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW,
                                            socket.IPPROTO_ICMPV6)
                self._icmp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                self._icmp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF,
                                       self.index)
        except PermissionError:
            self.close()
            raise LinkError("vrrp needs CAP_NET_RAW and CAP_NET_ADMIN: run as root, or under "
                            "systemd with AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN") from None

    def _vrrp_socket(self, family: int) -> socket.socket:
        if family == 4:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, packet.PROTOCOL)
            mreqn = struct.pack("4s4si", socket.inet_aton(packet.GROUP_V4), bytes(4), self.index)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, packet.TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, packet.TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        else:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, packet.PROTOCOL)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 6)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            mreq = socket.inet_pton(socket.AF_INET6, packet.GROUP_V6) + struct.pack("@I",
                                                                                    self.index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, packet.TTL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, packet.TTL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.name.encode())
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        for sock in [*self.sockets.values(), self._arp, self._icmp6]:
            if sock is not None:
                sock.close()
        self.sockets.clear()
        self._arp = self._icmp6 = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def has_carrier(self) -> bool:
        """Whether the link is up with a carrier (a cable, a peer on the veth). Unknown
        counts as up: only a link known to be down faults the routers."""
        try:
            with open(f"/sys/class/net/{self.name}/carrier", "rb") as state:
                return state.read(1) != b"0"
        except OSError:  # EINVAL while the interface is administratively down
            try:
                with open(f"/sys/class/net/{self.name}/operstate", "rb") as state:
                    return state.read().strip() != b"down"
            except OSError:
                return True

    def own_address(self, family: int, virtual: set[str]) -> str | None:
        """This host's address on the link that adverts come from: its first IPv4 address
        that is not a virtual one, or its IPv6 link-local address (RFC 5798 §5.1.2.2)."""
        assert self._ipr is not None
        for message in self._ipr.get_addr(index=self.index):
            address = message.get_attr("IFA_ADDRESS")
            if address is None or address in virtual:
                continue
            parsed = ipaddress.ip_address(address)
            if family == 4 and parsed.version == 4:
                return address
            if family == 6 and parsed.version == 6 and parsed.is_link_local:
                return address
        return None

    def holds(self, address: VirtualAddress) -> bool:
        assert self._ipr is not None
        return any(m.get_attr("IFA_ADDRESS") == address.address
                   for m in self._ipr.get_addr(index=self.index))

    def add(self, address: VirtualAddress) -> None:
        assert self._ipr is not None
        try:
            self._ipr.addr("add", index=self.index, address=address.address,
                           prefixlen=address.prefix,
                           **({"flags": _IFA_F_NODAD} if address.family == 6 else {}))
        except Exception as exc:  # pyroute2's NetlinkError carries the errno in .code
            if getattr(exc, "code", None) != errno.EEXIST:
                raise LinkError(f"cannot add {address} to {self.name}: {exc}") from None

    def remove(self, address: VirtualAddress) -> None:
        assert self._ipr is not None
        try:
            self._ipr.addr("del", index=self.index, address=address.address,
                           prefixlen=address.prefix)
        except Exception as exc:
            if getattr(exc, "code", None) not in (errno.EADDRNOTAVAIL, errno.ENOENT,
                                                  errno.ENODEV):
                raise LinkError(f"cannot remove {address} from {self.name}: {exc}") from None

    def announce(self, address: VirtualAddress) -> None:
        """Tell the LAN this interface's MAC now has `address`: a gratuitous ARP request
        (RFC 5227 §2.3 announcement) or an unsolicited neighbour advertisement with the
        override flag (RFC 4861 §7.2.6)."""
        ip = ipaddress.ip_address(address.address).packed
        try:
            if address.family == 4 and self._arp is not None:
                arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self.mac, ip, bytes(6), ip)
                frame = b"\xff" * 6 + self.mac + struct.pack("!H", _ETH_P_ARP) + arp
                self._arp.send(frame)
            elif address.family == 6 and self._icmp6 is not None:
                na = (struct.pack("!BBHI", 136, 0, 0, _NA_OVERRIDE) + ip
                      + struct.pack("!BB", 2, 1) + self.mac)
                self._icmp6.sendto(na, ("ff02::1", 0, 0, self.index))
        except OSError:
            pass  # a link that is down cannot be told; the next announcement may be

    def send(self, family: int, message: bytes, source: str, destination: str) -> None:
        """Send a VRRP message from `source` (this host's address on the link)."""
        sock = self.sockets[family]
        try:
            if family == 4:
                info = struct.pack("i4s4s", 0, socket.inet_aton(source), bytes(4))
                sock.sendmsg([message], [(socket.IPPROTO_IP, IP_PKTINFO, info)],
                               0, (destination, 0))
            else:
                sock.sendto(message, (destination, 0, 0, self.index))
        except OSError:
            pass  # link down or a full queue: adverts are periodic, the next one may pass

    def receive(self, family: int) -> Received | None:
        """One VRRP packet waiting on `family`'s socket, or None."""
        sock = self.sockets[family]
        try:
            if family == 4:
                data, (source, _) = sock.recvfrom(2048)
                if len(data) < 20:
                    return None
                header = (data[0] & 0x0F) * 4
                destination = socket.inet_ntoa(data[16:20])
                return Received(data[header:], source, destination, data[8])
            data, ancillary, _, address = sock.recvmsg(2048, 256)
        except (BlockingIOError, InterruptedError):
            return None
        ttl, destination = 0, ""
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                ttl = struct.unpack("@i", value[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                destination = socket.inet_ntop(socket.AF_INET6, value[:16])
        return Received(data, address[0].split("%")[0], destination, ttl)
