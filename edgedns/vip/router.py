"""The VRRP state machine of one virtual router (RFC 5798 §6.4, as updated by RFC 9568),
without I/O: it is told adverts, time and health, and answers with what to do.

Beyond the RFC's Initialize, Backup and Master:

- **Fault** (keepalived's word): the local DNS service or a tracked service is down. A
  faulted router gives the addresses up with a priority-0 advert (so a backup takes over
  after its skew time, not after three missed adverts) and never becomes master.
- **Degraded**: every pool this node serves is down, which usually means its own links
  are. It advertises priority 1; a master that becomes degraded hands over once, with a
  priority-0 advert, then waits as a backup. A backup does not preempt on priority alone
  (unless `preempt`), so without this a sick master would keep the address; and a degraded
  node still takes over when nobody else does, so when every node is degraded the address
  is still held.
- After a split between the nodes heals, clients that followed the losing master must
  come back. Either master may be the first to hear the other, so both act: the loser
  yields with a priority-0 advert, and a master that hears a priority-0 advert or a
  lower-priority master advertises and announces its addresses at once (RFC 9568 §6.4.3
  leaves both to the implementation; keepalived peers see an ordinary priority 0).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from edgedns.vip.packet import Advert


class State(enum.Enum):
    INIT = "init"
    BACKUP = "backup"
    MASTER = "master"
    FAULT = "fault"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Send:
    """Send an advert with this priority now."""
    priority: int


@dataclass(frozen=True, slots=True)
class Take:
    """Add the virtual addresses and announce them (gratuitous ARP, unsolicited NA)."""


@dataclass(frozen=True, slots=True)
class Announce:
    """Announce the addresses again (they are already held)."""


@dataclass(frozen=True, slots=True)
class Release:
    """Remove the virtual addresses."""


@dataclass(frozen=True, slots=True)
class Became:
    """The state changed, and why (for logs, /status and notify hooks)."""
    state: State
    reason: str


Action = Send | Take | Announce | Release | Became
DEGRADED_PRIORITY = 1


@dataclass(frozen=True, slots=True)
class RouterSettings:
    vrid: int
    priority: int
    advert_interval: float
    preempt: bool
    addresses: tuple[str, ...]
    """The virtual addresses of this router: all of one IP family."""
    primary: str
    """This node's own address on the link: adverts come from it; on equal priority the
    higher one wins (RFC 5798 §6.4.3)."""
    version: int = 3


class Router:
    """One virtual router. Call `start`, then `advert` for each advert received, `expire`
    at `deadline`, `set_fault` / `set_degraded` as health changes, and `stop` last. Each
    returns the actions to carry out, in order. Times are seconds on one monotonic clock."""

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.state = State.INIT
        self.reason = "starting"
        self.master: str | None = None
        """The current master's address, as far as this router knows (itself when master)."""
        self.master_interval = settings.advert_interval
        """Master_Adver_Interval: learnt from the master's adverts while backup."""
        self.deadline = float("inf")
        """When `expire` is next due: the advert timer (master) or master-down timer (backup)."""
        self.fault: str | None = None
        self.degraded: str | None = None
        self.transitions = 0
        self._primary = ipaddress.ip_address(settings.primary)
        self._left: str | None = None
        """The master that said it is leaving (a priority-0 advert), until another speaks."""

    @property
    def priority(self) -> int:
        """What this router advertises now."""
        return DEGRADED_PRIORITY if self.degraded else self.settings.priority

    def skew(self) -> float:
        return (256 - self.priority) * self.master_interval / 256

    def master_down_interval(self) -> float:
        return 3 * self.master_interval + self.skew()

    def start(self, now: float) -> list[Action]:
        if self.fault:
            return self._become(State.FAULT, self.fault, now)
        return self._become(State.BACKUP, "started", now)

    def stop(self) -> list[Action]:
        """Leave: a master hands over at once with a priority-0 advert."""
        out: list[Action] = []
        if self.state is State.MASTER:
            out += [Send(0), Release()]
        self.deadline = float("inf")
        return out + self._set(State.STOPPED, "stopped")

    def expire(self, now: float) -> list[Action]:
        if now < self.deadline:
            return []
        if self.state is State.MASTER:
            self.deadline = now + self.settings.advert_interval
            return [Send(self.priority)]
        if self.state is State.BACKUP:
            reason = (f"master {self._left} left (priority 0)" if self._left else
                      f"no advert from a master for {self.master_down_interval():.2f}s")
            return self._become(State.MASTER, reason, now)
        self.deadline = float("inf")
        return []

    def advert(self, advert: Advert, source: str, now: float) -> list[Action]:
        if advert.vrid != self.settings.vrid or self.state in (State.STOPPED, State.INIT):
            return []
        if self.state is State.FAULT:
            self.master = source if advert.priority else None
            return []
        if self.state is State.BACKUP:
            if advert.priority == 0:
                self.deadline = now + self.skew()
                self.master = None
                self._left = source
                return []
            if not self.settings.preempt or advert.priority >= self.priority:
                self.master, self._left = source, None
                self.master_interval = advert.interval
                self.deadline = now + self.master_down_interval()
            return []
        # Master.
        if advert.priority == 0:  # another gave the address up: clients may point there
            self.deadline = now + self.settings.advert_interval
            return [Send(self.priority), Announce()]
        theirs = ipaddress.ip_address(source)
        if advert.priority > self.priority or (advert.priority == self.priority
                                               and theirs > self._primary):
            self.master = source
            self.master_interval = advert.interval
            return [Send(0), Release()] + self._become(
                State.BACKUP, f"{source} advertises priority {advert.priority}", now)
        self.deadline = now + self.settings.advert_interval
        return [Send(self.priority), Announce()]

    def set_fault(self, reason: str | None, now: float) -> list[Action]:
        """`reason` why this node must not hold the addresses, or None when it may again."""
        was, self.fault = self.fault, reason
        if self.state in (State.STOPPED, State.INIT) or (was is None) == (reason is None):
            return []  # (before `start`, which looks at `fault`)
        if reason is not None:
            out: list[Action] = [Send(0), Release()] if self.state is State.MASTER else []
            return out + self._become(State.FAULT, reason, now)
        if self.state is State.FAULT:
            return self._become(State.BACKUP, f"recovered ({was})", now)
        return []

    def set_degraded(self, reason: str | None, now: float) -> list[Action]:
        """`reason` this node serves worse than it should (advertise priority 1), or None."""
        was, self.degraded = self.degraded, reason
        if (was is None) == (reason is None) or self.state is not State.MASTER:
            return []
        if reason is not None:
            return [Send(0), Release()] + self._become(State.BACKUP, reason, now)
        return [Send(self.priority)]

    def _become(self, state: State, reason: str, now: float) -> list[Action]:
        out: list[Action] = []
        if state is State.MASTER:
            self.master, self._left = self.settings.primary, None
            self.master_interval = self.settings.advert_interval
            self.deadline = now + self.settings.advert_interval
            out += [Send(self.priority), Take()]
        elif state is State.BACKUP:
            if self.master == self.settings.primary:
                self.master = None
            self.master_interval = (self.master_interval if self.master
                                    else self.settings.advert_interval)
            self.deadline = now + self.master_down_interval()
        else:
            self.deadline = float("inf")
        return out + self._set(state, reason)

    def _set(self, state: State, reason: str) -> list[Action]:
        if state is self.state:
            self.reason = reason
            return []
        self.state, self.reason = state, reason
        self.transitions += 1
        return [Became(state, reason)]
