"""Control-plane helpers: reload requests coalesce, and the file watcher reports an edit
only once the file has settled."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from edgedns.server.control import UNREAD, Coalescer, FileWatch, signature


def test_requests_while_a_job_runs_collapse_into_one_more_run() -> None:
    started: list[str] = []

    async def job(reason: str) -> bool:
        started.append(reason)
        await asyncio.sleep(0.01)
        return True

    async def main() -> list[bool]:
        coalescer = Coalescer(job)
        first = coalescer.request("first")
        waiting = [coalescer.request(f"storm {i}") for i in range(100)]
        results = await asyncio.gather(first, *waiting)
        return results

    results = asyncio.run(main())
    assert started == ["first", "storm 0"]
    assert all(results) and len(results) == 101


def test_a_request_after_the_runs_end_starts_a_new_run() -> None:
    runs: list[str] = []

    async def job(reason: str) -> bool:
        runs.append(reason)
        return reason == "b"

    async def main() -> tuple[bool, bool]:
        coalescer = Coalescer(job)
        return await coalescer("a"), await coalescer("b")

    assert asyncio.run(main()) == (False, True)
    assert runs == ["a", "b"]


def test_a_failed_run_does_not_stop_the_queued_one() -> None:
    async def job(reason: str) -> bool:
        if reason == "boom":
            raise RuntimeError(reason)
        return True

    async def main() -> bool:
        coalescer = Coalescer(job)
        failing = coalescer.request("boom")
        queued = coalescer.request("after")
        await asyncio.gather(failing, return_exceptions=True)
        return await queued

    assert asyncio.run(main()) is True


def bump(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(tick, tick))  # distinct mtimes without sleeping


def test_an_edit_is_reported_once_it_is_unchanged_for_a_check(tmp_path) -> None:
    zone = tmp_path / "z.zone"
    bump(zone, "v1", 10**18)
    watch = FileWatch()
    watch.known(FileWatch.snapshot([zone]))
    assert not watch.settled_change()
    bump(zone, "v2 partial", 10**18 + 1)
    assert not watch.settled_change()  # just changed: maybe still being written
    assert watch.settled_change()  # the same on the next check: settled


def test_a_file_still_being_written_is_never_reported(tmp_path) -> None:
    zone = tmp_path / "z.zone"
    bump(zone, "v1", 10**18)
    watch = FileWatch()
    watch.known(FileWatch.snapshot([zone]))
    for i in range(1, 20):
        bump(zone, "x" * i, 10**18 + i)  # grows between every two checks
        assert not watch.settled_change()


def test_a_missing_file_that_appears_is_reported(tmp_path) -> None:
    later = tmp_path / "later.zone"
    watch = FileWatch()
    watch.known(FileWatch.snapshot([later]))
    assert not watch.settled_change()
    later.write_text("now here")
    assert not watch.settled_change()
    assert watch.settled_change()


def test_a_file_read_while_it_changed_is_reported_once_settled(tmp_path) -> None:
    zone = tmp_path / "z.zone"
    zone.write_text("whole")
    watch = FileWatch()
    watch.known({zone: UNREAD})
    assert signature(zone) != UNREAD
    assert not watch.settled_change()
    assert watch.settled_change()
