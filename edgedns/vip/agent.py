"""The VRRP agent: a thread that runs this node's virtual routers (one per IP family of the
`vrrp.addresses`) and carries out what they decide on the link.

Why a thread and not the event loop: adverts must leave on time while the loop is busy
(a saturating flood, a slow reload step), or a healthy master would be deposed. A thread
gets the interpreter at least every few milliseconds (`sys.getswitchinterval`), so a busy
loop does not delay adverts enough to matter at 100 ms. A *dead* loop must still move the
address: that is the self-check's job (`selfcheck`), which asks the DNS listener itself
and faults this node when it stops answering. If the whole process stops (SIGKILL,
SIGSTOP), its adverts stop and a backup takes over after 3 intervals plus its skew.

Inputs reach the thread as state (faults by source, degraded or not, stop), set under a
lock and signalled through a socket pair, so nothing queues up however often they change.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgedns.vip import packet
from edgedns.vip.link import Link, LinkError, Received
from edgedns.vip.router import Announce, Became, Release, Router, RouterSettings, Send, State, Take
from edgedns.vip.settings import VirtualAddress, VrrpSettings

log = logging.getLogger(__name__)

RECEIVE_BATCH = 64
"""Adverts read per wake-up: a flood of forged ones cannot hold the thread."""
STOP_WAIT = 2.0
RESTART_AFTER = 1.0
OPEN_WAIT = 10.0
CARRIER_CHECK = 0.1
"""Seconds between looks at the link's carrier (a read of /sys, a few microseconds)."""

Changed = Callable[[int, State, str], None]
"""(IP version, new state, reason): called on the agent's thread."""


@dataclass(slots=True)
class Counters:
    sent: int = 0
    received: int = 0
    dropped: int = 0
    """Adverts refused: wrong TTL, checksum, version, password or sender."""
    announcements: int = 0
    address_errors: int = 0


