"""Supervision of the server's long-lived background tasks (the health scheduler, the config
watcher): a task that dies of an unexpected exception is logged with its traceback, counted,
and started again after a pause that doubles while it keeps failing, so a bug freezes
nothing for good (health would otherwise stay wherever it stood) and a crash loop cannot
spin the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

FIRST_PAUSE = 0.1
"""Seconds before the first restart; doubled for each failure in a row, up to `MAX_PAUSE`."""
MAX_PAUSE = 5.0
HEALTHY_RUN = 30.0
"""A task that ran this many seconds before failing starts again at `FIRST_PAUSE`."""


class Supervisor:
    def __init__(self) -> None:
        self.restarts: dict[str, int] = {}
        """Per task name, how many times it died and was started again."""
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` as the task `name` (replacing one of that name), restarting it on
        failure. A task that returns is done and not restarted."""
        old = self._tasks.pop(name, None)
        if old is not None:
            old.cancel()
        self.restarts.setdefault(name, 0)
        self._tasks[name] = asyncio.get_running_loop().create_task(self._keep(name, run),
                                                                    name=name)

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def stop(self, name: str | None = None) -> None:
        """Cancel the task `name`, or every task, and wait for them to end."""
        names = [name] if name is not None else list(self._tasks)
        tasks = [task for n in names if (task := self._tasks.pop(n, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        pause = FIRST_PAUSE
        while True:
            started = loop.time()
            try:
                await run()
                return
            except Exception:
                if loop.time() - started >= HEALTHY_RUN:
                    pause = FIRST_PAUSE
                self.restarts[name] += 1
                log.exception("background task %s failed; starting it again in %.1f s", name,
                              pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
