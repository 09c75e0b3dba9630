"""The prober engine: probes on time, concurrently and bounded, surviving checker failures.

The checkers are replaced by `FakeChecks` (monkeypatching `Scheduler._check`), which records
when each probe starts and how many run at once. Intervals are short (0.1-0.4 s) and every
assertion on timing has wide margins, since the machine running the tests may be loaded.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import statistics
import time
from collections import Counter
from collections.abc import Callable

import pytest

from edgedns import supervisor as supervisor_mod
from edgedns.pools.health import http, tcp
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target
from edgedns.pools.health.scheduler import Scheduler

OK = ProbeResult(True, "connected", 0.001)


def target(n: int = 1, interval: float = 0.2, timeout: float = 0.1, kind: str = "tcp",
           **check) -> Target:
    spec = CheckSpec(type=kind, port=None if kind == "icmp" else 9, interval=interval,
                     timeout=timeout, **check)
    return Target.for_member(spec, f"127.0.0.{n}")


class FakeChecks:
    """Stands in for every checker: sleeps `delay`, then answers `result` (or raises what
    `raises` yields for that call), recording starts, cancellations and concurrency."""

    def __init__(self, delay: float = 0.0, raises=lambda call: None) -> None:
        self.delay = delay
        self.raises = raises
        self.starts: list[tuple[Target, float]] = []
        self.cancelled = 0
        self.running: Counter[Target] = Counter()
        self.max_running = 0
        self.max_running_per_target = 0

    async def __call__(self, target: Target) -> ProbeResult:
        self.starts.append((target, time.monotonic()))
        self.running[target] += 1
        self.max_running = max(self.max_running, sum(self.running.values()))
        self.max_running_per_target = max(self.max_running_per_target, self.running[target])
        try:
            await asyncio.sleep(self.delay)
            error = self.raises(len(self.starts))
            if error is not None:
                raise error
            return OK
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running[target] -= 1

    def times(self, of: Target) -> list[float]:
        return [t for target, t in self.starts if target == of]


@pytest.fixture
def checks(monkeypatch) -> FakeChecks:
    fake = FakeChecks()
    monkeypatch.setattr(Scheduler, "_check", lambda self, target: fake(target))
    return fake


class Results:
    """The scheduler's result sink, with a bounded wait for a number of results."""

    def __init__(self) -> None:
        self.got: list[tuple[Target, ProbeResult, float]] = []
        self._changed = asyncio.Event()

    def __call__(self, target: Target, result: ProbeResult) -> None:
        self.got.append((target, result, time.monotonic()))
        self._changed.set()

    def of(self, target: Target) -> list[ProbeResult]:
        return [r for t, r, _ in self.got if t == target]

    async def wait_for(self, count: int, target: Target | None = None, within: float = 5.0):
        async def enough() -> None:
            while len(self.got if target is None else self.of(target)) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(enough(), within)


def run(main, *targets: Target, max_concurrent: int = 1000):
    """Run `main(scheduler, results)` with a started scheduler probing `targets`."""

    async def wrapper():
        results = Results()
        scheduler = Scheduler(results, max_concurrent=max_concurrent)
        scheduler.set_targets(targets)
        scheduler.start(None)
        try:
            return await main(scheduler, results)
        finally:
            await asyncio.wait_for(scheduler.stop(), 5)

    return asyncio.run(wrapper())


def test_new_targets_are_probed_at_once(checks) -> None:
    a, b = target(1, interval=5.0), target(2, interval=5.0)

    async def main(scheduler: Scheduler, results: Results) -> float:
        started = time.monotonic()
        await results.wait_for(2)
        await asyncio.sleep(0.3)
        return started

    started = run(main, a, b)
    assert [t for t, _ in checks.starts] in ([a, b], [b, a])  # once each, not yet again
    assert all(t - started < 1.5 for _, t in checks.starts)  # the next is 2.5 s away at least


