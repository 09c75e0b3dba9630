"""What health did lately, for people: per check target a day of quarter-hour states,
recent RTTs (for percentiles) and the changes of the last day; and a log of the last changes.

All of it is bounded (`CELLS` bytes, `RTTS` floats and at most `CHANGES` change times per
target, `LOG` entries in all) and cheap to read: `/status` reads it for every member on
every poll of the status page, on the event loop that answers queries, so a summary costs a
few slices of bytes, never a walk over the day. It survives reloads (the server keeps one
`History`); targets no longer checked are forgotten by `keep_only`.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edgedns.pools.health.checks import ProbeResult, Target

BUCKET = 900
"""Seconds per cell of the strip: a quarter hour."""
CELLS = 96
"""Cells kept per target: a day."""
RTTS = 128
"""Recent RTTs kept per target for the percentiles."""
CHANGES = 1440
"""Change times kept per target (more than a day's worth only for a member that flaps
every minute)."""
LOG = 200
"""Changes kept in the log."""
DAY = 86_400.0

NONE, UP, DOWN, MIXED = b".", b"u", b"d", b"m"
"""A cell: no result in that quarter hour, up all of it, down all of it, or both."""


@dataclass(slots=True)
class _Track:
    cells: bytearray = field(default_factory=lambda: bytearray(NONE * CELLS))
    cell: int = -1
    """The quarter hour last written (quarter hours since the epoch)."""
    rtts: array = field(default_factory=lambda: array("f"))
    rtt_next: int = 0
    changes: deque = field(default_factory=lambda: deque(maxlen=CHANGES))


class History:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tracks: dict[Target, _Track] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG)
        self.changes = 0
        """Changes of state recorded so far (what tells /status it is out of date)."""

    def record(self, target: Target, result: ProbeResult, up: bool, changed: bool,
               pools: Iterable[str]) -> None:
        """Count one probe result of `target`, which is now `up` (`changed` if it just
        flipped), used by `pools`."""
        now = self.clock()
        track = self._tracks.get(target)
        if track is None:
            track = self._tracks[target] = _Track()
        cell = int(now // BUCKET)
        state = (UP if up else DOWN)[0]
        if cell != track.cell:
            # Quarter hours without any result since the last one are blank.
            for skipped in range(max(track.cell + 1, cell - CELLS + 1), cell):
                track.cells[skipped % CELLS] = NONE[0]
            track.cells[cell % CELLS] = state
            track.cell = cell
        elif track.cells[cell % CELLS] != state:
            track.cells[cell % CELLS] = MIXED[0]
        if result.rtt is not None:
            if len(track.rtts) < RTTS:
                track.rtts.append(result.rtt)
            else:
                track.rtts[track.rtt_next] = result.rtt
            track.rtt_next = (track.rtt_next + 1) % RTTS
        if changed:
            self.changes += 1
            track.changes.append(now)
            self.log.append({
                "time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
                "member": target.address, "check": str(target),
                "state": "UP" if up else "DOWN", "reason": result.reason,
                "pools": sorted(pools)})

    def keep_only(self, targets: set[Target]) -> None:
        for gone in set(self._tracks) - targets:
            del self._tracks[gone]

    def summary(self, target: Target) -> dict[str, Any]:
        """The day's strip (quarter-hour cells, oldest first: u, d, m or .), RTT p50 and
        p95 in ms over the recent probes, and the changes in the last day."""
        track = self._tracks.get(target)
        if track is None:
            return {"heartbeat": NONE.decode() * CELLS, "rtt_p50_ms": None,
                    "rtt_p95_ms": None, "changes_24h": 0}
        now = self.clock()
        elapsed = int(now // BUCKET) - track.cell  # quarter hours since the last result
        if elapsed >= CELLS:
            strip = NONE * CELLS
        else:
            split = (track.cell + 1) % CELLS  # the oldest cell kept
            ordered = track.cells[split:] + track.cells[:split]
            strip = bytes(ordered[elapsed:]) + NONE * elapsed
        changes = track.changes
        while changes and now - changes[0] > DAY:
            changes.popleft()
        rtts = sorted(track.rtts)
        return {
            "heartbeat": strip.decode(),
            "rtt_p50_ms": round(_percentile(rtts, 0.50) * 1000, 3) if rtts else None,
            "rtt_p95_ms": round(_percentile(rtts, 0.95) * 1000, 3) if rtts else None,
            "changes_24h": len(changes),
        }


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
