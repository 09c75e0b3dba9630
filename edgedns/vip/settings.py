"""What the `vrrp` config section says (read by `edgedns.config.vip`)."""

from __future__ import annotations

from dataclasses import dataclass

from edgedns.pools.health.checks import CheckSpec


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    address: str
    prefix: int
    """Prefix length on the interface: /32 or /128 unless written (as keepalived does)."""

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix}"


@dataclass(frozen=True, slots=True)
class VrrpSettings:
    interface: str
    vrid: int
    """virtual_router_id: the same on every node of the pair, unique on the LAN."""
    addresses: tuple[VirtualAddress, ...]
    priority: int = 100
    """1-254; the highest healthy node becomes master."""
    advert_interval: float = 0.1
    """Seconds between a master's adverts; a backup takes over after 3 missed adverts plus
    its skew time (0.33-0.4 s at 100ms)."""
    preempt: bool = False
    """Whether a backup with a higher priority takes the addresses from a healthy master."""
    unicast_peers: tuple[str, ...] = ()
    """Send adverts to these addresses instead of the VRRP multicast group."""
    version: int = 3
    auth_pass: bytes = b""
    """VRRPv2 only: keepalived's ``auth_type PASS`` password."""
    track: tuple[tuple[str, CheckSpec], ...] = ()
    """Other local services this node must have to hold the addresses, by name."""
    announce_count: int = 3
    """Gratuitous ARPs / unsolicited neighbour advertisements per address on takeover."""
    announce_interval: float = 0.5

    def families(self) -> tuple[int, ...]:
        """The IP versions among the addresses: one virtual router each (RFC 5798 §5.2.3)."""
        return tuple(sorted({a.family for a in self.addresses}))
