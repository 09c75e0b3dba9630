"""Hooks: tell the outside world about changes, as keepalived's `notify` scripts do.

Events (a member going down or up, drained or undrained; a pool losing its last healthy
member or getting one back; a reload applied or refused) go into a bounded queue that one
supervised task empties. Each event runs `notify.command` with the event as JSON on its
standard input and as ``EDGEDNS_*`` environment variables, and/or POSTs the same JSON to
`notify.url`. Answers never wait for a hook: a full queue drops the event (counted and
logged), a hook gets `TIMEOUT` seconds a try and `TRIES` tries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

log = logging.getLogger(__name__)

QUEUE = 1000
"""Events waiting at most; more are dropped (and counted) until the queue drains."""
FIELD_MAX = 1000
"""Characters of free text (a refused reload's error) an event carries at most: with
`QUEUE`, the queue stays under about a megabyte."""
TIMEOUT = 10.0
"""Seconds one run of the command, or one POST, may take."""
TRIES = 3
"""Tries per event and hook, 1 s then 2 s apart."""
TASK = "notify"


@dataclass(frozen=True, slots=True)
class NotifySettings:
    command: str | None = None
    """A program run once per event (no shell), the event as JSON on its stdin."""
    url: str | None = None
    """An http(s) URL the event is POSTed to as JSON."""


class Hooks:
    """The queue of events and the runner that delivers them."""

    def __init__(self, settings: NotifySettings | None) -> None:
        self.settings = settings
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self.sent = 0
        self.failed = 0
        """Events a hook could not take after every try."""
        self.dropped = 0
        """Events dropped because the queue was full."""

    def emit(self, event: str, **fields: Any) -> None:
        """Queue `event` with `fields` for the hooks; never blocks, never raises."""
        if self.settings is None:
            return
        item = {"event": event,
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                **fields}
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("notify: %d events dropped, the hooks cannot keep up (queue of %d)",
                            self.dropped, QUEUE)

    async def run(self) -> None:
        """Deliver queued events one after the other (the supervised task `notify`)."""
        while True:
            item = await self.queue.get()
            settings = self.settings
            if settings is None:
                continue
            body = json.dumps(item).encode()
            ok = True
            if settings.command is not None:
                ok &= await self._try(partial(self._command, settings.command, body, item),
                                      "command")
            if settings.url is not None:
                ok &= await self._try(partial(self._post, settings.url, body), "url")
            if ok:
                self.sent += 1
            else:
                self.failed += 1

    async def _try(self, attempt: Callable[[], Awaitable[None]], what: str) -> bool:
        for n in range(TRIES):
            try:
                await asyncio.wait_for(attempt(), TIMEOUT)
                return True
            except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
                reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else exc
                log.warning("notify %s failed (try %d of %d): %s", what, n + 1, TRIES, reason)
            if n + 1 < TRIES:
                await asyncio.sleep(2 ** n)
        return False

    @staticmethod
    async def _command(command: str, body: bytes, item: dict[str, Any]) -> None:
        env = {**os.environ, **{f"EDGEDNS_{k.upper()}": str(v) for k, v in item.items()}}
        proc = await asyncio.create_subprocess_exec(
            command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env)
        try:
            _, err = await proc.communicate(body)
        except asyncio.CancelledError:  # the timeout: the command must not outlive it
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"{command} exited {proc.returncode}: "
                               f"{err.decode(errors='replace').strip()[:200]}")

    @staticmethod
    async def _post(url: str, body: bytes) -> None:
        def post() -> None:
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()

        await asyncio.get_running_loop().run_in_executor(None, post)
