"""Pools: names whose A/AAAA answers are the healthy members of a set of backends.

Probe results flow in through `PoolSet.record` (rise/fall per check target, below), and
`PoolSet.selection` says what a pool answers right now for one address family: one or more
address lists ("variants") and how a query picks among them.

A member changing state costs O(1) per pool that uses it: the pool's `generation` goes up
and its selections are forgotten. Selections are computed again when next asked for, once
per generation, and replies built from an older generation are rebuilt when next asked for
(`edgedns.authority.answers`); nothing walks the names that depend on a pool.

Startup rule: a member counts as up until its first probe completes; that first result sets
its state directly, after which `rise` consecutive successes or `fall` consecutive failures
are needed to change it. Across a reload, a member whose check is unchanged keeps its health
as it is, and one whose check changed keeps its state until the new check's first result.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edgedns.dns import names
from edgedns.dns.names import Name
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target

log = logging.getLogger(__name__)

POLICIES = ("all", "random", "round_robin", "weighted", "failover", "hash")
WHEN_ALL_DOWN = ("serve_all", "servfail", "nodata", "fallback")
FIRST_DOWN_SHOWN = 10
"""Down targets named in the first-verdicts summary; the rest are counted."""
MAX_ADDRESSES = 1_000
"""Addresses one answer holds at most (`all` and `failover` without `count`): 1,000 AAAA
records fit in a TCP reply (about 28 KB); 5,000 would not fit in 64 KB, and a client would
get an empty truncated reply even over TCP."""


@dataclass(frozen=True, slots=True)
class Member:
    address: str
    """Canonical text form of the address answered."""
    check: CheckSpec
    weight: int = 1
    """policy weighted: relative share of queries answered with this member first."""
    priority: int = 0
    """policy failover: the highest priority with a healthy member is answered."""
    target: Target | None = field(init=False, repr=False, compare=False)
    """What to probe, or None for `check: {type: none}` (always up). Made once: selections,
    status and metrics ask for it per member."""

    def __post_init__(self) -> None:
        target = None if self.check.type == "none" else Target.for_member(self.check,
                                                                          self.address)
        object.__setattr__(self, "target", target)

    @property
    def version(self) -> int:
        return 6 if ":" in self.address else 4  # the address is canonical text


@dataclass(frozen=True, slots=True)
class PoolSpec:
    name: Name
    ttl: int
    policy: str
    count: int | None
    """Addresses per answer; None: every healthy one (all, failover) or one (the others)."""
    preempt: bool
    members: tuple[Member, ...]
    when_all_down: str
    fallback: tuple[str, ...]

    def families(self) -> set[int]:
        """IP versions this pool can answer (members and fallback addresses)."""
        found = {m.version for m in self.members}
        if self.when_all_down == "fallback":
            found |= {ipaddress.ip_address(a).version for a in self.fallback}
        return found


@dataclass(frozen=True, slots=True)
class Selection:
    """What a pool answers for one address family until health changes again."""

    variants: tuple[tuple[str, ...], ...]
    """Address lists; a query gets one of them. ``((),)`` answers NODATA."""
    chooser: str = "first"
    """How a query picks a variant: first, random, round_robin, weighted or hash."""
    weights: tuple[int, ...] = ()
    """weighted: cumulative weights, one per variant."""
    servfail: bool = False
    hashed_onto: tuple[str, ...] = ()
    """hash: every member of the family, up or down, in config order: what clients are hashed
    onto, so that a member going down moves only its own clients."""

    @property
    def nodata(self) -> bool:
        return self.variants == ((),)


NODATA = Selection(((),))
SERVFAIL = Selection(((),), servfail=True)


@dataclass(slots=True)
class Health:
    """Rise/fall state of one check target, shared by the members probed through it."""

    up: bool = True
    probed: bool = False
    successes: int = 0
    failures: int = 0
    last: ProbeResult | None = None
    changed_at: float = field(default_factory=time.time)

    @property
    def settling(self) -> bool:
        """A change has begun but is not confirmed yet: an up target has failed, or a down
        one has succeeded, fewer times in a row than `fall` or `rise`."""
        return self.probed and (self.failures > 0 if self.up else self.successes > 0)

    def record(self, result: ProbeResult, rise: int, fall: int, now: float) -> bool:
        """Count `result`; True when it changes `up`."""
        self.last = result
        if result.ok:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        if not self.probed:
            self.probed = True
            flip = self.up != result.ok
        elif self.up:
            flip = self.failures >= fall
        else:
            flip = self.successes >= rise
        if flip:
            self.up = not self.up
            self.changed_at = now
        return flip


class PoolSet:
    """Health and selections of every pool served."""

    def __init__(
        self,
        pools: Iterable[PoolSpec],
        clock: Callable[[], float] = time.time,
        previous: PoolSet | None = None,
    ) -> None:
        """`previous` (the set a reload replaces) hands over the health of every check
        target that is unchanged, so a reload never restarts or flaps a known member."""
        self.pools = {pool.name: pool for pool in pools}
        self.clock = clock
        self.health: dict[Target, Health] = {}
        self._users: dict[Target, set[Name]] = {}
        self._serving: dict[tuple[Name, int], int] = {}
        """failover: the priority answered last, per (pool, IP version), for preempt false."""
        self.generation: dict[Name, int] = dict.fromkeys(self.pools, 0)
        """Per pool, bumped whenever one of its members changes state."""
        self._selections: dict[tuple[Name, int], Selection] = {}
        self.drained: set[tuple[Name, str]] = set()
        """(pool, member address) pairs not handed out, though still probed (`drain`)."""
        known = previous.health if previous is not None else {}
        for pool in self.pools.values():
            for member in pool.members:
                target = member.target
                if target is None:
                    continue
                self._users.setdefault(target, set()).add(pool.name)
                if target in self.health:
                    continue
                health = known.get(target)
                if health is None:
                    health = Health()
                    was = previous._former(pool.name, member) if previous is not None else None
                    if was is not None:
                        # A changed check: the member stays as it was until the new check's
                        # first verdict, so a known-dead one is not served meanwhile.
                        health.up, health.changed_at = was.up, was.changed_at
                self.health[target] = health
        self._first = {t for t, h in self.health.items() if not h.probed}
        """Targets still waiting for their first verdict: those are summed up in one log
        line once all have one, rather than a line each (200 members, 200 lines)."""
        self._first_count = len(self._first)
        if previous is not None:
            self.drained = {pair for pair in previous.drained if self.has_member(*pair)}
            self._serving = {
                key: priority for key, priority in previous._serving.items()
                if key[0] in self.pools
            }

    def _former(self, pool: Name, member: Member) -> Health | None:
        """The health of `member`'s address in pool `pool` here, whatever its check."""
        spec = self.pools.get(pool)
        if spec is None:
            return None
        for mine in spec.members:
            if mine.address == member.address and mine.target is not None:
                return self.health[mine.target]
        return None

    def has_member(self, pool: Name, address: str) -> bool:
        spec = self.pools.get(pool)
        return spec is not None and any(m.address == address for m in spec.members)

    def drain(self, pool: Name, address: str, drained: bool) -> None:
        """Stop (or resume) handing out `address` in `pool`; it keeps being probed. Costs
        what a health change does: the pool's generation goes up."""
        pair = (pool, address)
        if (pair in self.drained) == drained:
            return
        if drained:
            self.drained.add(pair)
        else:
            self.drained.discard(pair)
        self.generation[pool] += 1
        self._selections.pop((pool, 4), None)
        self._selections.pop((pool, 6), None)
        log.info("%s in pool %s is %s", address, names.to_text(pool),
                 "DRAINED" if drained else "no longer drained")

    def targets(self) -> set[Target]:
        return set(self.health)

    def all_probed(self) -> bool:
        """True once every target has a first verdict."""
        return all(h.probed for h in self.health.values())

    def settling(self, target: Target) -> bool:
        """Whether `target` is between a first sign of change and its confirmation (then it
        is probed every `retry_interval`)."""
        health = self.health.get(target)
        return health is not None and health.settling

    def record(self, target: Target, result: ProbeResult) -> set[Name]:
        """Count a probe result; returns the pools whose members changed state."""
        health = self.health.get(target)
        if health is None:
            return set()
        flipped = health.record(result, target.rise, target.fall, self.clock())
        if log.isEnabledFor(logging.DEBUG):
            rtt = f" in {result.rtt * 1000:.1f}ms" if result.rtt is not None else ""
            log.debug("probe %s: %s%s (%s, %d ok / %d failed in a row)", target,
                      result.reason, rtt, "UP" if health.up else "DOWN", health.successes,
                      health.failures)
        first = target in self._first
        if first:
            self._first.discard(target)
            if not self._first:
                self._log_first_verdicts()
        if not flipped:
            return set()
        users = self._users[target]
        for name in users:
            self.generation[name] += 1
            self._selections.pop((name, 4), None)
            self._selections.pop((name, 6), None)
        if not first:
            rtt = f", rtt {result.rtt * 1000:.1f}ms" if result.rtt is not None else ""
            log.info("%s is %s: %s (%s%s; pools %s)", target.address,
                     "UP" if health.up else "DOWN", result.reason, target, rtt,
                     ", ".join(names.to_text(n) for n in sorted(users)))
        return set(users)

    def _log_first_verdicts(self) -> None:
        down = [(t, h) for t, h in self.health.items() if not h.up]
        shown = "; ".join(f"{t.address} ({t}: {h.last.reason if h.last else '?'})"
                          for t, h in down[:FIRST_DOWN_SHOWN])
        more = f"; and {len(down) - FIRST_DOWN_SHOWN} more" if len(down) > FIRST_DOWN_SHOWN else ""
        log.info("health: first verdicts in for %d check targets: %d of %d up%s",
                 self._first_count, len(self.health) - len(down), len(self.health),
                 f"; down: {shown}{more}" if down else "")

    def is_up(self, member: Member) -> bool:
        target = member.target
        return target is None or self.health[target].up

    def selection(self, name: Name, version: int) -> Selection:
        """What pool `name` answers now for IPv`version` (4: A, 6: AAAA)."""
        key = (name, version)
        selection = self._selections.get(key)
        if selection is None:
            selection = self._selections[key] = self._select(name, version)
        return selection

    def _select(self, name: Name, version: int) -> Selection:
        pool = self.pools[name]
        members = [m for m in pool.members if m.version == version]
        drained = self.drained
        healthy = [m for m in members if self.is_up(m) and (name, m.address) not in drained]
        if not healthy:
            if pool.when_all_down == "servfail" and members:
                return SERVFAIL
            if pool.when_all_down == "fallback" or not members:
                fallback = tuple(
                    a for a in pool.fallback if ipaddress.ip_address(a).version == version
                )
                return Selection((fallback,)) if fallback else NODATA
            if pool.when_all_down == "nodata":
                return NODATA
            healthy = members  # serve_all: better a maybe-dead address than none
        if pool.policy == "all":
            return Selection((tuple(m.address for m in healthy)[: _cap(pool.count)],))
        if pool.policy == "failover":
            return self._failover(pool, version, healthy)
        return _rotations(pool, healthy, members)

    def _failover(self, pool: PoolSpec, version: int, healthy: list[Member]) -> Selection:
        top = max(m.priority for m in healthy)
        key = (pool.name, version)
        serving = self._serving.get(key)
        if not pool.preempt and serving is not None and any(
            m.priority == serving for m in healthy
        ):
            # keepalived's nopreempt: stay with the serving priority while any of its members
            # is healthy; members of that same priority that come back rejoin it.
            top = serving
        self._serving[key] = top
        chosen = tuple(m.address for m in healthy if m.priority == top)
        return Selection((chosen[: _cap(pool.count)],))


def _rotations(pool: PoolSpec, healthy: list[Member], members: list[Member]) -> Selection:
    """Variant i starts at healthy member i and continues in config order, `count` long.

    random, round_robin and weighted pick i per query; hash picks by consistent hashing of
    the client onto all the members (`Selection.hashed_onto`), so a member's failure moves
    only its own clients.
    """
    n = len(healthy)
    count = min(pool.count or 1, n)
    variants = tuple(
        tuple(healthy[(i + j) % n].address for j in range(count)) for i in range(n)
    )
    weights: tuple[int, ...] = ()
    if pool.policy == "weighted":
        total = 0
        cumulative = []
        for member in healthy:
            total += member.weight
            cumulative.append(total)
        weights = tuple(cumulative)
    hashed_onto = tuple(m.address for m in members) if pool.policy == "hash" else ()
    return Selection(variants, pool.policy, weights, hashed_onto=hashed_onto)


def _cap(count: int | None) -> int:
    return MAX_ADDRESSES if count is None else min(count, MAX_ADDRESSES)
