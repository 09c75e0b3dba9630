"""Pools: rise/fall health per check target, what each policy answers, and per-query picks."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest

from edgedns.authority.answers import Picker
from edgedns.dns import names
from edgedns.pools import pool as pool_mod
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target
from edgedns.pools.pool import NODATA, SERVFAIL, Health, Member, PoolSet, PoolSpec, Selection

WEB = names.from_text("web.site.lan.")
API = names.from_text("api.site.lan.")
TCP = CheckSpec(type="tcp", port=80, fall=2, rise=2)
NONE = CheckSpec(type="none")
OK = ProbeResult(True, "connected", 0.0012)
FAIL = ProbeResult(False, "Connection refused", 0.0003)
TIMEOUT = ProbeResult(False, "timeout after 500ms")


def member(address: str, check: CheckSpec = TCP, weight: int = 1, priority: int = 0) -> Member:
    return Member(address, check, weight, priority)


def pool(
    *members: Member | str,
    name: names.Name = WEB,
    policy: str = "all",
    count: int | None = None,
    preempt: bool = True,
    when_all_down: str = "serve_all",
    fallback: tuple[str, ...] = (),
) -> PoolSpec:
    built = tuple(m if isinstance(m, Member) else member(m) for m in members)
    return PoolSpec(name, 5, policy, count, preempt, built, when_all_down, fallback)


def target(address: str, check: CheckSpec = TCP) -> Target:
    return Target.for_member(check, address)


def set_up(pools: PoolSet, address: str, up: bool, check: CheckSpec = TCP) -> None:
    """Feed results until the member at `address` is `up` (as many as rise/fall need)."""
    for _ in range(max(check.rise, check.fall)):
        pools.record(target(address, check), OK if up else FAIL)
    assert pools.health[target(address, check)].up is up


def addresses(selection: Selection) -> tuple[str, ...]:
    (only,) = selection.variants
    return only


# --- Health: the rise/fall state machine ------------------------------------------------------


def test_a_target_counts_as_up_before_its_first_probe() -> None:
    health = Health()
    assert health.up and not health.probed


def test_a_first_failure_takes_a_target_down_at_once() -> None:
    health = Health()
    assert health.record(FAIL, rise=3, fall=3, now=50.0) is True
    assert not health.up and health.probed


def test_a_first_success_keeps_a_target_up_without_a_transition() -> None:
    health = Health(changed_at=1.0)
    assert health.record(OK, rise=3, fall=3, now=50.0) is False
    assert health.up and health.probed
    assert health.changed_at == 1.0


def test_an_up_target_goes_down_after_fall_consecutive_failures() -> None:
    health = Health()
    health.record(OK, rise=2, fall=3, now=0.0)
    assert [health.record(FAIL, 2, 3, 0.0) for _ in range(3)] == [False, False, True]
    assert not health.up


def test_a_down_target_comes_up_after_rise_consecutive_successes() -> None:
    health = Health()
    health.record(FAIL, rise=3, fall=2, now=0.0)
    assert [health.record(OK, 3, 2, 0.0) for _ in range(3)] == [False, False, True]
    assert health.up


def test_a_success_between_failures_resets_the_failure_count() -> None:
    health = Health()
    health.record(OK, rise=2, fall=2, now=0.0)
    for result in (FAIL, OK, FAIL, OK, FAIL):
        assert health.record(result, 2, 2, 0.0) is False
    assert health.up


def test_a_failure_between_successes_resets_the_success_count() -> None:
    health = Health()
    health.record(FAIL, rise=2, fall=2, now=0.0)
    for result in (OK, FAIL, OK, FAIL, OK):
        assert health.record(result, 2, 2, 0.0) is False
    assert not health.up


def test_each_transition_needs_a_fresh_run_of_results_after_the_first_verdict() -> None:
    health = Health()
    flips = [health.record(r, 2, 2, 0.0) for r in (OK, FAIL, FAIL, OK, OK, FAIL, FAIL)]
    assert flips == [False, False, True, False, True, False, True]


def test_changed_at_is_the_time_of_the_last_transition() -> None:
    health = Health(changed_at=0.0)
    health.record(FAIL, rise=2, fall=2, now=10.0)
    health.record(FAIL, 2, 2, now=11.0)
    assert health.changed_at == 10.0
    health.record(OK, 2, 2, now=12.0)
    health.record(OK, 2, 2, now=13.0)
    assert health.changed_at == 13.0


def test_health_keeps_the_last_result() -> None:
    health = Health()
    health.record(OK, 2, 2, 0.0)
    health.record(TIMEOUT, 2, 2, 0.0)
    assert health.last == TIMEOUT


# --- PoolSet.record ---------------------------------------------------------------------------


def test_members_with_identical_checks_share_one_target() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2"), pool("127.0.0.2", name=API)])
    assert pools.targets() == {target("127.0.0.1"), target("127.0.0.2")}


def test_members_checked_without_a_probe_have_no_target_and_are_always_up() -> None:
    spec = pool(member("127.0.0.1", NONE), "127.0.0.2")
    pools = PoolSet([spec])
    assert spec.members[0].target is None
    assert pools.targets() == {target("127.0.0.2")}
    set_up(pools, "127.0.0.2", False)
    assert pools.is_up(spec.members[0])
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1",)


def test_record_returns_every_pool_using_the_target_on_a_transition() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2"), pool("127.0.0.2", name=API)])
    assert pools.record(target("127.0.0.2"), FAIL) == {WEB, API}
    assert pools.record(target("127.0.0.1"), FAIL) == {WEB}


def test_record_returns_nothing_when_the_state_does_not_change() -> None:
    pools = PoolSet([pool("127.0.0.1")])
    assert pools.record(target("127.0.0.1"), OK) == set()
    assert pools.record(target("127.0.0.1"), FAIL) == set()  # 1 of fall=2


def test_record_ignores_a_target_no_pool_uses() -> None:
    pools = PoolSet([pool("127.0.0.1")])
    assert pools.record(target("127.0.0.9"), FAIL) == set()
    assert target("127.0.0.9") not in pools.health


def test_record_stamps_transitions_with_the_pool_sets_clock() -> None:
    pools = PoolSet([pool("127.0.0.1")], clock=lambda: 1234.5)
    pools.record(target("127.0.0.1"), FAIL)
    assert pools.health[target("127.0.0.1")].changed_at == 1234.5


def test_all_probed_once_every_target_has_a_first_verdict() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2")])
    pools.record(target("127.0.0.1"), OK)
    assert not pools.all_probed()
    pools.record(target("127.0.0.2"), FAIL)
    assert pools.all_probed()


def test_record_logs_one_info_line_per_transition_with_reason_and_rtt(caplog) -> None:
    pools = PoolSet([pool("127.0.0.1"), pool("127.0.0.1", name=API)])
    caplog.set_level(logging.INFO, logger="edgedns.pools.pool")
    pools.record(target("127.0.0.1"), OK)  # first verdict agrees: no transition
    caplog.clear()  # (the first-verdicts summary)
    pools.record(target("127.0.0.1"), FAIL)
    assert caplog.messages == []
    pools.record(target("127.0.0.1"), FAIL)
    pools.record(target("127.0.0.1"), FAIL)  # already down
    assert caplog.messages == [
        "127.0.0.1 is DOWN: Connection refused (tcp 127.0.0.1:80, rtt 0.3ms; "
        "pools api.site.lan., web.site.lan.)"
    ]
    assert caplog.records[0].levelno == logging.INFO


def test_a_transition_without_an_rtt_is_logged_without_one(caplog) -> None:
    pools = PoolSet([pool("127.0.0.1")])
    pools.record(target("127.0.0.1"), OK)
    caplog.set_level(logging.INFO, logger="edgedns.pools.pool")
    pools.record(target("127.0.0.1"), TIMEOUT)
    pools.record(target("127.0.0.1"), TIMEOUT)
    assert caplog.messages == [
        "127.0.0.1 is DOWN: timeout after 500ms (tcp 127.0.0.1:80; pools web.site.lan.)"
    ]


def test_first_verdicts_are_one_summary_line_naming_at_most_ten_down(caplog) -> None:
    addresses = [f"10.0.0.{i}" for i in range(1, 201)]
    pools = PoolSet([pool(*addresses)])
    caplog.set_level(logging.INFO, logger="edgedns.pools.pool")
    for i, address in enumerate(addresses):
        pools.record(target(address), FAIL if i < 12 else OK)
    assert caplog.messages == [
        "health: first verdicts in for 200 check targets: 188 of 200 up; down: "
        + "; ".join(f"10.0.0.{i} (tcp 10.0.0.{i}:80: Connection refused)" for i in range(1, 11))
        + "; and 2 more"
    ]
    caplog.clear()
    pools.record(target("10.0.0.200"), FAIL)
    pools.record(target("10.0.0.200"), FAIL)  # later transitions: a line each, as before
    assert caplog.messages == ["10.0.0.200 is DOWN: Connection refused (tcp 10.0.0.200:80, "
                               "rtt 0.3ms; pools web.site.lan.)"]


def test_a_member_coming_back_is_logged_as_up(caplog) -> None:
    pools = PoolSet([pool("127.0.0.1")])
    pools.record(target("127.0.0.1"), FAIL)
    caplog.set_level(logging.INFO, logger="edgedns.pools.pool")
    pools.record(target("127.0.0.1"), OK)
    pools.record(target("127.0.0.1"), OK)
    assert caplog.messages == [
        "127.0.0.1 is UP: connected (tcp 127.0.0.1:80, rtt 1.2ms; pools web.site.lan.)"
    ]


# --- across a reload: PoolSet(previous=...) --------------------------------------------------


def test_a_reload_hands_over_the_health_of_unchanged_targets() -> None:
    old = PoolSet([pool("10.0.0.1", "10.0.0.2")])
    set_up(old, "10.0.0.2", False)
    new = PoolSet([pool("10.0.0.1", "10.0.0.2", "10.0.0.3")], previous=old)
    assert new.health[target("10.0.0.2")] is old.health[target("10.0.0.2")]
    assert addresses(new.selection(WEB, 4)) == ("10.0.0.1", "10.0.0.3")


def test_a_result_recorded_by_the_old_set_during_a_reload_shows_in_the_new_one() -> None:
    old = PoolSet([pool("10.0.0.1", "10.0.0.2")])
    new = PoolSet([pool("10.0.0.1", "10.0.0.2")], previous=old)  # prepared, not yet swapped
    set_up(old, "10.0.0.1", False)  # lands between preparing and the swap
    assert addresses(new.selection(WEB, 4)) == ("10.0.0.2",)


def test_a_member_whose_check_changed_keeps_its_state_until_the_new_checks_verdict() -> None:
    slow = CheckSpec(type="tcp", port=80, fall=2, rise=2, timeout=2.0)
    old = PoolSet([pool("10.0.0.1", "10.0.0.2")])
    set_up(old, "10.0.0.2", False)
    new = PoolSet([pool("10.0.0.1", member("10.0.0.2", slow))], previous=old)
    health = new.health[target("10.0.0.2", slow)]
    assert (health.up, health.probed) == (False, False)
    assert addresses(new.selection(WEB, 4)) == ("10.0.0.1",)
    new.record(target("10.0.0.2", slow), OK)  # the first verdict sets the state at once
    assert addresses(new.selection(WEB, 4)) == ("10.0.0.1", "10.0.0.2")


# --- drained members ---------------------------------------------------------------------------


def test_a_drained_member_is_not_answered_but_keeps_its_health() -> None:
    pools = PoolSet([pool("10.0.0.1", "10.0.0.2")])
    before = pools.generation[WEB]
    pools.drain(WEB, "10.0.0.2", True)
    assert pools.generation[WEB] == before + 1  # replies holding it are rebuilt
    assert addresses(pools.selection(WEB, 4)) == ("10.0.0.1",)
    assert pools.health[target("10.0.0.2")].up  # still probed, still known up
    pools.drain(WEB, "10.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("10.0.0.1", "10.0.0.2")


def test_with_every_member_drained_when_all_down_decides() -> None:
    for when, expected in (("serve_all", ("10.0.0.1",)), ("nodata", ())):
        pools = PoolSet([pool("10.0.0.1", when_all_down=when)])
        pools.drain(WEB, "10.0.0.1", True)
        assert addresses(pools.selection(WEB, 4)) == expected


def test_draining_twice_changes_nothing_the_second_time() -> None:
    pools = PoolSet([pool("10.0.0.1", "10.0.0.2")])
    pools.drain(WEB, "10.0.0.2", True)
    generation = pools.generation[WEB]
    pools.drain(WEB, "10.0.0.2", True)
    assert pools.generation[WEB] == generation


def test_a_reload_keeps_drains_of_members_it_keeps() -> None:
    old = PoolSet([pool("10.0.0.1", "10.0.0.2", "10.0.0.3")])
    old.drain(WEB, "10.0.0.2", True)
    old.drain(WEB, "10.0.0.3", True)
    new = PoolSet([pool("10.0.0.1", "10.0.0.2")], previous=old)
    assert new.drained == {(WEB, "10.0.0.2")}


# --- policy all -------------------------------------------------------------------------------


def test_all_answers_every_member_in_config_order_before_any_probe() -> None:
    pools = PoolSet([pool("127.0.0.3", "127.0.0.1", "127.0.0.2")])
    assert pools.selection(WEB, 4) == Selection((("127.0.0.3", "127.0.0.1", "127.0.0.2"),))


def test_all_answers_only_the_healthy_members_in_config_order() -> None:
    pools = PoolSet([pool("127.0.0.3", "127.0.0.1", "127.0.0.2")])
    set_up(pools, "127.0.0.1", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3", "127.0.0.2")


def test_all_with_count_answers_that_many_healthy_members() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", count=2)])
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1", "127.0.0.2")
    set_up(pools, "127.0.0.1", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.2", "127.0.0.3")


# --- policy failover --------------------------------------------------------------------------


def failover_pool(preempt: bool = True, count: int | None = None) -> PoolSpec:
    return pool(
        member("127.0.0.3", priority=10),
        member("127.0.0.1", priority=100),
        member("127.0.0.2", priority=100),
        policy="failover", preempt=preempt, count=count,
    )


def test_failover_answers_the_healthy_members_of_the_highest_priority() -> None:
    pools = PoolSet([failover_pool()])
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1", "127.0.0.2")


def test_failover_count_limits_the_members_answered() -> None:
    pools = PoolSet([failover_pool(count=1)])
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1",)
    set_up(pools, "127.0.0.1", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.2",)


def test_failover_moves_to_the_next_priority_when_the_highest_is_all_down() -> None:
    pools = PoolSet([failover_pool()])
    set_up(pools, "127.0.0.1", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.2",)
    set_up(pools, "127.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3",)


def test_failover_with_preempt_switches_back_when_a_higher_priority_member_returns() -> None:
    pools = PoolSet([failover_pool(preempt=True)])
    set_up(pools, "127.0.0.1", False)
    set_up(pools, "127.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3",)
    set_up(pools, "127.0.0.2", True)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.2",)


def test_failover_without_preempt_keeps_the_serving_member_while_it_is_healthy() -> None:
    pools = PoolSet([failover_pool(preempt=False)])
    set_up(pools, "127.0.0.1", False)
    set_up(pools, "127.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3",)
    set_up(pools, "127.0.0.2", True)
    set_up(pools, "127.0.0.1", True)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3",)


def test_failover_without_preempt_moves_on_when_the_serving_member_fails() -> None:
    pools = PoolSet([failover_pool(preempt=False)])
    set_up(pools, "127.0.0.1", False)
    set_up(pools, "127.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3",)
    set_up(pools, "127.0.0.1", True)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.3",)
    set_up(pools, "127.0.0.3", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1",)


def test_failover_without_preempt_lets_a_member_of_the_serving_priority_rejoin() -> None:
    pools = PoolSet([failover_pool(preempt=False)])
    set_up(pools, "127.0.0.1", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.2",)
    set_up(pools, "127.0.0.1", True)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1", "127.0.0.2")


# --- rotating policies: random, round_robin, weighted, hash -----------------------------------


@pytest.mark.parametrize("policy", ["random", "round_robin", "weighted", "hash"])
def test_rotating_policies_offer_one_single_address_variant_per_healthy_member(policy) -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy=policy)])
    selection = pools.selection(WEB, 4)
    assert selection.variants == (("127.0.0.1",), ("127.0.0.2",), ("127.0.0.3",))
    assert selection.chooser == policy


@pytest.mark.parametrize("policy", ["random", "round_robin", "weighted", "hash"])
def test_rotating_policies_with_count_answer_rotations_of_the_healthy_members(policy) -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4",
                          policy=policy, count=3)])
    set_up(pools, "127.0.0.2", False)
    assert pools.selection(WEB, 4).variants == (
        ("127.0.0.1", "127.0.0.3", "127.0.0.4"),
        ("127.0.0.3", "127.0.0.4", "127.0.0.1"),
        ("127.0.0.4", "127.0.0.1", "127.0.0.3"),
    )


def test_a_count_above_the_healthy_members_answers_each_once() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", policy="round_robin", count=5)])
    assert pools.selection(WEB, 4).variants == (
        ("127.0.0.1", "127.0.0.2"), ("127.0.0.2", "127.0.0.1"),
    )


def test_weighted_carries_cumulative_weights_of_the_healthy_members() -> None:
    spec = pool(member("127.0.0.1", weight=5), member("127.0.0.2", weight=1),
                member("127.0.0.3", weight=3), policy="weighted")
    pools = PoolSet([spec])
    assert pools.selection(WEB, 4).weights == (5, 6, 9)
    set_up(pools, "127.0.0.2", False)
    selection = pools.selection(WEB, 4)
    assert selection.variants == (("127.0.0.1",), ("127.0.0.3",))
    assert selection.weights == (5, 8)


def test_hash_variants_are_keyed_by_their_starting_member() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy="hash", count=2)])
    set_up(pools, "127.0.0.1", False)
    assert [v[0] for v in pools.selection(WEB, 4).variants] == ["127.0.0.2", "127.0.0.3"]


# --- when_all_down ----------------------------------------------------------------------------


def test_when_all_down_serve_all_answers_every_member() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", when_all_down="serve_all")])
    set_up(pools, "127.0.0.1", False)
    set_up(pools, "127.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1", "127.0.0.2")


def test_when_all_down_serve_all_still_applies_the_policy() -> None:
    pools = PoolSet([pool(member("127.0.0.1", priority=1), "127.0.0.2",
                          policy="failover", when_all_down="serve_all")])
    set_up(pools, "127.0.0.1", False)
    set_up(pools, "127.0.0.2", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1",)


def test_when_all_down_servfail_answers_servfail() -> None:
    pools = PoolSet([pool("127.0.0.1", when_all_down="servfail")])
    set_up(pools, "127.0.0.1", False)
    assert pools.selection(WEB, 4) == SERVFAIL
    assert pools.selection(WEB, 4).servfail


def test_when_all_down_nodata_answers_no_addresses() -> None:
    pools = PoolSet([pool("127.0.0.1", when_all_down="nodata")])
    set_up(pools, "127.0.0.1", False)
    assert pools.selection(WEB, 4) == NODATA
    assert pools.selection(WEB, 4).nodata


def test_when_all_down_fallback_answers_the_fallback_addresses_of_the_family() -> None:
    pools = PoolSet([pool("127.0.0.1", when_all_down="fallback",
                          fallback=("127.0.0.8", "::1", "127.0.0.9"))])
    set_up(pools, "127.0.0.1", False)
    assert pools.selection(WEB, 4) == Selection((("127.0.0.8", "127.0.0.9"),))


def test_fallback_answers_a_family_without_members() -> None:
    pools = PoolSet([pool("127.0.0.1", when_all_down="fallback", fallback=("::1",))])
    assert addresses(pools.selection(WEB, 6)) == ("::1",)


def test_fallback_without_addresses_of_the_family_answers_nodata() -> None:
    pools = PoolSet([pool("::1", when_all_down="fallback", fallback=("::2",))])
    set_up(pools, "::1", False)
    assert pools.selection(WEB, 4) == NODATA


def test_fallback_is_not_used_while_a_member_is_healthy() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", when_all_down="fallback",
                          fallback=("127.0.0.9",))])
    set_up(pools, "127.0.0.1", False)
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.2",)


# --- address families -------------------------------------------------------------------------


def test_mixed_pools_answer_each_family_from_its_own_members() -> None:
    pools = PoolSet([pool("127.0.0.1", "::1", "127.0.0.2", "::2")])
    assert addresses(pools.selection(WEB, 4)) == ("127.0.0.1", "127.0.0.2")
    assert addresses(pools.selection(WEB, 6)) == ("::1", "::2")


def test_one_family_all_down_does_not_affect_the_other() -> None:
    pools = PoolSet([pool("127.0.0.1", "::1", when_all_down="servfail")])
    set_up(pools, "127.0.0.1", False)
    assert pools.selection(WEB, 4) == SERVFAIL
    assert addresses(pools.selection(WEB, 6)) == ("::1",)


def test_a_family_without_members_answers_nodata() -> None:
    pools = PoolSet([pool("127.0.0.1", when_all_down="servfail")])
    assert pools.selection(WEB, 6) == NODATA


def test_pool_families_include_fallback_only_with_when_all_down_fallback() -> None:
    assert pool("127.0.0.1", when_all_down="fallback", fallback=("::1",)).families() == {4, 6}
    assert pool("127.0.0.1", "::1").families() == {4, 6}
    assert pool("127.0.0.1").families() == {4}


# --- Picker.pick: the per-query choice among variants ----------------------------------------


class VariantPicks:
    """A pool selection's `Picker`, its picks read as the variants' addresses."""

    def __init__(self, selection: Selection) -> None:
        self.picker = Picker(selection)
        self.variants = selection.variants

    def pick(self, client: bytes) -> tuple[str, ...]:
        return self.variants[self.picker.pick(client)]


def entry_for(pools: PoolSet, name: names.Name = WEB) -> VariantPicks:
    return VariantPicks(pools.selection(name, 4))


def test_round_robin_cycles_through_the_variants_in_order() -> None:
    entry = entry_for(PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3",
                                    policy="round_robin")]))
    picks = [entry.pick(b"127.9.0.1")[0] for _ in range(7)]
    assert picks == ["127.0.0.1", "127.0.0.2", "127.0.0.3"] * 2 + ["127.0.0.1"]


def test_random_reaches_every_variant() -> None:
    random.seed(7)
    entry = entry_for(PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy="random")]))
    assert {entry.pick(b"127.9.0.1")[0] for _ in range(300)} == {
        "127.0.0.1", "127.0.0.2", "127.0.0.3"
    }


def test_weighted_picks_each_starting_member_in_proportion_to_its_weight() -> None:
    random.seed(20240601)
    entry = entry_for(PoolSet([pool(member("127.0.0.1", weight=1), member("127.0.0.2", weight=3),
                                    member("127.0.0.3", weight=6), policy="weighted")]))
    picks = Counter(entry.pick(b"127.9.0.1")[0] for _ in range(20_000))
    shares = {address: n / 20_000 for address, n in picks.items()}
    assert shares["127.0.0.1"] == pytest.approx(0.1, abs=0.02)
    assert shares["127.0.0.2"] == pytest.approx(0.3, abs=0.03)
    assert shares["127.0.0.3"] == pytest.approx(0.6, abs=0.03)


CLIENTS = [f"127.{i // 250}.{i % 250}.1".encode() for i in range(1000)]
"""Synthetic client addresses, as the handler passes them to `Picker.pick`."""


def test_hash_gives_a_client_the_same_variant_every_time() -> None:
    entry = entry_for(PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy="hash")]))
    for client in CLIENTS[:50]:
        assert len({entry.pick(client) for _ in range(5)}) == 1


def test_hash_sends_clients_to_every_member() -> None:
    entry = entry_for(PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy="hash")]))
    picks = Counter(entry.pick(client)[0] for client in CLIENTS)
    assert set(picks) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_hash_shares_clients_evenly_between_members() -> None:
    entry = entry_for(PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy="hash")]))
    picks = Counter(entry.pick(client)[0] for client in CLIENTS)
    assert all(250 < n < 420 for n in picks.values())  # ~333 each


def test_hash_moves_only_the_clients_of_a_member_that_goes_down() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4",
                          policy="hash", count=2)])
    before_entry = entry_for(pools)
    before = {client: before_entry.pick(client) for client in CLIENTS}
    set_up(pools, "127.0.0.3", False)
    after_entry = entry_for(pools)
    after = {client: after_entry.pick(client) for client in CLIENTS}
    moved = {client for client in CLIENTS if after[client][0] != before[client][0]}
    assert moved == {client for client in CLIENTS if before[client][0] == "127.0.0.3"}
    assert 150 < len(moved) < 350  # about a quarter


def test_hash_spreads_the_clients_of_a_member_that_goes_down_over_the_others() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", policy="hash")])
    before_entry = entry_for(pools)
    orphans = [client for client in CLIENTS if before_entry.pick(client)[0] == "127.0.0.3"]
    set_up(pools, "127.0.0.3", False)
    after_entry = entry_for(pools)
    landed = Counter(after_entry.pick(client)[0] for client in orphans)
    assert set(landed) == {"127.0.0.1", "127.0.0.2", "127.0.0.4"}
    assert max(landed.values()) < 0.6 * len(orphans)


def test_hash_brings_back_exactly_the_clients_of_a_member_that_returns() -> None:
    pools = PoolSet([pool("127.0.0.1", "127.0.0.2", "127.0.0.3", policy="hash")])
    before = {client: entry_for(pools).pick(client) for client in CLIENTS}
    set_up(pools, "127.0.0.2", False)
    set_up(pools, "127.0.0.2", True)
    after = {client: entry_for(pools).pick(client) for client in CLIENTS}
    assert after == before


def test_an_all_answer_holds_at_most_max_addresses() -> None:
    members = [f"10.0.{i >> 8}.{i & 255}" for i in range(5_000)]
    pools = PoolSet([pool(*members, policy="all")])
    assert len(addresses(pools.selection(WEB, 4))) == pool_mod.MAX_ADDRESSES
