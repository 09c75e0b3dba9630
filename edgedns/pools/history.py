"""What health did lately, for people: per check target a day of per-minute states, recent
RTTs (for percentiles) and the changes of the last day; and a log of the last changes.

All of it is bounded: `MINUTES` bytes, `RTTS` floats and at most `MINUTES` change times per
target, `LOG` entries in all. It survives reloads (the server keeps one `History`); targets
no longer checked are forgotten by `keep_only`.
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

MINUTES = 1440
"""Cells kept per target: one a minute, a day."""
BUCKET = 15
"""Minutes per cell of the strip `/status` shows (96 for a day)."""
RTTS = 128
"""Recent RTTs kept per target for the percentiles."""
LOG = 200
"""Changes kept in the log."""

NONE, UP, DOWN, MIXED = b".", b"u", b"d", b"m"
"""A cell: no result that minute, up all of it, down all of it, or both."""
_WORST = {NONE[0]: 0, UP[0]: 1, MIXED[0]: 2, DOWN[0]: 3}


@dataclass(slots=True)
class _Track:
    cells: bytearray = field(default_factory=lambda: bytearray(NONE * MINUTES))
    minute: int = -1
    """The last minute written (minutes since the epoch)."""
    rtts: array = field(default_factory=lambda: array("f"))
    rtt_next: int = 0
    changes: deque = field(default_factory=lambda: deque(maxlen=MINUTES))


class History:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tracks: dict[Target, _Track] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG)

    def record(self, target: Target, result: ProbeResult, up: bool, changed: bool,
               pools: Iterable[str]) -> None:
        """Count one probe result of `target`, which is now `up` (`changed` if it just
        flipped), used by `pools`."""
        now = self.clock()
        track = self._tracks.get(target)
        if track is None:
            track = self._tracks[target] = _Track()
        minute = int(now // 60)
        if minute != track.minute:
            # Minutes without any result since the last one are blank.
            for skipped in range(max(track.minute + 1, minute - MINUTES + 1), minute):
                track.cells[skipped % MINUTES] = NONE[0]
            track.cells[minute % MINUTES] = (UP if up else DOWN)[0]
            track.minute = minute
        elif track.cells[minute % MINUTES] != (UP if up else DOWN)[0]:
            track.cells[minute % MINUTES] = MIXED[0]
        if result.rtt is not None:
            if len(track.rtts) < RTTS:
                track.rtts.append(result.rtt)
            else:
                track.rtts[track.rtt_next] = result.rtt
            track.rtt_next = (track.rtt_next + 1) % RTTS
        if changed:
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
        """The strip (`BUCKET`-minute cells over the last day, oldest first, the worst state
        of each: d, m, u or .), RTT p50 and p95 in ms, and changes in the last day."""
        track = self._tracks.get(target)
        if track is None:
            return {"heartbeat": NONE.decode() * (MINUTES // BUCKET), "rtt_p50_ms": None,
                    "rtt_p95_ms": None, "changes_24h": 0}
        now = self.clock()
        minute = int(now // 60)
        strip = bytearray()
        for start in range(minute - MINUTES + 1, minute + 1, BUCKET):
            worst = NONE[0]
            for m in range(start, start + BUCKET):
                cell = NONE[0] if m > track.minute or m <= track.minute - MINUTES \
                    else track.cells[m % MINUTES]
                if _WORST[cell] > _WORST[worst]:
                    worst = cell
            strip.append(worst)
        rtts = sorted(track.rtts)
        return {
            "heartbeat": strip.decode(),
            "rtt_p50_ms": round(_percentile(rtts, 0.50) * 1000, 3) if rtts else None,
            "rtt_p95_ms": round(_percentile(rtts, 0.95) * 1000, 3) if rtts else None,
            "changes_24h": sum(1 for t in track.changes if now - t <= 86400),
        }


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
