"""The server's side of `edgedns.vip`: the agent for the config's `vrrp` section, the DNS
self-check that faults it when this node stops answering, the tracked services (probed by
the health engine like pool members) and "every pool is down" telling it this node is
degraded."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from edgedns.config import Endpoint
from edgedns.pools.health.checks import ProbeResult, Target
from edgedns.pools.pool import Health
from edgedns.vip.agent import Changed, VipAgent
from edgedns.vip.selfcheck import SelfCheck
from edgedns.vip.settings import VrrpSettings

log = logging.getLogger(__name__)

_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def check_address(bound: Iterable[Endpoint], settings: VrrpSettings) -> tuple[str, int]:
    """Where the self-check asks: a wildcard listener through loopback, else the first
    listen address that is this host's own. Raises ValueError when only virtual addresses
    are served (as a backup, asking one would ask the master)."""
    virtual = {a.address for a in settings.addresses}
    for endpoint in bound:
        if endpoint.host in _WILDCARD_TO_LOOPBACK:
            return _WILDCARD_TO_LOOPBACK[endpoint.host], endpoint.port
    for endpoint in bound:
        if endpoint.host not in virtual:
            return endpoint.host, endpoint.port
    raise ValueError("vrrp: listen only names virtual addresses; add a wildcard "
                     "(0.0.0.0:53) or one of this host's addresses, which the DNS self-check "
                     "asks")


class VirtualRouters:
    def __init__(self, settings: VrrpSettings, changed: Changed) -> None:
        self.settings = settings
        self.agent = VipAgent(settings, changed)
        self.tracks: dict[Target, tuple[str, Health]] = {
            Target.for_member(spec, spec.address or "127.0.0.1"): (name, Health())
            for name, spec in settings.track}
        self.self_check: SelfCheck | None = None
        self.degraded = False

    def targets(self) -> set[Target]:
        return set(self.tracks)

    def start(self, address: tuple[str, int], zone: str) -> None:
        """Start the agent (raises `edgedns.vip.link.LinkError`) and the self-check."""
        self.agent.start()
        self.self_check = SelfCheck(address, zone,
                                    lambda reason: self.agent.set_fault("dns", reason))
        self.self_check.start()

    def stop(self) -> None:
        """Hand the addresses over (if held) and stop. Blocks for at most a few seconds."""
        if self.self_check is not None:
            self.self_check.stop()
        self.agent.stop()

    def record(self, target: Target, result: ProbeResult, now: float) -> bool:
        """A tracked service's probe result; returns whether it is settling (see
        `PoolSet.settling`)."""
        name, health = self.tracks[target]
        if health.record(result, target.rise, target.fall, now):
            log.info("vrrp: tracked %s (%s) %s: %s", name, target,
                     "up" if health.up else "DOWN", result.reason)
            self.agent.set_fault(f"track {name}", None if health.up
                                 else f"tracked {name} ({target}) down: {result.reason}")
        return health.settling

    def set_pools_down(self, down: bool) -> None:
        if down != self.degraded:
            self.degraded = down
            self.agent.set_degraded("every pool is down" if down else None)

    def status(self) -> dict:
        return {
            "interface": self.settings.interface,
            "routers": self.agent.status(),
            "tracks": {name: {"check": str(target), "up": health.up,
                              "reason": health.last.reason if health.last else None}
                       for target, (name, health) in self.tracks.items()},
            "self_check": None if self.self_check is None else {
                "address": list(self.self_check.address), "down": self.self_check.down,
                "rounds": self.self_check.rounds, "failures": self.self_check.failures},
            "counters": {
                "adverts_sent": self.agent.counters.sent,
                "adverts_received": self.agent.counters.received,
                "adverts_dropped": self.agent.counters.dropped,
                "announcements": self.agent.counters.announcements,
                "address_errors": self.agent.counters.address_errors,
                "agent_failures": self.agent.failures},
        }
