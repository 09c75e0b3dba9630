"""Supervised background tasks: one that dies of an unexpected exception is logged with its
traceback, counted and started again, after a pause that doubles while it keeps failing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edgedns import supervisor as supervisor_mod
from edgedns.supervisor import Supervisor


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch) -> None:
    monkeypatch.setattr(supervisor_mod, "FIRST_PAUSE", 0.01)
    monkeypatch.setattr(supervisor_mod, "MAX_PAUSE", 0.04)


def test_a_task_that_raises_is_logged_counted_and_started_again(caplog) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("a bug")
        await asyncio.sleep(3600)

    async def body() -> Supervisor:
        supervisor = Supervisor()
        supervisor.start("flaky", flaky)
        for _ in range(200):
            if len(runs) == 3:
                break
            await asyncio.sleep(0.01)
        assert supervisor.running("flaky")
        await supervisor.stop()
        return supervisor

    supervisor = asyncio.run(body())
    assert len(runs) == 3
    assert supervisor.restarts == {"flaky": 2}
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert failures[0].getMessage().startswith("background task flaky failed")
    assert failures[0].exc_info is not None  # the traceback is in the log


def test_the_pause_doubles_while_a_task_keeps_failing(monkeypatch) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(supervisor_mod.asyncio, "sleep", recorded)

    async def broken() -> None:
        raise RuntimeError("always")

    async def body() -> None:
        supervisor = Supervisor()
        supervisor.start("broken", broken)
        while len(pauses) < 5:
            await real_sleep(0)
        await supervisor.stop()

    asyncio.run(body())
    assert pauses[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]


def test_a_task_that_returns_is_done_and_not_restarted() -> None:
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    async def body() -> Supervisor:
        supervisor = Supervisor()
        supervisor.start("once", once)
        await asyncio.sleep(0.1)
        assert not supervisor.running("once")
        return supervisor

    assert asyncio.run(body()).restarts == {"once": 0}
    assert runs == [1]


def test_stop_cancels_and_waits_for_the_task() -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def body() -> None:
        supervisor = Supervisor()
        supervisor.start("forever", forever)
        await asyncio.sleep(0)
        await supervisor.stop("forever")
        assert not supervisor.running("forever")

    asyncio.run(body())
    assert cancelled == [True]
