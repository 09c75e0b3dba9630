"""Health history for the page: a day of quarter-hour cells and an hour of minute cells per
target, drained periods shown in them, RTT percentiles over the recent probes, changes in
the last day, a bounded log."""

from __future__ import annotations

from edgedns.pools import history
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target
from edgedns.pools.history import History

T = Target.for_member(CheckSpec(type="tcp", port=80), "10.0.0.1")
OK = ProbeResult(True, "connected", 0.002)
FAIL = ProbeResult(False, "Connection refused", 0.0003)
DAY = 86_400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_target_never_probed_has_an_empty_strip() -> None:
    summary = History().summary(T)
    assert summary == {"heartbeat": "." * 96, "heartbeat_hour": "." * 60, "rtt_p50_ms": None,
                       "rtt_p95_ms": None, "changes_24h": 0}


def test_the_strip_shows_each_quarter_hour_at_its_worst() -> None:
    clock = Clock(1_000_000 * 900.0)  # the strip's cells end with the current minute
    h = History(clock)
    clock.now -= 45 * 60  # the fourth cell from the end: up all along
    h.record(T, OK, up=True, changed=False, pools=["web."])
    clock.now += 15 * 60  # the third: up, then down within one minute
    h.record(T, OK, up=True, changed=False, pools=["web."])
    h.record(T, FAIL, up=False, changed=True, pools=["web."])
    clock.now += 15 * 60  # the second: down; the last: nothing yet
    h.record(T, FAIL, up=False, changed=False, pools=["web."])
    clock.now += 15 * 60
    strip = h.summary(T)["heartbeat"]
    assert len(strip) == 96
    assert strip[-5:] == ".umd."


def test_rtt_percentiles_come_from_the_recent_probes_only() -> None:
    h = History(Clock(DAY))
    for ms in range(1, 201):  # 200 probes: only the last 128 (73..200 ms) are kept
        h.record(T, ProbeResult(True, "connected", ms / 1000), True, False, [])
    summary = h.summary(T)
    assert summary["rtt_p50_ms"] == 136.0
    assert summary["rtt_p95_ms"] == 194.0


def test_changes_count_over_the_last_day_and_the_log_is_bounded() -> None:
    clock = Clock(DAY * 10)
    h = History(clock)
    h.record(T, FAIL, up=False, changed=True, pools=["web."])
    clock.now += DAY + 1
    for i in range(history.LOG + 5):
        h.record(T, OK if i % 2 else FAIL, up=bool(i % 2), changed=True, pools=["web."])
    assert h.summary(T)["changes_24h"] == history.LOG + 5  # the first is over a day old
    assert len(h.log) == history.LOG
    assert h.log[-1]["member"] == "10.0.0.1" and h.log[-1]["pools"] == ["web."]


def test_targets_no_longer_checked_are_forgotten() -> None:
    h = History()
    h.record(T, OK, True, False, [])
    h.keep_only(set())
    assert h.summary(T)["rtt_p50_ms"] is None


def test_the_last_hour_is_shown_a_minute_a_cell() -> None:
    clock = Clock(1_000_000 * 900.0)
    h = History(clock)
    clock.now -= 3 * 60
    h.record(T, OK, up=True, changed=False, pools=["web."])
    clock.now += 60
    h.record(T, FAIL, up=False, changed=True, pools=["web."])
    clock.now += 2 * 60
    hour = h.summary(T)["heartbeat_hour"]
    assert len(hour) == 60 and hour[-4:] == "ud.."


def test_drained_periods_show_in_both_strips_for_that_member_only() -> None:
    clock = Clock(1_000_000 * 900.0)
    h = History(clock)
    for _ in range(10):  # up every minute for ten minutes, drained for minutes 5 to 7
        h.record(T, OK, up=True, changed=False, pools=["web."])
        if clock.now == 1_000_000 * 900.0 + 4 * 60:
            h.drained("web.site.lan.", "10.0.0.1", True)
        if clock.now == 1_000_000 * 900.0 + 7 * 60:
            h.drained("web.site.lan.", "10.0.0.1", False)
        clock.now += 60
    clock.now -= 60
    mine = h.summary(T, "web.site.lan.", "10.0.0.1")
    assert mine["heartbeat_hour"][-10:] == "uuuurrrruu"
    assert mine["heartbeat"][-1] == "r"  # the quarter hour holds a drained minute
    other = h.summary(T, "api.site.lan.", "10.0.0.1")  # the same target in another pool
    assert other["heartbeat_hour"][-10:] == "u" * 10


def test_a_member_still_drained_is_drained_up_to_now() -> None:
    clock = Clock(DAY * 10)
    h = History(clock)
    h.drained("web.", "10.0.0.1", True)
    clock.now += 120
    assert h.summary(T, "web.", "10.0.0.1")["heartbeat_hour"][-3:] == "rrr"
