"""Control-plane helpers of the server: reloads that coalesce, and files watched until they
settle. Neither does work that grows with the data on the event loop: the watcher only
`stat`s, and the reload's build runs on the server's worker thread (see `Server.reload`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

Signature = tuple[int, int, int] | None
"""What `stat` says of a file (mtime in ns, size, inode); None when it cannot be read."""
UNREAD: Signature = (-1, -1, -1)
"""Stands for a file whose content a reload may not have read whole: it differs from any
real signature, so the watcher reloads once the file settles."""


def signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Coalescer:
    """Runs an async job one at a time; calls made while it runs collapse into one more run,
    started once the running one ends, whose result they all get."""

    def __init__(self, job: Callable[[str], Awaitable[bool]]) -> None:
        self.job = job
        self.runs = 0
        """Jobs started (for tests and metrics: how far requests were coalesced)."""
        self._running: asyncio.Task[bool] | None = None
        self._queued: asyncio.Task[bool] | None = None

    def request(self, reason: str) -> asyncio.Task[bool]:
        """Start the job, or join the one queued behind the running one; its task."""
        if self._queued is not None:
            return self._queued
        loop = asyncio.get_running_loop()
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._run(reason), name=f"reload ({reason})")
            return self._running
        self._queued = loop.create_task(self._after(self._running, reason),
                                        name=f"reload ({reason}, queued)")
        return self._queued

    async def __call__(self, reason: str) -> bool:
        return await asyncio.shield(self.request(reason))

    async def _run(self, reason: str) -> bool:
        self.runs += 1
        return await self.job(reason)

    async def _after(self, previous: asyncio.Task[bool], reason: str) -> bool:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.shield(previous)
        self._running, self._queued = self._queued, None
        return await self._run(reason)

    async def wait(self) -> None:
        """Until no job runs or waits (cancelling none)."""
        for task in (self._running, self._queued):
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(task)

    def cancel(self) -> None:
        for task in (self._running, self._queued):
            if task is not None:
                task.cancel()


class FileWatch:
    """Notices edits to files, and reports them only once they have settled: the same new
    `signature` on two checks in a row, one check interval apart, so a file still being
    written (or copied in pieces) never triggers a reload."""

    def __init__(self) -> None:
        self._known: dict[Path, Signature] = {}
        """Per file, the signature the last reload attempt read."""
        self._seen: dict[Path, Signature] = {}
        """Per file, the signature the previous check saw."""

    def known(self, signatures: dict[Path, Signature]) -> None:
        """Files a reload attempt read and what they were when it started; they are watched
        from now on (only these: an earlier attempt's files no longer matter)."""
        self._known = dict(signatures)
        self._seen = dict(signatures)

    def settled_change(self) -> bool:
        """Check every file once: True when one differs from what the last attempt read and
        is unchanged since the previous check."""
        settled = False
        for path, known in self._known.items():
            now = signature(path)
            if now != known and now == self._seen.get(path):
                settled = True
            self._seen[path] = now
        return settled

    @staticmethod
    def snapshot(paths: Iterable[Path]) -> dict[Path, Signature]:
        return {path: signature(path) for path in paths}
