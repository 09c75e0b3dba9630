"""What health did lately, for people: per check target a day of quarter-hour states and
an hour of minute states, recent RTTs (for percentiles) and the changes of the last day;
per drained member when it was drained; and a log of the last changes.

All of it is bounded (`CELLS` + `MINUTE_CELLS` bytes, `RTTS` floats and at most `CHANGES`
change times per target, `DRAINS` periods per member, `LOG` entries in all) and cheap to
read: `/status` reads it for every member on every poll of the status page, on the event
loop that answers queries, so a summary costs a few slices of bytes, never a walk over the
day. It survives reloads (the server keeps one
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
"""Seconds per cell of the day's strip: a quarter hour."""
CELLS = 96
"""Cells in the day's strip."""
MINUTE_CELLS = 60
"""Cells in the last hour's strip, a minute each."""
RTTS = 128
"""Recent RTTs kept per target for the percentiles."""
CHANGES = 1440
"""Change times kept per target (more than a day's worth only for a member that flaps
every minute)."""
DRAINS = 32
"""Drain periods kept per member."""
LOG = 200
"""Changes kept in the log."""
DAY = 86_400.0

NONE, UP, DOWN, MIXED, DRAINED = b".", b"u", b"d", b"m", b"r"
"""A cell: no result in it, up all of it, down all of it, both, or drained (some of it)."""


@dataclass(slots=True)
class _Strip:
    """`size` cells of `seconds` each, the newest last; writing one costs O(1) (cells
    skipped since the last write are blanked, at most `size` of them)."""

    size: int
    seconds: int
    cells: bytearray = field(init=False)
    cell: int = -1
    """The cell last written (cells since the epoch)."""

    def __post_init__(self) -> None:
        self.cells = bytearray(NONE * self.size)

    def mark(self, now: float, state: int) -> None:
        cell = int(now // self.seconds)
        if cell != self.cell:
            for skipped in range(max(self.cell + 1, cell - self.size + 1), cell):
                self.cells[skipped % self.size] = NONE[0]
            self.cells[cell % self.size] = state
            self.cell = cell
        elif self.cells[cell % self.size] != state:
            self.cells[cell % self.size] = MIXED[0]

    def read(self, now: float) -> bytearray:
        """The cells, oldest first, up to the one `now` falls in."""
        elapsed = int(now // self.seconds) - self.cell  # cells since the last write
        if elapsed >= self.size:
            return bytearray(NONE * self.size)
        split = (self.cell + 1) % self.size  # the oldest cell kept
        return (self.cells[split:] + self.cells[:split])[elapsed:] + NONE * elapsed

@dataclass(slots=True)
class _Track:
    day: _Strip = field(default_factory=lambda: _Strip(CELLS, BUCKET))
    hour: _Strip = field(default_factory=lambda: _Strip(MINUTE_CELLS, 60))
    rtts: array = field(default_factory=lambda: array("f"))
    rtt_next: int = 0
    changes: deque = field(default_factory=lambda: deque(maxlen=CHANGES))


class History:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tracks: dict[Target, _Track] = {}
        self._drains: dict[tuple[str, str], deque[list[float | None]]] = {}
        """Per (pool, member address): [start, end or None while drained] periods."""
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
        state = (UP if up else DOWN)[0]
        track.day.mark(now, state)
        track.hour.mark(now, state)
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

    def drained(self, pool: str, member: str, drained: bool) -> None:
        """`member` of `pool` was drained (or undrained) now: its strips show it."""
        now = self.clock()
        periods = self._drains.setdefault((pool, member), deque(maxlen=DRAINS))
        if drained and (not periods or periods[-1][1] is not None):
            periods.append([now, None])
        elif not drained and periods and periods[-1][1] is None:
            periods[-1][1] = now
        else:
            return  # as it was (reloads tell every drained member again)
        self.changes += 1

    def keep_only(self, targets: set[Target]) -> None:
        for gone in set(self._tracks) - targets:
            del self._tracks[gone]

    def summary(self, target: Target, pool: str = "", member: str = "") -> dict[str, Any]:
        """The day's strip (quarter-hour cells, oldest first: u, d, m, r or .), the last
        hour's (minutes), RTT p50 and p95 in ms over the recent probes, and the changes in
        the last day. Cells in which `member` of `pool` was drained read r."""
        now = self.clock()
        track = self._tracks.get(target)
        if track is None:
            day, hour = bytearray(NONE * CELLS), bytearray(NONE * MINUTE_CELLS)
            rtts: list[float] = []
            changes = 0
        else:
            day, hour = track.day.read(now), track.hour.read(now)
            while track.changes and now - track.changes[0] > DAY:
                track.changes.popleft()
            rtts, changes = sorted(track.rtts), len(track.changes)
        for start, end in self._drains.get((pool, member), ()):
            if end is None or now - end < DAY:
                _mark_drained(day, BUCKET, now, start, now if end is None else end)
                _mark_drained(hour, 60, now, start, now if end is None else end)
        return {
            "heartbeat": day.decode(),
            "heartbeat_hour": hour.decode(),
            "rtt_p50_ms": round(_percentile(rtts, 0.50) * 1000, 3) if rtts else None,
            "rtt_p95_ms": round(_percentile(rtts, 0.95) * 1000, 3) if rtts else None,
            "changes_24h": changes,
        }


def _mark_drained(cells: bytearray, seconds: int, now: float, start: float,
                  end: float) -> None:
    """Mark the cells of a strip (`seconds` each, the last one holding `now`) that the
    drained period [start, end] touches."""
    last = int(now // seconds)
    first = last - len(cells) + 1
    for cell in range(max(int(start // seconds), first), min(int(end // seconds), last) + 1):
        cells[cell - first] = DRAINED[0]


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