class VipAgent:
    def __init__(self, settings: VrrpSettings, changed: Changed | None = None) -> None:
        self.settings = settings
        self.changed = changed
        self.link = Link(settings.interface, settings.families())
        self.routers: dict[int, Router] = {}
        self.addresses = {family: tuple(a for a in settings.addresses if a.family == family)
                          for family in settings.families()}
        self.counters = Counters()
        self.failures = 0
        """Times the agent's thread failed and restarted its routers."""
        self.since: dict[int, float] = {}
        """When each router entered its state (wall clock)."""
        self._lock = threading.Lock()
        self._faults: dict[str, str] = {}
        self._degraded: str | None = None
        self._stopping = False
        self._applied: tuple[str | None, str | None] = (None, None)
        self._announce: dict[int, tuple[float, int]] = {}
        """Per family: when the next announcement is due, and how many are left."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="edgedns-vrrp", daemon=True)
        self._opened = threading.Event()
        self._open_error: LinkError | None = None

    def start(self) -> None:
        """Open the link, remove addresses a crashed run left behind, start the routers.
        Raises `LinkError`. (All netlink work happens on the agent's thread: pyroute2 runs
        an event loop of its own in the thread that calls it.)"""
        self._thread.start()
        if not self._opened.wait(OPEN_WAIT):
            raise LinkError(f"vrrp: opening {self.link.name} took over {OPEN_WAIT:.0f}s")
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def _open(self) -> None:
        link = self.link
        link.open()
        virtual = {a.address for a in self.settings.addresses}
        for family in self.settings.families():
            own = link.own_address(family, virtual)
            if own is None:
                link.close()
                kind = "IPv4 address" if family == 4 else "IPv6 link-local address"
                raise LinkError(f"vrrp.interface: {link.name} has no {kind} of its own to "
                                "send adverts from")
            self.routers[family] = Router(RouterSettings(
                self.settings.vrid, self.settings.priority, self.settings.advert_interval,
                self.settings.preempt, tuple(a.address for a in self.addresses[family]), own,
                self.settings.version))
            for address in self.addresses[family]:
                if link.holds(address):
                    log.warning("vrrp: removing %s from %s, left by an earlier run", address,
                                link.name)
                    link.remove(address)

    def stop(self) -> None:
        """Hand over (a master sends priority 0 and removes its addresses) and end."""
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT)
        self._wake_r.close()
        self._wake_w.close()

    def set_fault(self, source: str, reason: str | None) -> None:
        """`source` ("dns", "track mqtt") says this node must not hold the addresses,
        because of `reason`; None clears it."""
        with self._lock:
            if reason is None:
                self._faults.pop(source, None)
            else:
                self._faults[source] = reason
        self._wake()

    def set_degraded(self, reason: str | None) -> None:
        with self._lock:
            self._degraded = reason
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass  # already signalled, or stopped

    def _run(self) -> None:
        """Serve until stopped; after a failure (a bug), hand over, count it and start the
        routers again a second later, as the supervisor does for the loop's tasks."""
        try:
            self._open()
        except Exception as exc:
            self._open_error = exc if isinstance(exc, LinkError) else LinkError(
                f"vrrp: cannot open {self.link.name}: {exc}")
            self.link.close()
            return
        finally:
            self._opened.set()
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        for family, sock in self.link.sockets.items():
            selector.register(sock, selectors.EVENT_READ, family)
        try:
            while True:
                try:
                    self._serve(selector)
                    return
                except Exception:
                    self.failures += 1
                    log.exception("vrrp: the agent failed; handing over and restarting in "
                                  "%.0fs", RESTART_AFTER)
                    for family, router in self.routers.items():
                        self._carry_out(family, router.stop())
                        self.routers[family] = Router(router.settings)
                    self._applied = (None, None)
                    with self._lock:
                        if self._stopping:
                            return
                    time.sleep(RESTART_AFTER)
        finally:
            selector.close()
            self.link.close()

    def _serve(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        self._apply_inputs(now)
        for family, router in self.routers.items():
            self._carry_out(family, router.start(now))
        carrier_due = 0.0
        while True:
            now = time.monotonic()
            if now >= carrier_due:
                carrier_due = now + CARRIER_CHECK
                self._check_carrier()
            due = min([r.deadline for r in self.routers.values()]
                      + [t for t, _ in self._announce.values()] + [carrier_due])
            timeout = max(due - time.monotonic(), 0)
            for key, _ in selector.select(timeout):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                else:
                    self._receive(key.data)
            now = time.monotonic()
            if self._apply_inputs(now):
                return
            for family, router in self.routers.items():
                self._carry_out(family, router.expire(now))
            self._announce_due(now)

    def _check_carrier(self) -> None:
        """A link without carrier faults the routers (as keepalived does): they give the
        addresses up, and come back as backups when it returns, so the address stays with
        whoever took over meanwhile (unless `preempt`)."""
        up = self.link.has_carrier()
        with self._lock:
            known = "link" not in self._faults
            if up == known:
                return
            if up:
                del self._faults["link"]
            else:
                self._faults["link"] = f"{self.link.name} has no carrier"

    def _apply_inputs(self, now: float) -> bool:
        """Tell the routers what changed; True when they have been stopped."""
        with self._lock:
            fault = next(iter(self._faults.values()), None)
            degraded, stopping = self._degraded, self._stopping
        if stopping:
            for family, router in self.routers.items():
                self._carry_out(family, router.stop())
            return True
        if (fault, degraded) != self._applied:
            self._applied = (fault, degraded)
            for family, router in self.routers.items():
                self._carry_out(family, router.set_fault(fault, now))
                self._carry_out(family, router.set_degraded(degraded, now))
        return False

    def _receive(self, family: int) -> None:
        router = self.routers[family]
        for _ in range(RECEIVE_BATCH):
            got = self.link.receive(family)
            if got is None:
                return
            if got.source == router.settings.primary:
                continue  # our own, looped back
            advert = self._accept(family, got)
            if advert is None:
                self.counters.dropped += 1
                continue
            self.counters.received += 1
            self._carry_out(family, router.advert(advert, got.source, time.monotonic()))

    def _accept(self, family: int, got: Received) -> packet.Advert | None:
        settings = self.settings
        if got.ttl != packet.TTL:
            return None
        if settings.unicast_peers and got.source not in settings.unicast_peers:
            return None
        try:
            advert = packet.decode(got.data, family, got.source, got.destination)
        except packet.BadAdvert as exc:
            log.debug("vrrp: advert from %s refused: %s", got.source, exc)
            return None
        if advert.version != settings.version or advert.vrid != settings.vrid:
            return None
        if settings.version == 2 and advert.auth_pass != settings.auth_pass:
            return None
        return advert

    def _carry_out(self, family: int, actions: list) -> None:
        router = self.routers[family]
        for action in actions:
            if isinstance(action, Send):
                self._send(family, router, action.priority)
            elif isinstance(action, Take):
                for address in self.addresses[family]:
                    self._change_address(address, add=True)
                self._announce[family] = (0.0, self.settings.announce_count)
                self._announce_due(time.monotonic())
            elif isinstance(action, Announce):
                self._announce[family] = (0.0, self.settings.announce_count)
                self._announce_due(time.monotonic())
            elif isinstance(action, Release):
                self._announce.pop(family, None)
                for address in self.addresses[family]:
                    self._change_address(address, add=False)
            elif isinstance(action, Became):
                self.since[family] = time.time()
                log.info("vrrp IPv%d vrid %d: %s (%s)", family, router.settings.vrid,
                         action.state.value.upper(), action.reason)
                if self.changed is not None:
                    self.changed(family, action.state, action.reason)

    def _change_address(self, address: VirtualAddress, add: bool) -> None:
        try:
            if add:
                self.link.add(address)
            else:
                self.link.remove(address)
        except LinkError as exc:
            self.counters.address_errors += 1
            log.error("vrrp: %s", exc)

    def _send(self, family: int, router: Router, priority: int) -> None:
        settings = self.settings
        advert = packet.Advert(settings.version, settings.vrid, priority,
                               settings.advert_interval, router.settings.addresses,
                               settings.auth_pass)
        group = packet.GROUP_V4 if family == 4 else packet.GROUP_V6
        for destination in settings.unicast_peers or (group,):
            wire = packet.encode(advert, router.settings.primary, destination)
            self.link.send(family, wire, router.settings.primary, destination)
            self.counters.sent += 1

    def _announce_due(self, now: float) -> None:
        for family, (due, left) in list(self._announce.items()):
            if now < due:
                continue
            for address in self.addresses[family]:
                self.link.announce(address)
                self.counters.announcements += 1
            if left > 1:
                self._announce[family] = (now + self.settings.announce_interval, left - 1)
            else:
                del self._announce[family]

    def status(self) -> list[dict]:
        """Each virtual router as /status shows it."""
        with self._lock:
            faults = dict(self._faults)
        out = []
        for family, router in sorted(self.routers.items()):
            out.append({
                "family": f"IPv{family}",
                "vrid": router.settings.vrid,
                "state": router.state.value,
                "reason": router.reason,
                "since": self.since.get(family),
                "priority": router.priority,
                "configured_priority": router.settings.priority,
                "master": router.master,
                "self": router.settings.primary,
                "addresses": [str(a) for a in self.addresses[family]],
                "advert_interval": router.master_interval,
                "transitions": router.transitions,
                "faults": faults,
                "degraded": router.degraded,
            })
        return out
