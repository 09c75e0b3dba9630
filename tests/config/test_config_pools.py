"""Config of pools and health checks: keys, defaults, merging, and errors at exact key paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from dnslib import QTYPE

from edgedns.config import Config, ConfigError, load
from edgedns.dns import names
from edgedns.pools.health.checks import CheckSpec
from edgedns.pools.pool import Member, PoolSpec

POOLS = "zones.site.lan.pools"


@pytest.fixture
def config(tmp_path: Path):
    """``config(yaml_text)`` → the loaded `Config`."""

    def config(text: str) -> Config:
        path = tmp_path / "edgedns.yaml"
        path.write_text(textwrap.dedent(text))
        return load(path)

    return config


@pytest.fixture
def error(tmp_path: Path):
    """``error(yaml_text)`` → (key path, message) of the `ConfigError` loading raises."""

    def error(text: str) -> tuple[str, str]:
        path = tmp_path / "edgedns.yaml"
        path.write_text(textwrap.dedent(text))
        with pytest.raises(ConfigError) as info:
            load(path)
        assert str(info.value) == f"{path}: {info.value.path}: {info.value.message}"
        return info.value.path, info.value.message

    return error


@pytest.fixture
def web(config):
    """``web(pool_yaml, defaults="")`` → the PoolSpec of pool 'web' in zone site.lan."""

    def web(pool_yaml: str, defaults: str = "") -> PoolSpec:
        cfg = config(f"{defaults}\nzones:\n  site.lan:\n    pools:\n      web: {pool_yaml}\n")
        (found,) = [p for p in cfg.pools if p.name == names.from_text("web.site.lan.")]
        return found

    return web


@pytest.fixture
def web_error(error):
    """``web_error(pool_yaml, defaults="")`` → (path, message) of the error loading it."""

    def web_error(pool_yaml: str, defaults: str = "") -> tuple[str, str]:
        return error(f"{defaults}\nzones:\n  site.lan:\n    pools:\n      web: {pool_yaml}\n")

    return web_error


# --- pool keys and their defaults -------------------------------------------------------------


def test_a_pool_with_only_members_gets_every_default(web) -> None:
    pool = web("{members: [127.0.0.1]}")
    assert pool == PoolSpec(
        name=names.from_text("web.site.lan."), ttl=1, policy="all", count=None, preempt=True,
        members=(Member("127.0.0.1", CheckSpec()),), when_all_down="serve_all", fallback=(),
    )


def test_the_default_check_is_icmp_twice_a_second_confirming_changes_every_100ms(web) -> None:
    check = web("{members: [127.0.0.1]}").members[0].check
    assert (check.type, check.interval, check.timeout, check.fall, check.rise,
            check.retry_interval) == ("icmp", 0.5, 0.1, 5, 2, 0.1)
    assert check.expect_status == tuple(range(200, 400))


def test_pool_names_are_relative_to_the_zone(config) -> None:
    cfg = config("zones: {site.lan: {pools: {web.dc1: {members: [127.0.0.1]}}}}\n")
    assert [p.name for p in cfg.pools] == [names.from_text("web.dc1.site.lan.")]


def test_a_pool_name_with_a_trailing_dot_is_absolute(config) -> None:
    cfg = config("zones: {site.lan: {pools: {web.site.lan.: {members: [127.0.0.1]}}}}\n")
    assert [p.name for p in cfg.pools] == [names.from_text("web.site.lan.")]


def test_pools_of_every_zone_are_collected(config) -> None:
    cfg = config("""\
        zones:
          a.lan: {pools: {web: {members: [127.0.0.1]}}}
          b.lan: {pools: {web: {members: [127.0.0.2]}, api: {members: [127.0.0.3]}}}
    """)
    assert sorted(names.to_text(p.name) for p in cfg.pools) == [
        "api.b.lan.", "web.a.lan.", "web.b.lan."]


def test_a_pool_gives_its_name_placeholder_address_rrsets_per_family(config) -> None:
    cfg = config("zones: {site.lan: {pools: {web: {ttl: 7, members: [127.0.0.1, '::1']}}}}\n")
    node = cfg.zones[0].nodes[names.from_text("web.site.lan.")]
    assert {r.rtype: (r.ttl, r.pool) for r in node} == {
        QTYPE.A: (7, True), QTYPE.AAAA: (7, True)}


def test_other_record_types_may_live_beside_a_pool(config) -> None:
    cfg = config("""\
        zones:
          site.lan:
            records: {web: {TXT: hello}}
            pools: {web: {members: [127.0.0.1]}}
    """)
    node = cfg.zones[0].nodes[names.from_text("web.site.lan.")]
    assert {r.rtype for r in node} == {QTYPE.TXT, QTYPE.A}


def test_pool_ttl_count_and_policy_are_read(web) -> None:
    pool = web("{ttl: 30, policy: round_robin, count: 2, members: [127.0.0.1]}")
    assert (pool.ttl, pool.policy, pool.count) == (30, "round_robin", 2)


@pytest.mark.parametrize("policy", ["all", "random", "round_robin", "weighted", "failover",
                                    "hash"])
def test_every_policy_is_accepted(web, policy) -> None:
    assert web(f"{{policy: {policy}, members: [127.0.0.1]}}").policy == policy


def test_preempt_false_is_read_for_a_failover_pool(web) -> None:
    assert web("{policy: failover, preempt: false, members: [127.0.0.1]}").preempt is False


def test_members_may_be_mappings_with_weight_priority_and_check(web) -> None:
    pool = web("""
        members:
          - 127.0.0.1
          - {address: 127.0.0.2, weight: 3, priority: 10, check: {type: tcp, port: 22}}
    """)
    assert pool.members == (
        Member("127.0.0.1", CheckSpec()),
        Member("127.0.0.2", CheckSpec(type="tcp", port=22), weight=3, priority=10),
    )


def test_member_addresses_are_canonicalised(web) -> None:
    pool = web("{members: ['0:0::0:1', ' 127.0.0.1 ']}")
    assert [m.address for m in pool.members] == ["::1", "127.0.0.1"]


@pytest.mark.parametrize("when", ["serve_all", "servfail", "nodata"])
def test_when_all_down_is_read(web, when) -> None:
    assert web(f"{{when_all_down: {when}, members: [127.0.0.1]}}").when_all_down == when


def test_fallback_addresses_are_read_as_a_list_or_a_single_address(web) -> None:
    listed = web("{when_all_down: fallback, fallback: [127.0.0.9, '::1'], members: [127.0.0.1]}")
    assert listed.fallback == ("127.0.0.9", "::1")
    single = web("{when_all_down: fallback, fallback: 127.0.0.9, members: [127.0.0.1]}")
    assert single.fallback == ("127.0.0.9",)


# --- check keys -------------------------------------------------------------------------------


def check_of(web, check_yaml: str) -> CheckSpec:
    return web(f"{{check: {check_yaml}, members: [127.0.0.1]}}").members[0].check


def test_every_check_key_is_read(web) -> None:
    check = check_of(web, """{type: https, interval: 2s, timeout: 250ms, fall: 3, rise: 4,
        retry_interval: 300ms, port: 8443, address: 127.0.0.5, path: /healthz,
        expect_status: 204, expect_body: ready, host: app.site.lan, verify_tls: true}""")
    assert check == CheckSpec(
        type="https", interval=2.0, timeout=0.25, fall=3, rise=4, retry_interval=0.3, port=8443,
        address="127.0.0.5", path="/healthz", expect_status=(204,), expect_body="ready",
        host="app.site.lan", verify_tls=True,
    )


@pytest.mark.parametrize("interval, seconds", [("1m", 60.0), ("1.5", 1.5), (2, 2.0),
                                               ("100ms", 0.1)])
def test_check_interval_is_a_duration(web, interval, seconds) -> None:
    assert check_of(web, f"{{interval: {interval}, timeout: 100ms}}").interval == seconds


def test_expect_status_accepts_a_range(web) -> None:
    check = check_of(web, "{type: http, expect_status: '200-299'}")
    assert check.expect_status == tuple(range(200, 300))


def test_expect_status_accepts_a_list_of_codes_and_ranges(web) -> None:
    check = check_of(web, "{type: http, expect_status: [204, '301-302', 200, 204]}")
    assert check.expect_status == (200, 204, 301, 302)


def test_an_http_check_without_a_port_probes_port_80_and_https_443(web) -> None:
    assert web("{check: {type: http}, members: [127.0.0.1]}").members[0].target.port == 80
    assert web("{check: {type: https}, members: [127.0.0.1]}").members[0].target.port == 443


def test_check_address_probes_another_address_than_the_one_answered(web) -> None:
    member = web("{check: {address: 127.0.0.5}, members: [127.0.0.1]}").members[0]
    assert member.address == "127.0.0.1"
    assert member.target.address == "127.0.0.5"


# --- merging: defaults.check → pool check → member check --------------------------------------

DEFAULTS = "defaults: {check: {type: tcp, port: 80, interval: 2s, fall: 5}}"


def test_defaults_check_applies_to_every_pool(web) -> None:
    check = web("{members: [127.0.0.1]}", DEFAULTS).members[0].check
    assert check == CheckSpec(type="tcp", port=80, interval=2.0, fall=5)


def test_a_pool_check_overrides_only_the_keys_it_gives(web) -> None:
    check = web("{check: {timeout: 1s}, members: [127.0.0.1]}", DEFAULTS).members[0].check
    assert check == CheckSpec(type="tcp", port=80, interval=2.0, timeout=1.0, fall=5)


def test_a_member_check_overrides_only_the_keys_it_gives_over_the_pool_check(web) -> None:
    pool = web("""
        check: {timeout: 1s}
        members:
          - {address: 127.0.0.1, check: {port: 81, rise: 3}}
          - 127.0.0.2
    """, DEFAULTS)
    assert pool.members[0].check == CheckSpec(type="tcp", port=81, interval=2.0, timeout=1.0,
                                              fall=5, rise=3)
    assert pool.members[1].check == CheckSpec(type="tcp", port=80, interval=2.0, timeout=1.0,
                                              fall=5)


def test_changing_the_check_type_drops_an_inherited_port(web) -> None:
    pool = web("""
        members:
          - {address: 127.0.0.1, check: {type: icmp}}
          - {address: 127.0.0.2, check: {type: http}}
          - {address: 127.0.0.3, check: {type: http, port: 8080}}
    """, DEFAULTS)
    assert [m.check.port for m in pool.members] == [None, None, 8080]
    assert [m.target.port for m in pool.members] == [None, 80, 8080]


def test_a_member_check_type_none_is_never_probed(web) -> None:
    pool = web("{members: [{address: 127.0.0.1, check: {type: none}}]}", DEFAULTS)
    assert pool.members[0].target is None


# --- errors at exact key paths ----------------------------------------------------------------


def test_unknown_pool_key_lists_the_allowed_keys(web_error) -> None:
    assert web_error("{members: [127.0.0.1], colour: blue}") == (
        f"{POOLS}.web.colour",
        "unknown key (allowed: ttl, policy, count, preempt, check, members, when_all_down, "
        "fallback)",
    )


def test_unknown_member_key_is_named_with_its_index(web_error) -> None:
    assert web_error("{members: [127.0.0.1, {address: 127.0.0.2, wieght: 2}]}") == (
        f"{POOLS}.web.members[1].wieght",
        "unknown key (allowed: address, weight, priority, check)",
    )


def test_unknown_check_key_in_a_pool_is_named(web_error) -> None:
    path, message = web_error("{check: {intervall: 1s}, members: [127.0.0.1]}")
    assert path == f"{POOLS}.web.check.intervall"
    assert message.startswith("unknown key (allowed: type, interval, timeout, fall, rise, "
                              "retry_interval, port")


def test_unknown_check_key_in_defaults_is_named(web_error) -> None:
    path, _ = web_error("{members: [127.0.0.1]}", "defaults: {check: {kind: tcp}}")
    assert path == "defaults.check.kind"


def test_unknown_defaults_key_is_named(web_error) -> None:
    assert web_error("{members: [127.0.0.1]}", "defaults: {checks: {}}") == (
        "defaults.checks", "unknown key (allowed: check)")


def test_a_pool_that_is_not_a_mapping_is_rejected(web_error) -> None:
    assert web_error("[127.0.0.1]") == (f"{POOLS}.web", "must be a mapping, not a list")


def test_a_pool_needs_members(web_error) -> None:
    expected = (f"{POOLS}.web.members", "must be a non-empty list of addresses")
    assert web_error("{ttl: 5}") == expected
    assert web_error("{members: []}") == expected
    assert web_error("{members: 127.0.0.1}") == expected


def test_bad_policy_names_the_choices(web_error) -> None:
    assert web_error("{policy: roundrobin, members: [127.0.0.1]}") == (
        f"{POOLS}.web.policy",
        "'roundrobin' is not one of: all, random, round_robin, weighted, failover, hash",
    )


def test_bad_when_all_down_names_the_choices(web_error) -> None:
    assert web_error("{when_all_down: panic, members: [127.0.0.1]}") == (
        f"{POOLS}.web.when_all_down",
        "'panic' is not one of: serve_all, servfail, nodata, fallback",
    )


def test_bad_check_type_names_the_choices(web_error) -> None:
    assert web_error("{check: {type: udp}, members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.type", "'udp' is not one of: icmp, tcp, http, https, none")


def test_count_below_one_is_rejected(web_error) -> None:
    assert web_error("{count: 0, members: [127.0.0.1]}") == (
        f"{POOLS}.web.count", "must be a whole number of at least 1, not 0")


def test_a_bad_pool_ttl_is_rejected_at_its_key(web_error) -> None:
    path, _ = web_error("{ttl: soon, members: [127.0.0.1]}")
    assert path == f"{POOLS}.web.ttl"


def test_a_tcp_check_without_a_port_is_rejected_in_a_pool(web_error) -> None:
    assert web_error("{check: {type: tcp}, members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.port", "a tcp check needs a port")


def test_a_tcp_check_without_a_port_is_rejected_in_defaults(web_error) -> None:
    path, message = web_error("{members: [127.0.0.1]}", "defaults: {check: {type: tcp}}")
    assert (path, message) == ("defaults.check.port", "a tcp check needs a port")


def test_a_tcp_check_without_a_port_is_rejected_in_a_member(web_error) -> None:
    path, _ = web_error("{members: [127.0.0.1, {address: 127.0.0.2, check: {type: tcp}}]}")
    assert path == f"{POOLS}.web.members[1].check.port"


@pytest.mark.parametrize("kind", ["icmp", "none"])
def test_a_port_on_a_check_without_ports_is_rejected(web_error, kind) -> None:
    assert web_error(f"{{check: {{type: {kind}, port: 80}}, members: [127.0.0.1]}}") == (
        f"{POOLS}.web.check.port", f"has no meaning for a {kind} check")


def test_a_port_on_an_inherited_icmp_check_is_rejected(web_error) -> None:
    path, _ = web_error("{members: [{address: 127.0.0.1, check: {port: 80}}]}")
    assert path == f"{POOLS}.web.members[0].check.port"


@pytest.mark.parametrize("port", [0, 65536, "http"])
def test_a_port_outside_1_to_65535_is_rejected(web_error, port) -> None:
    path, message = web_error(f"{{check: {{type: tcp, port: {port}}}, members: [127.0.0.1]}}")
    assert path == f"{POOLS}.web.check.port"
    assert message.startswith("must be a whole number from 1 to 65535")


def test_a_timeout_above_the_interval_is_rejected(web_error) -> None:
    assert web_error("{check: {interval: 1s, timeout: 2s}, members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.timeout",
        "must be above 0 and at most the interval (1s), so probes of one target never overlap",
    )


def test_a_zero_timeout_is_rejected(web_error) -> None:
    path, _ = web_error("{check: {timeout: 0}, members: [127.0.0.1]}")
    assert path == f"{POOLS}.web.check.timeout"


def test_an_interval_below_100ms_is_rejected(web_error) -> None:
    assert web_error("{check: {interval: 50ms, timeout: 10ms}, members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.interval", "must be at least 100ms")


@pytest.mark.parametrize("retry", ["10ms", "3s"])
def test_a_retry_interval_outside_20ms_to_the_interval_is_rejected(web_error, retry) -> None:
    assert web_error(f"{{check: {{interval: 2s, retry_interval: {retry}}}, "
                     "members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.retry_interval", "must be at least 20ms and at most the interval "
        "(2s)")


def test_a_bad_duration_is_rejected_at_its_key(web_error) -> None:
    path, message = web_error("{check: {interval: soon}, members: [127.0.0.1]}")
    assert path == f"{POOLS}.web.check.interval"
    assert "is not a duration" in message


@pytest.mark.parametrize("key", ["fall", "rise"])
def test_fall_and_rise_must_be_at_least_one(web_error, key) -> None:
    assert web_error(f"{{check: {{{key}: 0}}, members: [127.0.0.1]}}") == (
        f"{POOLS}.web.check.{key}", "must be a whole number of at least 1, not 0")


@pytest.mark.parametrize("status", ["600", "abc", "'300-200'", "[200, '2xx']"])
def test_bad_expect_status_is_rejected(web_error, status) -> None:
    path, _ = web_error(f"{{check: {{type: http, expect_status: {status}}}, "
                        "members: [127.0.0.1]}")
    assert path == f"{POOLS}.web.check.expect_status"


@pytest.mark.parametrize("path_value", ["healthz", "'/a b'"])
def test_an_http_path_must_start_with_a_slash_and_hold_no_spaces(web_error, path_value) -> None:
    assert web_error(f"{{check: {{type: http, path: {path_value}}}, members: [127.0.0.1]}}") == (
        f"{POOLS}.web.check.path", "must start with / and hold no spaces")


def test_verify_tls_must_be_a_boolean(web_error) -> None:
    assert web_error("{check: {type: https, verify_tls: maybe}, members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.verify_tls", "must be true or false, not 'maybe'")


def test_a_bad_check_address_is_rejected(web_error) -> None:
    assert web_error("{check: {address: nowhere}, members: [127.0.0.1]}") == (
        f"{POOLS}.web.check.address", "'nowhere' is not an IP address")


def test_a_member_listed_twice_is_rejected_at_its_second_place(web_error) -> None:
    assert web_error("{members: [127.0.0.1, 127.0.0.2, 127.0.0.1]}") == (
        f"{POOLS}.web.members[2]", "127.0.0.1 is listed twice")


def test_a_member_listed_twice_in_different_spellings_is_rejected(web_error) -> None:
    assert web_error("{members: ['::1', {address: '0::1'}]}") == (
        f"{POOLS}.web.members[1]", "::1 is listed twice")


def test_a_bad_member_address_is_rejected_at_its_index(web_error) -> None:
    assert web_error("{members: [127.0.0.1, 127.0.0.256]}") == (
        f"{POOLS}.web.members[1]", "'127.0.0.256' is not an IP address")


def test_a_bad_member_address_in_a_mapping_is_rejected_at_its_key(web_error) -> None:
    assert web_error("{members: [{address: web1}]}") == (
        f"{POOLS}.web.members[0].address", "'web1' is not an IP address")


def test_a_member_mapping_needs_an_address(web_error) -> None:
    assert web_error("{members: [{weight: 2}]}") == (
        f"{POOLS}.web.members[0].address", "is required")


def test_a_weight_below_one_is_rejected(web_error) -> None:
    assert web_error("{policy: weighted, members: [127.0.0.1, {address: 127.0.0.2, "
                     "weight: 0}]}") == (
        f"{POOLS}.web.members[1].weight", "must be a whole number of at least 1, not 0")


def test_a_negative_priority_is_rejected(web_error) -> None:
    path, _ = web_error("{policy: failover, members: [{address: 127.0.0.1, priority: -1}]}")
    assert path == f"{POOLS}.web.members[0].priority"


def test_a_bad_fallback_address_is_rejected_at_its_index(web_error) -> None:
    path, _ = web_error("{when_all_down: fallback, fallback: [127.0.0.9, x], "
                        "members: [127.0.0.1]}")
    assert path == f"{POOLS}.web.fallback[1]"


def test_when_all_down_fallback_needs_fallback_addresses(web_error) -> None:
    assert web_error("{when_all_down: fallback, members: [127.0.0.1]}") == (
        f"{POOLS}.web.fallback", "when_all_down: fallback needs addresses here")


def test_fallback_addresses_need_when_all_down_fallback(web_error) -> None:
    assert web_error("{fallback: [127.0.0.9], members: [127.0.0.1]}") == (
        f"{POOLS}.web.fallback", "only used with when_all_down: fallback")


def test_preempt_on_a_pool_that_is_not_failover_is_rejected(web_error) -> None:
    assert web_error("{policy: all, preempt: false, members: [127.0.0.1]}") == (
        f"{POOLS}.web.preempt", "only applies to policy failover")


def test_preempt_must_be_a_boolean(web_error) -> None:
    assert web_error("{policy: failover, preempt: sometimes, members: [127.0.0.1]}") == (
        f"{POOLS}.web.preempt", "must be true or false, not 'sometimes'")


@pytest.mark.parametrize("rtype, value", [("A", "127.0.0.1"), ("AAAA", "'::1'"),
                                          ("CNAME", "api")])
def test_a_pool_clashing_with_an_address_or_cname_record_is_rejected(error, rtype, value) -> None:
    path, message = error(f"""\
        zones:
          site.lan:
            records: {{web: {{{rtype}: {value}}}}}
            pools: {{web: {{members: [127.0.0.1]}}}}
    """)
    assert path == f"{POOLS}.web"
    assert message == (
        f"pool web.site.lan. clashes with the {rtype} record at zones.site.lan.records.web."
        f"{rtype}; a pool's name gets its A/AAAA from the pool alone"
    )


@pytest.mark.parametrize("pool_name", ["sub", "web.sub"])
def test_a_pool_at_or_below_a_delegation_is_rejected(error, pool_name) -> None:
    path, message = error(f"""\
        zones:
          site.lan:
            records: {{sub: {{NS: ns.elsewhere.}}}}
            pools: {{{pool_name}: {{members: [127.0.0.1]}}}}
    """)
    assert path == f"{POOLS}.{pool_name}"
    assert message == f"pool {pool_name}.site.lan. is at or below the delegation at sub.site.lan."


def test_a_pool_outside_its_zone_is_rejected(error) -> None:
    path, message = error("zones: {site.lan: {pools: {web.other.lan.: {members: [127.0.0.1]}}}}")
    assert path == f"{POOLS}.web.other.lan."
    assert message == "pool web.other.lan. is outside the zone site.lan."