def test_targets_added_later_are_probed_at_once(checks) -> None:
    a, b = target(1, interval=5.0), target(2, interval=5.0)

    async def main(scheduler: Scheduler, results: Results) -> float:
        await results.wait_for(1, a)
        added = time.monotonic()
        scheduler.set_targets([a, b])
        await results.wait_for(1, b, within=1.5)
        return added

    added = run(main, a)
    assert checks.times(b)[0] - added < 1.5
    assert len(checks.times(a)) == 1  # keeping a target does not probe it again early


def test_the_first_follow_up_comes_at_a_random_phase_within_the_interval(checks) -> None:
    targets = [target(n, interval=0.4) for n in range(1, 11)]

    async def main(scheduler: Scheduler, results: Results) -> None:
        for t in targets:
            await results.wait_for(2, t)

    run(main, *targets)
    gaps = [checks.times(t)[1] - checks.times(t)[0] for t in targets]
    assert all(0.03 <= gap <= 0.4 + 0.3 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.02  # spread out, not in lock-step


def test_a_target_is_then_probed_every_interval(checks) -> None:
    t = target(1, interval=0.2)

    async def main(scheduler: Scheduler, results: Results) -> None:
        await results.wait_for(10, t, within=10)

    run(main, t)
    starts = checks.times(t)
    steady = starts[1:10]  # after the random first phase
    assert (steady[-1] - steady[0]) / (len(steady) - 1) == pytest.approx(0.2, abs=0.05)
    gaps = [b - a for a, b in zip(steady, steady[1:], strict=False)]
    assert statistics.median(gaps) == pytest.approx(0.2, abs=0.07)


def test_a_removed_target_is_no_longer_probed(checks) -> None:
    kept, dropped = target(1, interval=0.15), target(2, interval=0.15)

    async def main(scheduler: Scheduler, results: Results) -> tuple[int, int]:
        await results.wait_for(2, dropped)
        scheduler.set_targets([kept])
        probed, answered = len(checks.times(dropped)), len(results.of(dropped))
        kept_before = len(checks.times(kept))
        await asyncio.sleep(0.8)
        assert len(checks.times(kept)) >= kept_before + 3  # the scheduler is still running
        return probed, answered

    probed, answered = run(main, kept, dropped)
    assert len(checks.times(dropped)) == probed
    assert answered == 2


def test_a_target_removed_during_its_probe_gets_no_result(checks) -> None:
    checks.delay = 0.2
    t = target(1, interval=1.0, timeout=0.5)

    async def main(scheduler: Scheduler, results: Results) -> list:
        while not checks.starts:
            await asyncio.sleep(0.01)
        scheduler.set_targets([])
        await asyncio.sleep(0.5)
        return results.got

    assert run(main, t) == []
    assert checks.cancelled == 0  # the probe ran to its end; only its result was dropped


def test_a_target_removed_and_readded_during_its_probe_is_not_probed_twice_at_once(
    checks,
) -> None:
    checks.delay = 0.15
    t = target(1, interval=0.3, timeout=0.25)

    async def main(scheduler: Scheduler, results: Results) -> None:
        while not checks.starts:
            await asyncio.sleep(0.01)
        scheduler.set_targets([])
        scheduler.set_targets([t])
        await results.wait_for(4, t, within=5)

    run(main, t)
    assert checks.max_running_per_target == 1


def test_probes_run_concurrently_up_to_max_concurrent(checks) -> None:
    checks.delay = 0.1
    targets = [target(n, interval=5.0, timeout=1.0) for n in range(1, 11)]

    async def main(scheduler: Scheduler, results: Results) -> None:
        await results.wait_for(10)

    run(main, *targets, max_concurrent=3)
    assert checks.max_running == 3
    assert Counter(t for t, _ in checks.starts) == Counter(targets)  # each once


def test_probes_of_different_targets_overlap(checks) -> None:
    checks.delay = 0.3
    targets = [target(n, interval=5.0, timeout=1.0) for n in range(1, 6)]

    async def main(scheduler: Scheduler, results: Results) -> float:
        started = time.monotonic()
        await results.wait_for(5)
        return time.monotonic() - started

    elapsed = run(main, *targets)
    assert checks.max_running == 5
    assert elapsed < 1.2  # well under 5 × 0.3 s one after another


def test_a_probe_exceeding_its_timeout_fails_and_is_cancelled(checks) -> None:
    checks.delay = 30.0
    t = target(1, interval=5.0, timeout=0.1)

    async def main(scheduler: Scheduler, results: Results) -> float:
        started = time.monotonic()
        await results.wait_for(1, within=3)
        return results.got[0][2] - started

    took = run(main, t)
    assert checks.cancelled == 1
    assert took == pytest.approx(0.1, abs=0.5)


def test_a_timed_out_probe_reports_timeout_after_the_timeout_in_ms(checks) -> None:
    checks.delay = 30.0
    t = target(1, interval=5.0, timeout=0.15)

    async def main(scheduler: Scheduler, results: Results) -> list[ProbeResult]:
        await results.wait_for(1, within=3)
        return results.of(t)

    assert run(main, t) == [ProbeResult(False, "timeout after 150ms")]


def test_max_lateness_records_how_late_a_due_probe_started(checks) -> None:
    t = target(1, interval=0.1, timeout=0.05)

    async def main(scheduler: Scheduler, results: Results) -> tuple[float, float]:
        await results.wait_for(1)
        before = scheduler.max_lateness
        time.sleep(0.6)  # the event loop is stuck while the next probe falls due
        await results.wait_for(3)
        return before, scheduler.max_lateness

    before, after = run(main, t)
    assert before < 0.3
    assert after >= 0.35


def test_probes_started_counts_every_probe(checks) -> None:
    t = target(1, interval=0.1, timeout=0.05)

    async def main(scheduler: Scheduler, results: Results) -> int:
        await results.wait_for(4)
        return scheduler.probes_started

    assert run(main, t) == len(checks.starts)


def test_a_checker_raising_counts_as_a_failure_and_the_scheduler_keeps_running(
    checks, caplog,
) -> None:
    checks.raises = lambda call: RuntimeError("boom") if call == 1 else None
    t = target(1, interval=0.1, timeout=0.05)

    async def main(scheduler: Scheduler, results: Results) -> list[ProbeResult]:
        await results.wait_for(3)
        return results.of(t)

    with caplog.at_level(logging.ERROR, logger="edgedns.pools.health.scheduler"):
        got = run(main, t)
    assert got[0] == ProbeResult(False, "probe error: boom")
    assert got[1:3] == [OK, OK]
    assert "probe of tcp 127.0.0.1:9 failed unexpectedly" in caplog.messages


def test_while_a_change_is_being_confirmed_probes_come_every_retry_interval(checks) -> None:
    t = target(1, interval=1.0, timeout=0.05, retry_interval=0.05)
    settling = [False, True, True, False, False]  # what the sink says after each result

    async def main() -> list[float]:
        got: list[int] = []

        def sink(target: Target, result: ProbeResult) -> bool:
            got.append(1)
            return settling[len(got) - 1] if len(got) <= len(settling) else False

        scheduler = Scheduler(sink)
        scheduler.set_targets([t])
        scheduler.start(None)
        try:
            while len(got) < 4:
                await asyncio.sleep(0.01)
        finally:
            await scheduler.stop()
        return checks.times(t)

    starts = asyncio.run(asyncio.wait_for(main(), 10))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # After the first (fresh) probe, a random phase of the interval; then two retries 50 ms
    # apart; then back to the interval.
    assert 0.04 <= gaps[1] < 0.3 and 0.04 <= gaps[2] < 0.3
    assert gaps[0] >= 0.09


def test_a_checker_raising_is_counted(checks) -> None:
    checks.raises = lambda call: RuntimeError("boom") if call <= 2 else None
    t = target(1, interval=0.1, timeout=0.05)

    async def main(scheduler: Scheduler, results: Results) -> int:
        await results.wait_for(3)
        return scheduler.probe_errors

    assert run(main, t) == 2


def test_a_bug_in_the_scheduler_loop_restarts_it_and_no_target_loses_its_turn(
    checks, monkeypatch, caplog,
) -> None:
    monkeypatch.setattr(supervisor_mod, "FIRST_PAUSE", 0.01)
    a, b = target(1, interval=0.1, timeout=0.05), target(2, interval=0.1, timeout=0.05)
    calls = Counter[str]()

    async def main(scheduler: Scheduler, results: Results) -> dict[str, int]:
        loop = asyncio.get_running_loop()
        original = loop.create_task

        def failing_once(coro, **kwargs):
            calls["create_task"] += 1
            if calls["create_task"] == 3:  # the scheduler starting its third probe
                coro.close()
                raise RuntimeError("a scheduler bug")
            return original(coro, **kwargs)

        loop.create_task = failing_once  # type: ignore[method-assign]
        try:
            await results.wait_for(4, a)
            await results.wait_for(4, b)
        finally:
            del loop.create_task
        return dict(scheduler.supervisor.restarts)

    with caplog.at_level(logging.ERROR, logger="edgedns.supervisor"):
        restarts = run(main, a, b)
    assert restarts == {"health-scheduler": 1}
    assert any("background task health-scheduler failed" in m for m in caplog.messages)


def test_the_engine_is_stalled_after_three_intervals_without_a_result(checks) -> None:
    t = target(1, interval=0.1, timeout=0.05)

    async def main(scheduler: Scheduler, results: Results) -> tuple:
        await results.wait_for(1)
        running = scheduler.stalled()
        await scheduler.supervisor.stop("health-scheduler")  # as if it hung
        await asyncio.sleep(3 * 0.15 + 0.2)
        return running, scheduler.stalled()

    running, stopped = run(main, t)
    assert running is None
    assert stopped is not None and stopped > 0.45


def test_stop_cancels_running_probes_and_delivers_no_more_results(checks) -> None:
    checks.delay = 30.0
    t = target(1, interval=5.0, timeout=5.0)

    async def main() -> tuple[list, float]:
        results = Results()
        scheduler = Scheduler(results)
        scheduler.set_targets([t])
        scheduler.start(None)
        while not checks.starts:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.wait_for(scheduler.stop(), 3)
        took = time.monotonic() - started
        await asyncio.sleep(0.1)
        return results.got, took

    got, took = asyncio.run(main())
    assert got == []
    assert checks.cancelled == 1
    assert took < 1.0


# --- which checker a target goes to -------------------------------------------------------------


def test_each_target_type_goes_to_its_checker(monkeypatch) -> None:
    calls: list[tuple[str, Target, ssl.SSLContext | None]] = []

    async def fake_tcp(target: Target) -> ProbeResult:
        calls.append(("tcp", target, None))
        return OK

    async def fake_http(target: Target, tls: ssl.SSLContext | None = None) -> ProbeResult:
        calls.append(("http", target, tls))
        return OK

    class FakeIcmp:
        def begin(self, target: Target, done) -> Callable[[], None]:
            calls.append(("icmp", target, None))
            done(OK)
            return lambda: None

    monkeypatch.setattr(tcp, "probe", fake_tcp)
    monkeypatch.setattr(http, "probe", fake_http)
    plain = target(1, interval=5.0, kind="tcp")
    web = target(2, interval=5.0, kind="http")
    secure = target(3, interval=5.0, kind="https")
    verified = target(4, interval=5.0, kind="https", verify_tls=True)
    ping = target(5, interval=5.0, kind="icmp")

    async def main() -> None:
        results = Results()
        scheduler = Scheduler(results)
        scheduler.set_targets([plain, web, secure, verified, ping])
        scheduler.start(FakeIcmp())  # type: ignore[arg-type]
        try:
            await results.wait_for(5)
        finally:
            await scheduler.stop()

    asyncio.run(main())
    by_target = {t: (kind, tls) for kind, t, tls in calls}
    assert by_target[plain] == ("tcp", None)
    assert by_target[ping] == ("icmp", None)
    assert by_target[web] == ("http", None)
    assert by_target[secure][0] == by_target[verified][0] == "http"
    assert by_target[secure][1].verify_mode == ssl.CERT_NONE
    assert by_target[verified][1].verify_mode == ssl.CERT_REQUIRED
