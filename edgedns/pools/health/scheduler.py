"""The prober engine: every target probed once per interval, on time, concurrently, bounded.

One task keeps a heap of due times, one entry per target, so the schedule costs nothing per
idle target. A target is probed at once when added (deterministic startup), then at a random
phase within its first interval (so thousands of targets do not probe in lock-step), then
every `interval` exactly, measured from when its probe was due, not when it ran. Probes run
as tasks, at most `max_concurrent` at a time; a probe that outlives its `timeout` fails.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from edgedns.pools.health import http, tcp
from edgedns.pools.health.checks import ProbeResult, Target
from edgedns.pools.health.icmp import IcmpProber
from edgedns.supervisor import Supervisor

log = logging.getLogger(__name__)

ResultSink = Callable[[Target, ProbeResult], bool | None]
"""Takes a probe's result; True asks for the next probe after `retry_interval` instead of
`interval` (a change is being confirmed)."""

TASK = "health-scheduler"
DEFAULT_MAX_CONCURRENT = 1000
STALLED_INTERVALS = 3
"""No probe result for this many of the shortest (interval + timeout): the engine is stuck."""
BATCH_WINDOW = 0.005
"""Seconds early a probe may start, so one wake-up starts every probe due that soon."""


class Scheduler:
    def __init__(
        self,
        on_result: ResultSink,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        clock: Callable[[], float] = time.monotonic,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.on_result = on_result
        self.clock = clock
        self.max_concurrent = max_concurrent
        self.max_lateness = 0.0
        """Largest delay seen between a probe's due time and its start, in seconds."""
        self.probes_started = 0
        self._targets: set[Target] = set()
        self._fresh: set[Target] = set()
        self._inflight: set[Target] = set()
        """Targets taken off the heap whose probe has not finished; it reschedules them."""
        self._heap: list[tuple[float, int, Target]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running: set[asyncio.Task[None]] = set()
        self._icmp: IcmpProber | None = None
        self._icmp_probes: dict[Target, Callable[[], None]] = {}
        """ICMP probes in flight (no task each): how to abandon them when stopping."""
        self.supervisor = supervisor or Supervisor()
        self.probe_errors = 0
        """Probes that raised instead of returning a result (a checker bug), each logged."""
        self.last_result: float | None = None
        """Clock time of the last probe result (or of `start`); None before `start`."""
        self._tls = {verify: http.tls_context(verify) for verify in (False, True)}

    def set_targets(self, targets: Iterable[Target]) -> None:
        """Probe exactly `targets` from now on: new ones at once, dropped ones no more."""
        wanted = set(targets)
        now = self.clock()
        for target in wanted - self._targets:
            if target not in self._inflight:  # else its running probe reschedules it: no overlap
                heapq.heappush(self._heap, (now, next(self._order), target))
            self._fresh.add(target)
        self._targets = wanted
        self._fresh &= wanted
        self._heap = [entry for entry in self._heap if entry[2] in wanted]
        heapq.heapify(self._heap)
        self._wake.set()

    def start(self, icmp: IcmpProber | None) -> None:
        """Start probing, as the supervised task `health-scheduler`; `icmp` must be given
        when any target is an ICMP check."""
        self._icmp = icmp
        self.last_result = self.clock()
        self.supervisor.start(TASK, self._run)

    async def stop(self) -> None:
        await self.supervisor.stop(TASK)
        for abandon in list(self._icmp_probes.values()):
            abandon()
        self._icmp_probes.clear()
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    def stalled(self) -> float | None:
        """Seconds since the last probe result when that is over `STALLED_INTERVALS` of the
        shortest check interval (the engine is stuck), else None."""
        if self.last_result is None or not self._targets:
            return None
        quiet = self.clock() - self.last_result
        shortest = min(target.interval + target.timeout for target in self._targets)
        return quiet if quiet > STALLED_INTERVALS * shortest else None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Probes due within BATCH_WINDOW start together: one wake-up serves them all.
            while self._heap and self._heap[0][0] <= self.clock() + BATCH_WINDOW:
                await self._slots.acquire()
                if not (self._heap and self._heap[0][0] <= self.clock() + BATCH_WINDOW):
                    self._slots.release()  # the heap changed while we waited for a slot
                    break
                due, order, target = heapq.heappop(self._heap)
                try:
                    self._inflight.add(target)
                    self.max_lateness = max(self.max_lateness, self.clock() - due)
                    self.probes_started += 1
                    if target.type == "icmp":
                        self._begin_icmp(target, due)
                        continue
                    task = loop.create_task(self._probe(target, due))
                except BaseException:  # not started: the target keeps its turn, if restarted
                    self._inflight.discard(target)
                    self._slots.release()
                    heapq.heappush(self._heap, (due, order, target))
                    raise
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            self._wake.clear()
            timer = None
            if self._heap:
                timer = loop.call_later(max(self._heap[0][0] - self.clock(), 0), self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    async def _probe(self, target: Target, due: float) -> None:
        # A timer cancelling this task bounds the probe: cheaper than wait_for's extra task,
        # which counts at thousands of probes a second.
        task = asyncio.current_task()
        assert task is not None
        expired: list[bool] = []
        timer = asyncio.get_running_loop().call_later(
            target.timeout, lambda: (expired.append(True), task.cancel()))
        try:
            result = await self._check(target)
        except asyncio.CancelledError:
            if not expired:
                raise  # the scheduler is stopping
            result = ProbeResult(False, f"timeout after {target.timeout * 1000:.0f}ms")
        except Exception as exc:  # a checker bug is a failed probe, not a dead scheduler
            self.probe_errors += 1
            log.exception("probe of %s failed unexpectedly", target)
            result = ProbeResult(False, f"probe error: {exc}")
        finally:
            timer.cancel()
            self._slots.release()
            self._inflight.discard(target)
        self._deliver(target, due, result)

    def _begin_icmp(self, target: Target, due: float) -> None:
        """An ICMP probe without a task: the prober calls back with the reply or the timeout
        it keeps itself (`IcmpProber.begin`)."""
        def done(result: ProbeResult) -> None:
            self._icmp_probes.pop(target, None)
            self._slots.release()
            self._inflight.discard(target)
            try:
                self._deliver(target, due, result)
            except Exception:  # called from the prober's reader: never let it fail there
                self.probe_errors += 1
                log.exception("handling the result of %s failed", target)

        assert self._icmp is not None, "ICMP targets need an open IcmpProber"
        abandon = self._icmp.begin(target, done)
        if target in self._inflight:  # not finished at once (a send failure)
            self._icmp_probes[target] = abandon

    def _deliver(self, target: Target, due: float, result: ProbeResult) -> None:
        self.last_result = self.clock()
        if target in self._targets:
            settling = False
            try:
                settling = bool(self.on_result(target, result))
            finally:
                self._schedule_next(target, due, settling)

    def _schedule_next(self, target: Target, due: float, settling: bool) -> None:
        # The first follow-up comes at a random phase of the interval, spreading targets
        # added together; later ones keep that phase. A change being confirmed is probed
        # again after `retry_interval` (or as soon as the probe ended, if it took longer).
        first = target in self._fresh
        self._fresh.discard(target)
        if settling:
            step = target.retry_interval
        else:
            step = target.interval * (random.uniform(0.1, 1.0) if first else 1.0)
        next_due = max(due + step, self.clock())
        earliest = self._heap[0][0] if self._heap else float("inf")
        heapq.heappush(self._heap, (next_due, next(self._order), target))
        if next_due < earliest:
            self._wake.set()  # the scheduler sleeps until `earliest`: wake it sooner

    def _check(self, target: Target) -> Awaitable[ProbeResult]:
        if target.type == "tcp":
            return tcp.probe(target)
        if target.type in ("http", "https"):
            tls = self._tls[target.verify_tls] if target.type == "https" else None
            return http.probe(target, tls)
        raise ValueError(f"no checker for type {target.type!r}")  # 'none' is never scheduled
