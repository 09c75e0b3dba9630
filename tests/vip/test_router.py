"""The VRRP state machine (RFC 5798 §6.4 with RFC 9568), on a fake clock: elections,
take-over timing, preemption, priority 0, faults and degraded nodes."""

import pytest

from edgedns.vip.packet import Advert
from edgedns.vip.router import (
    Announce,
    Became,
    Release,
    Router,
    RouterSettings,
    Send,
    State,
    Take,
)

ME, PEER = "198.19.0.11", "198.19.0.12"


def router(priority: int = 100, preempt: bool = False, interval: float = 0.1) -> Router:
    return Router(RouterSettings(51, priority, interval, preempt, ("198.19.0.100",), ME))


def advert(priority: int, interval: float = 0.1, vrid: int = 51) -> Advert:
    return Advert(3, vrid, priority, interval, ("198.19.0.100",))


def master(r: Router) -> Router:
    r.start(0.0)
    r.expire(r.deadline)
    assert r.state is State.MASTER
    return r


def test_starts_as_backup_and_takes_over_after_master_down_interval() -> None:
    r = router(priority=100)
    assert r.start(0.0) == [Became(State.BACKUP, "started")]
    down = 3 * 0.1 + (256 - 100) * 0.1 / 256
    assert r.deadline == pytest.approx(down)
    assert r.expire(down - 0.001) == []
    actions = r.expire(down)
    assert actions[:2] == [Send(100), Take()]
    assert isinstance(actions[2], Became) and actions[2].state is State.MASTER


def test_higher_priority_waits_less_skew() -> None:
    high, low = router(priority=250), router(priority=50)
    high.start(0.0)
    low.start(0.0)
    assert high.deadline < low.deadline


def test_master_advertises_every_interval() -> None:
    r = master(router())
    due = r.deadline
    assert r.expire(due) == [Send(100)]
    assert r.deadline == pytest.approx(due + 0.1)


def test_backup_adverts_from_master_keep_it_backup() -> None:
    r = router()
    r.start(0.0)
    for t in (0.2, 0.4, 0.6):
        assert r.advert(advert(200), PEER, t) == []
        assert r.expire(t + 0.3) == []
    assert r.state is State.BACKUP and r.master == PEER


def test_backup_learns_the_masters_interval() -> None:
    r = router()
    r.start(0.0)
    r.advert(advert(200, interval=1.0), PEER, 0.0)
    assert r.master_interval == 1.0
    assert r.deadline == pytest.approx(3.0 + (256 - 100) / 256)


def test_priority_zero_makes_backup_take_over_after_skew_only() -> None:
    r = router(priority=100)
    r.start(0.0)
    r.advert(advert(200), PEER, 1.0)
    r.advert(advert(0), PEER, 1.05)
    assert r.deadline == pytest.approx(1.05 + (256 - 100) * 0.1 / 256)
    actions = r.expire(r.deadline)
    assert Take() in actions
    assert actions[-1] == Became(State.MASTER, f"master {PEER} left (priority 0)")


def test_no_preempt_backup_accepts_a_lower_priority_master() -> None:
    r = router(priority=200, preempt=False)
    r.start(0.0)
    r.advert(advert(100), PEER, 0.2)
    assert r.deadline == pytest.approx(0.2 + 3 * 0.1 + (256 - 200) * 0.1 / 256)


def test_preempting_backup_ignores_a_lower_priority_master_and_takes_over() -> None:
    r = router(priority=200, preempt=True)
    r.start(0.0)
    first = r.deadline
    r.advert(advert(100), PEER, 0.2)
    assert r.deadline == first
    assert Take() in r.expire(first)


def test_master_yields_to_a_higher_priority_advert() -> None:
    r = master(router(priority=100))
    actions = r.advert(advert(200), PEER, 5.0)
    assert actions == [Send(0), Release(),
                       Became(State.BACKUP, f"{PEER} advertises priority 200")]
    assert r.master == PEER


def test_equal_priority_goes_to_the_higher_address() -> None:
    r = master(router(priority=100))
    assert r.advert(advert(100), "198.19.0.10", 5.0) == [Send(100), Announce()]
    assert r.state is State.MASTER
    assert Release() in r.advert(advert(100), PEER, 5.1)


def test_master_hearing_a_lower_master_reasserts_and_announces() -> None:
    r = master(router(priority=200))
    assert r.advert(advert(100), PEER, 5.0) == [Send(200), Announce()]
    assert r.state is State.MASTER


def test_master_answers_priority_zero_with_an_advert_and_announces() -> None:
    # A master yielding after a healed split sends priority 0: clients that followed it
    # must learn where the address is now.
    r = master(router())
    assert r.advert(advert(0), PEER, 5.0) == [Send(100), Announce()]


def test_other_virtual_routers_are_ignored() -> None:
    r = master(router())
    assert r.advert(advert(250, vrid=52), PEER, 5.0) == []
    assert r.state is State.MASTER


def test_stop_hands_over_with_priority_zero() -> None:
    r = master(router())
    assert r.stop() == [Send(0), Release(), Became(State.STOPPED, "stopped")]


def test_stop_as_backup_sends_nothing() -> None:
    r = router()
    r.start(0.0)
    assert r.stop() == [Became(State.STOPPED, "stopped")]


def test_fault_gives_the_addresses_up_and_blocks_take_over() -> None:
    r = master(router())
    assert r.set_fault("DNS self-check: no reply", 5.0) == [
        Send(0), Release(), Became(State.FAULT, "DNS self-check: no reply")]
    assert r.expire(100.0) == []
    assert r.advert(advert(0), PEER, 100.0) == []
    assert r.state is State.FAULT


def test_recovery_from_fault_goes_to_backup() -> None:
    r = router()
    r.set_fault("tracked mqtt down", 0.0)
    assert r.start(0.0) == [Became(State.FAULT, "tracked mqtt down")]
    actions = r.set_fault(None, 1.0)
    assert actions == [Became(State.BACKUP, "recovered (tracked mqtt down)")]
    assert r.deadline == pytest.approx(1.0 + r.master_down_interval())


def test_degraded_master_hands_over_once_and_advertises_priority_one() -> None:
    r = master(router(priority=200))
    actions = r.set_degraded("every pool is down", 5.0)
    assert actions == [Send(0), Release(), Became(State.BACKUP, "every pool is down")]
    assert r.priority == 1
    # Nobody else takes over: the degraded node still does, and keeps the role.
    actions = r.expire(r.deadline)
    assert Send(1) in actions and Take() in actions
    assert r.advert(advert(1), "198.19.0.10", r.deadline) == [Send(1), Announce()]
    assert r.state is State.MASTER


def test_degraded_node_yields_to_a_healthy_master() -> None:
    r = master(router(priority=200))
    r.set_degraded("every pool is down", 5.0)
    r.expire(r.deadline)
    assert Release() in r.advert(advert(100), PEER, 10.0)


def test_recovering_from_degraded_restores_the_priority() -> None:
    r = master(router(priority=200))
    r.set_degraded("every pool is down", 5.0)
    r.expire(r.deadline)
    assert r.set_degraded(None, 6.0) == [Send(200)]
