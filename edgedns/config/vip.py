"""The `vrrp` section: the virtual addresses this node may hold (see `edgedns.vip`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from edgedns.config import yaml as yaml_file
from edgedns.config.pools import PoolsSection
from edgedns.config.reader import parse_duration
from edgedns.dns.presentation import shown
from edgedns.pools.health.checks import CheckSpec
from edgedns.vip.settings import VirtualAddress, VrrpSettings

VRRP_KEYS = ("interface", "virtual_router_id", "priority", "advert_interval", "preempt",
             "addresses", "unicast_peers", "version", "auth_pass", "track", "announce_count",
             "announce_interval")
TRACK_BASE = CheckSpec(type="tcp", address="127.0.0.1", interval=0.5, timeout=0.3, fall=2,
                       rise=2)
"""A tracked service is local: a TCP connect to 127.0.0.1, as often as the DNS self-check."""


class VipSection(PoolsSection):
    def vrrp(self, raw: Any, path: str) -> VrrpSettings:
        raw = self.mapping(raw, path, VRRP_KEYS)
        for key in ("interface", "virtual_router_id", "addresses"):
            if key not in raw:
                raise self.error(f"{path}.{key}", "is required")
        base = VrrpSettings(interface="", vrid=0, addresses=())
        interface = self.text(raw["interface"], f"{path}.interface", "an interface name")
        if len(interface) > 15 or "/" in interface or " " in interface:
            raise self.error(f"{path}.interface", f"{shown(interface)} is not an interface name")
        vrid = self.whole(raw["virtual_router_id"], f"{path}.virtual_router_id", 1, 255)
        priority = self.whole(raw.get("priority", base.priority), f"{path}.priority", 1, 254)
        version = self.whole(raw.get("version", base.version), f"{path}.version", 2, 3)
        interval = self.convert(raw.get("advert_interval",
                                        base.advert_interval if version == 3 else 1),
                                f"{path}.advert_interval", parse_duration)
        if version == 3 and not 0.01 <= interval <= 40.95:
            raise self.error(f"{path}.advert_interval", "must be from 10ms to 40.95s (VRRPv3 "
                             "counts centiseconds)")
        if version == 2 and (interval != int(interval) or not 1 <= interval <= 255):
            raise self.error(f"{path}.advert_interval", "VRRPv2 counts whole seconds, 1s to "
                             "255s")
        preempt = self.boolean(raw.get("preempt", base.preempt), f"{path}.preempt")
        addresses = self._virtual_addresses(raw["addresses"], f"{path}.addresses")
        if version == 2 and any(a.family == 6 for a in addresses):
            raise self.error(f"{path}.addresses", "VRRPv2 carries IPv4 addresses only")
        peers = tuple(self._peer(p, f"{path}.unicast_peers[{i}]")
                      for i, p in enumerate(self._list(raw.get("unicast_peers", []),
                                                       f"{path}.unicast_peers")))
        auth = b""
        if "auth_pass" in raw:
            if version != 2:
                raise self.error(f"{path}.auth_pass", "only VRRPv2 has a password "
                                 "(add version: 2)")
            auth = yaml_file.source_text(raw["auth_pass"]).encode()
            if not 1 <= len(auth) <= 8:
                raise self.error(f"{path}.auth_pass", "must be 1 to 8 bytes (keepalived cuts "
                                 "longer ones to 8)")
        track = {}
        for name, spec in self.mapping(raw.get("track", {}), f"{path}.track",
                                       tuple(raw.get("track") or ())).items():
            track[str(name)] = self.check(spec, f"{path}.track.{name}", TRACK_BASE)
        count = self.whole(raw.get("announce_count", base.announce_count),
                           f"{path}.announce_count", 1, 100)
        spacing = self.convert(raw.get("announce_interval", base.announce_interval),
                               f"{path}.announce_interval", parse_duration)
        return VrrpSettings(interface, vrid, addresses, priority, interval, preempt, peers,
                            version, auth, tuple(sorted(track.items())), count, spacing)

    def _list(self, raw: Any, path: str) -> list:
        if isinstance(raw, str):
            return [raw]
        if not isinstance(raw, list):
            raise self.error(path, "must be a list of addresses")
        return raw

    def _virtual_addresses(self, raw: Any, path: str) -> tuple[VirtualAddress, ...]:
        items = self._list(raw, path)
        if not items:
            raise self.error(path, "must list at least one address")
        out = []
        for i, item in enumerate(items):
            text = yaml_file.source_text(item)
            try:
                interface = ipaddress.ip_interface(text.strip())
            except ValueError:
                raise self.error(f"{path}[{i}]", f"{shown(item)} is not ADDR or "
                                 "ADDR/PREFIX") from None
            if "/" not in text:
                interface = ipaddress.ip_interface(f"{interface.ip}/{interface.max_prefixlen}")
            address = VirtualAddress(str(interface.ip), interface.network.prefixlen)
            if address.address in {a.address for a in out}:
                raise self.error(f"{path}[{i}]", f"{address.address} is listed twice")
            out.append(address)
        return tuple(out)

    def _peer(self, raw: Any, path: str) -> str:
        text = yaml_file.source_text(raw).strip()
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise self.error(path, f"{shown(raw)} is not an IP address") from None
