"""The YAML config: every key, its default, and errors naming the file and exact key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from dnslib import QTYPE

from edgedns.authority.zone import RRset, Zone
from edgedns.config import Config, ConfigError, Endpoint, TcpSettings, load
from edgedns.dns import names
from tests.support import EXAMPLES, as_dnslib


@pytest.fixture
def write(tmp_path: Path):
    """``write(yaml_text, **files)`` → path of the config, with `files` beside it."""

    def write(text: str, **files: str) -> Path:
        for name, content in files.items():
            (tmp_path / name).write_text(textwrap.dedent(content))
        path = tmp_path / "edgedns.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def config(write):
    """``config(yaml_text, **files)`` → the loaded `Config`."""

    def config(text: str, **files: str) -> Config:
        return load(write(text, **files))

    return config


@pytest.fixture
def error(write):
    """``error(yaml_text, **files)`` → the `ConfigError` that loading raises."""

    def error(text: str, **files: str) -> ConfigError:
        path = write(text, **files)
        with pytest.raises(ConfigError) as info:
            load(path)
        assert info.value.source == str(path)
        assert str(info.value).startswith(f"{path}: ")
        return info.value

    return error


def zone(cfg: Config, apex: str = "site.lan.") -> Zone:
    (found,) = [z for z in cfg.zones if z.origin == names.from_text(apex)]
    return found


def rrset(cfg: Config, owner: str, rtype: str, apex: str = "site.lan.") -> RRset:
    found = zone(cfg, apex).get(names.from_text(owner), getattr(QTYPE, rtype))
    assert found is not None
    return found


def values(cfg: Config, owner: str, rtype: str, apex: str = "site.lan.") -> list[str]:
    found = rrset(cfg, owner, rtype, apex)
    return [str(as_dnslib(found.rtype, rd)) for rd in found.rdatas]


def decoded(cfg: Config, owner: str, rtype: str) -> list:
    """The RRset's data as dnslib decodes it (attributes like .mname, .times, .data)."""
    found = rrset(cfg, owner, rtype)
    return [as_dnslib(found.rtype, rd) for rd in found.rdatas]


MINIMAL = "zones: {site.lan: {}}\n"


# --- the file itself --------------------------------------------------------------------------


def test_example_config_loads() -> None:
    cfg = load(EXAMPLES / "zones.yaml")
    assert [names.to_text(z.origin) for z in cfg.zones] == ["site.lan.", "0.0.127.in-addr.arpa."]
    assert values(cfg, "www.site.lan.", "CNAME") == ["web.site.lan."]
    assert values(cfg, "11.0.0.127.in-addr.arpa.", "PTR", "0.0.127.in-addr.arpa.") == [
        "web.site.lan."
    ]


def test_load_accepts_a_string_path(write) -> None:
    cfg = load(str(write(MINIMAL)))
    assert isinstance(cfg.source, Path)


def test_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


def test_config_that_is_not_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "edgedns.yaml"
    path.write_bytes(b"zones: {site.lan: {}}\n# \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(path)


def test_invalid_yaml_is_an_error_naming_the_file_and_line(error) -> None:
    exc = error("zones: {site.lan: {}\n")
    assert exc.path == ""
    assert "not valid YAML" in exc.message
    assert "edgedns.yaml\", line 2" in exc.message


def test_duplicate_top_level_yaml_key_is_rejected_with_its_line(error) -> None:
    exc = error("zones: {a.lan: {}}\nzones: {b.lan: {}}\n")
    assert "duplicate key 'zones'" in exc.message
    assert "line 2, column 1" in exc.message


def test_duplicate_nested_yaml_key_is_rejected_instead_of_keeping_the_last(error) -> None:
    exc = error("""\
        zones:
          site.lan:
            records:
              www: {A: 192.0.2.1}
              www: {A: 192.0.2.2}
    """)
    assert "duplicate key 'www'" in exc.message
    assert "line 5" in exc.message


def test_a_yaml_key_that_is_not_plain_text_is_invalid_yaml_not_a_crash(error) -> None:
    exc = error("zones: {site.lan: {records: {? [a, b] : {A: 192.0.2.1}}}}\n")
    assert "a mapping key must be plain text" in exc.message


def test_top_level_that_is_not_a_mapping_is_rejected(error) -> None:
    assert error("- zones\n").message == "must be a mapping, not a list"


def test_empty_config_needs_a_zone(error) -> None:
    exc = error("")
    assert (exc.path, exc.message) == ("zones", "at least one zone is needed")


def test_unknown_top_level_key_lists_the_allowed_keys(error) -> None:
    exc = error("zone: {site.lan: {}}\n")
    assert exc.path == "zone"
    assert exc.message == (
        "unknown key (allowed: listen, tcp, defaults, zones, forward, cache, admin, "
        "reload_interval, query_log, shutdown_timeout, debug_allow, packet_cache, rate_limit, "
        "state_dir, notify, user, vrrp, source)"
    )


# --- listen -----------------------------------------------------------------------------------


def test_listen_defaults_to_loopback_port_5353(config) -> None:
    assert config(MINIMAL).listen == (Endpoint("127.0.0.1", 5353),)


def test_listen_accepts_ipv4_and_bracketed_ipv6_with_ports(config) -> None:
    cfg = config('listen: ["192.0.2.1:53", "[2001:db8::1]:5353"]\n' + MINIMAL)
    assert cfg.listen == (Endpoint("192.0.2.1", 53), Endpoint("2001:db8::1", 5353))


def test_listen_address_without_port_uses_port_53(config) -> None:
    cfg = config('listen: ["192.0.2.1", "::1", "[2001:db8::1]"]\n' + MINIMAL)
    assert cfg.listen == (
        Endpoint("192.0.2.1", 53), Endpoint("::1", 53), Endpoint("2001:db8::1", 53)
    )


def test_endpoint_prints_ipv6_in_brackets(config) -> None:
    cfg = config('listen: ["[::1]:53", "127.0.0.1:53"]\n' + MINIMAL)
    assert [str(e) for e in cfg.listen] == ["[::1]:53", "127.0.0.1:53"]


def test_listen_port_0_is_accepted_to_let_the_kernel_pick(config) -> None:
    assert config('listen: ["127.0.0.1:0"]\n' + MINIMAL).listen == (Endpoint("127.0.0.1", 0),)


def test_listen_override_replaces_the_configured_addresses(write) -> None:
    cfg = load(write('listen: ["192.0.2.1:53"]\n' + MINIMAL), ("127.0.0.1:0",))
    assert cfg.listen == (Endpoint("127.0.0.1", 0),)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("localhost:53", "'localhost' is not an IP address"),
        ("192.0.2.1:65536", "port must be 0-65535"),
        ("192.0.2.1:http", "port must be 0-65535"),
        ("192.0.2.1:", "port must be 0-65535"),
        ("[::1", "write IPv6 as [address]:port"),
        ("[::1]53", "write IPv6 as [address]:port"),
        ("[::1]:99999", "port must be 0-65535"),
        ("300.0.0.1:53", "'300.0.0.1' is not an IP address"),
    ],
)
def test_bad_listen_address_is_rejected_at_its_list_index(
    error, address: str, problem: str
) -> None:
    exc = error(f'listen: ["127.0.0.1:53", "{address}"]\n' + MINIMAL)
    assert exc.path == "listen[1]"
    assert exc.message == f"{address!r}: {problem}"


def test_a_null_listen_address_says_what_is_expected(error) -> None:
    exc = error('listen: ["127.0.0.1:53", null]\n' + MINIMAL)
    assert (exc.path, exc.message) == ("listen[1]", "expected ADDR:PORT, not null")


@pytest.mark.parametrize("listen", ['"127.0.0.1:53"', "[]", "{a: 1}"])
def test_listen_that_is_not_a_non_empty_list_is_rejected(error, listen: str) -> None:
    exc = error(f"listen: {listen}\n" + MINIMAL)
    assert (exc.path, exc.message) == ("listen", "must be a non-empty list of address:port")


def test_listen_with_the_same_address_twice_is_rejected(error) -> None:
    exc = error('listen: ["127.0.0.1:53", "127.0.0.1:53"]\n' + MINIMAL)
    assert (exc.path, exc.message) == ("listen", "lists the same address twice")


# --- tcp --------------------------------------------------------------------------------------


def test_tcp_defaults_to_10s_idle_timeout_256_connections_32_per_client(config) -> None:
    assert config(MINIMAL).tcp == TcpSettings(idle_timeout=10.0, max_connections=256,
                                              max_per_client=32)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("250ms", 0.25), ("1s", 1.0), ("1m", 60.0), ("1h", 3600.0), ("1.5s", 1.5), ("5", 5.0),
     ("2.5", 2.5), ("0", 0.0), ('"7"', 7.0), ("1m30s", 90.0), ("1m30", 90.0),
     ("1h30m", 5400.0), ("1d2h", 93600.0), ("1w", 604800.0), ("1M30S", 90.0)],
)
def test_tcp_idle_timeout_accepts_durations_and_plain_seconds(
    config, written: str, seconds: float
) -> None:
    cfg = config(f"tcp: {{idle_timeout: {written}}}\n" + MINIMAL)
    assert cfg.tcp.idle_timeout == seconds


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("5x", "'5x' is not a duration (seconds, or units like 250ms, 1m30s, 2h)"),
        ("1 m", "'1 m' is not a duration (seconds, or units like 250ms, 1m30s, 2h)"),
        ("-1s", "'-1s' is not a duration (seconds, or units like 250ms, 1m30s, 2h)"),
        ("m30", "'m30' is not a duration (seconds, or units like 250ms, 1m30s, 2h)"),
        ("-1", "-1 is negative"),
        ("true", "True is not a duration"),
        (".nan", "nan is not a finite duration"),
        (".inf", "inf is not a finite duration"),
    ],
)
def test_bad_tcp_idle_timeout_is_rejected_at_its_key(error, written: str, problem: str) -> None:
    exc = error(f"tcp: {{idle_timeout: {written}}}\n" + MINIMAL)
    assert (exc.path, exc.message) == ("tcp.idle_timeout", problem)


@pytest.mark.parametrize("key", ["max_connections", "max_per_client"])
def test_tcp_connection_caps_are_read(config, key: str) -> None:
    assert getattr(config(f"tcp: {{{key}: 1}}\n" + MINIMAL).tcp, key) == 1


@pytest.mark.parametrize("key", ["max_connections", "max_per_client"])
@pytest.mark.parametrize("written", ["0", "-5", "1.5", "many", "true"])
def test_tcp_connection_caps_must_be_whole_numbers_of_at_least_1(
    error, key: str, written: str
) -> None:
    exc = error(f"tcp: {{{key}: {written}}}\n" + MINIMAL)
    assert exc.path == f"tcp.{key}"
    assert exc.message.startswith("must be a whole number of at least 1, not ")


def test_unknown_tcp_key_lists_the_allowed_keys(error) -> None:
    exc = error("tcp: {idle: 5}\n" + MINIMAL)
    assert exc.path == "tcp.idle"
    assert exc.message == "unknown key (allowed: idle_timeout, max_connections, max_per_client)"


def test_tcp_that_is_not_a_mapping_is_rejected(error) -> None:
    exc = error("tcp: 5\n" + MINIMAL)
    assert (exc.path, exc.message) == ("tcp", "must be a mapping, not int 5")


# --- zones ------------------------------------------------------------------------------------


def test_zones_must_be_a_mapping_of_apex_names(error) -> None:
    exc = error("zones: [site.lan]\n")
    assert (exc.path, exc.message) == ("zones", "must be a mapping, not a list")


def test_zone_apex_may_be_written_with_or_without_trailing_dot(config) -> None:
    cfg = config("zones: {a.lan.: {}, b.lan: {}}\n")
    assert [names.to_text(z.origin) for z in cfg.zones] == ["a.lan.", "b.lan."]


def test_same_zone_written_twice_in_different_case_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {}, SITE.lan.: {}}\n")
    assert (exc.path, exc.message) == ("zones", "the same zone is listed twice")


def test_bad_zone_apex_is_rejected_at_its_key(error) -> None:
    exc = error("zones: {site..lan: {}}\n")
    assert exc.path == "zones.site..lan"
    assert "empty label" in exc.message


def test_unknown_zone_key_lists_the_allowed_keys(error) -> None:
    exc = error("zones: {site.lan: {recods: {}}}\n")
    assert exc.path == "zones.site.lan.recods"
    assert exc.message == "unknown key (allowed: ttl, soa, ns, records, file, pools, hosts)"


def test_zone_that_is_not_a_mapping_is_rejected(error) -> None:
    exc = error("zones: {site.lan: [a]}\n")
    assert (exc.path, exc.message) == ("zones.site.lan", "must be a mapping, not a list")


def test_zone_ttl_defaults_to_300(config) -> None:
    cfg = config("zones: {site.lan: {records: {www: {A: 192.0.2.1}}}}\n")
    assert rrset(cfg, "www.site.lan.", "A").ttl == 300
    assert rrset(cfg, "site.lan.", "SOA").ttl == 300
    assert rrset(cfg, "site.lan.", "NS").ttl == 300


def test_zone_ttl_applies_to_every_record_and_accepts_units(config) -> None:
    cfg = config("zones: {site.lan: {ttl: 1d2h, records: {www: {A: 192.0.2.1}}}}\n")
    assert {rs.ttl for node in zone(cfg).nodes.values() for rs in node} == {93600}


def test_zones_may_nest_each_with_its_own_data(config) -> None:
    cfg = config("""\
        zones:
          site.lan: {records: {www.sub: {A: 192.0.2.1}}}
          sub.site.lan: {records: {www: {A: 192.0.2.2}}}
    """)
    assert values(cfg, "www.sub.site.lan.", "A") == ["192.0.2.1"]
    assert values(cfg, "www.sub.site.lan.", "A", "sub.site.lan.") == ["192.0.2.2"]


def test_bad_zone_ttl_is_rejected_at_its_key(error) -> None:
    exc = error("zones: {site.lan: {ttl: soon}}\n")
    assert exc.path == "zones.site.lan.ttl"
    assert exc.message == "'soon' is not a TTL (seconds, or units like 1h30m)"


# --- SOA and NS -------------------------------------------------------------------------------


def test_soa_and_ns_are_generated_when_omitted(config) -> None:
    cfg = config(MINIMAL)
    assert values(cfg, "site.lan.", "NS") == ["ns1.site.lan."]
    assert values(cfg, "site.lan.", "SOA") == [
        "ns1.site.lan. hostmaster.site.lan. 1 3600 600 86400 30"
    ]


def test_soa_mname_defaults_to_the_first_name_server(config) -> None:
    cfg = config("zones: {site.lan: {ns: [dns1.other., dns2.other.]}}\n")
    assert values(cfg, "site.lan.", "NS") == ["dns1.other.", "dns2.other."]
    assert str(decoded(cfg, "site.lan.", "SOA")[0].mname) == "dns1.other."


def test_ns_may_be_a_single_name(config) -> None:
    cfg = config("zones: {site.lan: {ns: a.ns.}}\n")
    assert values(cfg, "site.lan.", "NS") == ["a.ns."]


def test_soa_fields_given_override_only_their_defaults(config) -> None:
    cfg = config("zones: {site.lan: {soa: {serial: 2024, rname: admin.example., retry: 5m}}}\n")
    assert values(cfg, "site.lan.", "SOA") == [
        "ns1.site.lan. admin.example. 2024 3600 300 86400 30"
    ]


def test_unknown_soa_key_lists_the_fields(error) -> None:
    exc = error("zones: {site.lan: {soa: {minimun: 30}}}\n")
    assert exc.path == "zones.site.lan.soa.minimun"
    assert exc.message == (
        "unknown key (allowed: mname, rname, serial, refresh, retry, expire, minimum)"
    )


def test_bad_soa_field_is_rejected_at_its_own_key(error) -> None:
    exc = error("zones: {site.lan: {soa: {serial: abc}}}\n")
    assert exc.path == "zones.site.lan.soa.serial"
    assert "'abc' is not a number" in exc.message
    assert "expected <mname> <rname> <serial>" in exc.message


def test_soa_field_holding_several_words_is_rejected_at_its_key(error) -> None:
    exc = error("zones: {site.lan: {soa: {mname: ns1 ns2}}}\n")
    assert exc.path == "zones.site.lan.soa.mname"
    assert exc.message == "must be a single name or number, not str 'ns1 ns2'"


def test_soa_timer_out_of_range_is_rejected_at_its_key(error) -> None:
    exc = error("zones: {site.lan: {soa: {expire: 2147483648}}}\n")
    assert exc.path == "zones.site.lan.soa.expire"
    assert "over 2147483647" in exc.message


@pytest.mark.parametrize("ns", ["[]", "{a: b}"])
def test_ns_that_is_not_a_list_of_names_is_rejected(error, ns: str) -> None:
    exc = error(f"zones: {{site.lan: {{ns: {ns}}}}}\n")
    assert (exc.path, exc.message) == ("zones.site.lan.ns", "must be a list of name server names")


def test_empty_ns_entry_is_rejected_not_read_as_the_name_none(error) -> None:
    exc = error("zones: {site.lan: {ns: [ns1, ~]}}\n")
    assert exc.path == "zones.site.lan.ns[1]"
    assert exc.message == "must be a value in zone-file syntax, not empty"


def test_bad_ns_name_is_rejected_at_its_index(error) -> None:
    exc = error("zones: {site.lan: {ns: [ns1, a..b]}}\n")
    assert exc.path == "zones.site.lan.ns[1]"
    assert "empty label" in exc.message


# --- records ----------------------------------------------------------------------------------


def test_records_map_owners_to_types_to_values(config) -> None:
    cfg = config("""\
        zones:
          site.lan:
            records:
              "@": {MX: "10 mail"}
              mail: {A: 192.0.2.25}
              web: {A: [192.0.2.11, 192.0.2.12], AAAA: "2001:db8::1"}
              _mqtt._tcp: {SRV: "0 5 1883 web"}
              "*.dev": {A: 192.0.2.40}
              ext.site.lan.: {CNAME: elsewhere.example.}
    """)
    assert values(cfg, "site.lan.", "MX") == ["10 mail.site.lan."]
    assert values(cfg, "web.site.lan.", "A") == ["192.0.2.11", "192.0.2.12"]
    assert values(cfg, "web.site.lan.", "AAAA") == ["2001:db8::1"]
    assert values(cfg, "_mqtt._tcp.site.lan.", "SRV") == ["0 5 1883 web.site.lan."]
    assert values(cfg, "*.dev.site.lan.", "A") == ["192.0.2.40"]
    assert values(cfg, "ext.site.lan.", "CNAME") == ["elsewhere.example."]


def test_record_type_keys_are_case_insensitive(config) -> None:
    cfg = config("zones: {site.lan: {records: {www: {a: 192.0.2.1}}}}\n")
    assert values(cfg, "www.site.lan.", "A") == ["192.0.2.1"]


def test_numeric_owner_keys_are_names(config) -> None:
    cfg = config("zones: {2.0.192.in-addr.arpa: {records: {1: {PTR: www.site.lan.}}}}\n")
    apex = "2.0.192.in-addr.arpa."
    assert values(cfg, "1.2.0.192.in-addr.arpa.", "PTR", apex) == ["www.site.lan."]


def test_owner_ttl_applies_to_that_owners_records_only(config) -> None:
    cfg = config("""\
        zones:
          site.lan:
            records:
              www: {CNAME: web, ttl: 60}
              web: {A: 192.0.2.1}
    """)
    assert rrset(cfg, "www.site.lan.", "CNAME").ttl == 60
    assert rrset(cfg, "web.site.lan.", "A").ttl == 300


def test_bad_owner_ttl_is_rejected_at_its_key(error) -> None:
    exc = error("zones: {site.lan: {records: {www: {A: 192.0.2.1, ttl: 1x}}}}\n")
    assert exc.path == "zones.site.lan.records.www.ttl"
    assert "is not a TTL" in exc.message


def test_txt_unquoted_text_is_one_string_spaces_and_all(config) -> None:
    cfg = config("zones: {site.lan: {records: {'@': {TXT: site one  two}}}}\n")
    assert decoded(cfg, "site.lan.", "TXT")[0].data == [b"site one  two"]


def test_txt_unquoted_text_keeps_semicolons(config) -> None:
    cfg = config("zones: {site.lan: {records: {'@': {TXT: 'v=DKIM1; k=rsa'}}}}\n")
    assert decoded(cfg, "site.lan.", "TXT")[0].data == [b"v=DKIM1; k=rsa"]


def test_txt_quoted_text_is_zone_file_syntax_with_several_strings(config) -> None:
    cfg = config("""zones: {site.lan: {records: {'@': {TXT: '"a b" "c"'}}}}\n""")
    assert decoded(cfg, "site.lan.", "TXT")[0].data == [b"a b", b"c"]


def test_txt_list_gives_one_record_per_item(config) -> None:
    cfg = config("zones: {site.lan: {records: {'@': {TXT: [one, two]}}}}\n")
    assert [rd.data for rd in decoded(cfg, "site.lan.", "TXT")] == [[b"one"], [b"two"]]


def test_yaml_number_value_is_used_as_written_text(config) -> None:
    cfg = config("zones: {site.lan: {records: {'@': {TXT: 42}}}}\n")
    assert decoded(cfg, "site.lan.", "TXT")[0].data == [b"42"]


def test_yaml_boolean_value_is_rejected_with_advice_to_quote(error) -> None:
    exc = error("zones: {site.lan: {records: {'@': {TXT: yes}}}}\n")
    assert exc.path == "zones.site.lan.records.@.TXT"
    assert "boolean" in exc.message
    assert "quote it" in exc.message


def test_bad_record_value_is_rejected_at_its_key_with_expected_syntax(error) -> None:
    exc = error("zones: {site.lan: {records: {mail: {MX: mail 10}}}}\n")
    assert exc.path == "zones.site.lan.records.mail.MX"
    assert exc.message == (
        "bad MX value 'mail 10': 'mail' is not a number; "
        "expected <preference 0-65535> <exchange name>"
    )


def test_bad_value_in_a_list_is_rejected_at_its_index(error) -> None:
    exc = error("zones: {site.lan: {records: {web: {A: [192.0.2.1, 192.0.2]}}}}\n")
    assert exc.path == "zones.site.lan.records.web.A[1]"
    assert "expected <IPv4 address>" in exc.message


def test_record_value_spanning_lines_is_rejected(error) -> None:
    exc = error('zones: {site.lan: {records: {mail: {MX: "10\\nmail"}}}}\n')
    assert exc.path == "zones.site.lan.records.mail.MX"
    assert exc.message == "a record value must be one line"


def test_record_value_that_is_a_mapping_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {www: {A: {ip: 192.0.2.1}}}}}\n")
    assert exc.path == "zones.site.lan.records.www.A"
    assert exc.message == "must be a value in zone-file syntax, not a mapping"


def test_unknown_record_type_lists_the_types_and_ttl(error) -> None:
    exc = error("zones: {site.lan: {records: {www: {HINFO: pc}}}}\n")
    assert exc.path == "zones.site.lan.records.www.HINFO"
    assert exc.message == (
        "unknown key (a record type: A, AAAA, NS, CNAME, PTR, MX, TXT, SRV, SOA, CAA; or ttl)"
    )


def test_soa_under_records_is_rejected_pointing_at_the_soa_key(error) -> None:
    exc = error("zones: {site.lan: {records: {'@': {SOA: a b 1 2 3 4 5}}}}\n")
    assert exc.path == "zones.site.lan.records.@.SOA"
    assert exc.message == "set the SOA with the zone's 'soa' key"


def test_owner_that_does_not_map_types_to_values_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {www: 192.0.2.1}}}\n")
    assert exc.path == "zones.site.lan.records.www"
    assert exc.message == "must map record types to values, e.g. {A: 192.0.2.1}"


def test_records_that_is_not_a_mapping_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: [www]}}\n")
    assert exc.path == "zones.site.lan.records"
    assert exc.message == "must be a mapping of owner names, not a list"


def test_bad_owner_name_is_rejected_at_its_key(error) -> None:
    exc = error("zones: {site.lan: {records: {w\\\\w: {A: 192.0.2.1}}}}\n")
    assert exc.path == "zones.site.lan.records.w\\\\w"
    assert "escapes in names are not supported" in exc.message


# --- zone consistency -------------------------------------------------------------------------


def test_cname_beside_other_data_is_rejected_with_key_path(error) -> None:
    exc = error("zones: {site.lan: {records: {www: {CNAME: web, A: 192.0.2.1}}}}\n")
    assert exc.path == "zones.site.lan.records.www.CNAME"
    assert exc.message == "CNAME at www.site.lan. cannot coexist with other data (found A)"


def test_two_cnames_at_one_name_are_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {www: {CNAME: [a, b]}}}}\n")
    assert exc.path == "zones.site.lan.records.www.CNAME[1]"
    assert exc.message == "www.site.lan. has more than one CNAME"


def test_duplicate_record_is_rejected_naming_both_places(error) -> None:
    exc = error("zones: {site.lan: {records: {www: {A: [192.0.2.1, 192.0.2.1]}}}}\n")
    assert exc.path == "zones.site.lan.records.www.A[1]"
    assert exc.message == "duplicate record (first at zones.site.lan.records.www.A[0])"


def test_duplicates_are_found_after_values_are_normalised(error) -> None:
    exc = error("zones: {site.lan: {records: {web: {AAAA: ['2001:db8::1', '2001:DB8:0::1']}}}}\n")
    assert exc.path == "zones.site.lan.records.web.AAAA[1]"
    assert exc.message.startswith("duplicate record")


def test_duplicate_of_a_generated_ns_record_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {'@': {NS: ns1}}}}\n")
    assert exc.path == "zones.site.lan.records.@.NS"
    assert exc.message == "duplicate record (first at zones.site.lan.ns[0])"


def test_record_outside_the_zone_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {www.other.lan.: {A: 192.0.2.1}}}}\n")
    assert exc.path == "zones.site.lan.records.www.other.lan..A"
    assert exc.message == "www.other.lan. is outside the zone site.lan."


def test_ttl_mismatch_within_an_rrset_is_rejected(error) -> None:
    exc = error("""\
        zones:
          site.lan:
            records:
              www: {A: 192.0.2.1}
              www.site.lan.: {A: 192.0.2.2, ttl: 60}
    """)
    assert exc.path == "zones.site.lan.records.www.site.lan..A"
    assert exc.message == (
        "TTL 60 differs from 300 of the same RRset at zones.site.lan.records.www.A "
        "(RFC 2181 §5.2)"
    )


def test_glue_below_a_delegation_is_accepted(config) -> None:
    cfg = config("""\
        zones:
          site.lan:
            records:
              sub: {NS: ns.sub}
              ns.sub: {A: 192.0.2.53, AAAA: "2001:db8::53"}
    """)
    assert names.from_text("sub.site.lan.") in zone(cfg).cuts
    assert values(cfg, "ns.sub.site.lan.", "A") == ["192.0.2.53"]


def test_non_glue_data_below_a_delegation_is_rejected(error) -> None:
    exc = error("""\
        zones:
          site.lan:
            records:
              sub: {NS: ns.sub}
              www.sub: {TXT: hidden}
    """)
    assert exc.path == "zones.site.lan.records.www.sub.TXT"
    assert exc.message == (
        "www.sub.site.lan. is below the delegation at sub.site.lan.; "
        "only A/AAAA glue may live there (found TXT)"
    )


def test_other_data_at_a_delegation_point_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {sub: {NS: ns.other., MX: 10 mail}}}}\n")
    assert exc.path == "zones.site.lan.records.sub.MX"
    assert "is a delegation point; it may hold only NS, DS and glue (found MX)" in exc.message


def test_ns_at_a_wildcard_is_rejected(error) -> None:
    exc = error("zones: {site.lan: {records: {'*.dev': {NS: ns.other.}}}}\n")
    assert exc.path == "zones.site.lan.records.*.dev.NS"
    assert exc.message == "wildcard *.dev.site.lan. cannot own NS records (RFC 4592 §4.2)"


# --- zones from master files ------------------------------------------------------------------

ZONE_FILE = """\
    $TTL 60
    @    SOA ns1 hostmaster 7 1h 10m 1d 30
         NS  ns1
    ns1  A   192.0.2.53
    www      A 192.0.2.80
"""


def test_file_zone_is_read_relative_to_the_config_directory(config) -> None:
    cfg = config("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": ZONE_FILE})
    assert values(cfg, "www.site.lan.", "A") == ["192.0.2.80"]
    assert decoded(cfg, "site.lan.", "SOA")[0].times == (7, 3600, 600, 86400, 30)


def test_file_zone_records_without_ttl_take_the_zone_ttl(config) -> None:
    text = "@ SOA ns1 hm 1 1 1 1 1\n@ NS ns1\nwww A 192.0.2.80\n"
    cfg = config("zones: {site.lan: {ttl: 42, file: site.zone}}\n", **{"site.zone": text})
    assert rrset(cfg, "www.site.lan.", "A").ttl == 42


@pytest.mark.parametrize("other", ["soa: {serial: 2}", "ns: [ns1]", "records: {}"])
def test_file_combined_with_inline_data_is_rejected(error, other: str) -> None:
    exc = error(f"zones: {{site.lan: {{file: site.zone, {other}}}}}\n")
    assert exc.path == f"zones.site.lan.{other.split(':')[0]}"
    assert exc.message == "cannot be combined with 'file': the master file holds the whole zone"


def test_missing_zone_file_is_rejected_at_the_file_key(error, tmp_path: Path) -> None:
    exc = error("zones: {site.lan: {file: missing.zone}}\n")
    assert exc.path == "zones.site.lan.file"
    assert exc.message == f"cannot read {tmp_path / 'missing.zone'}: No such file or directory"


def test_zone_file_parse_error_is_reported_with_key_file_and_line(error, tmp_path: Path) -> None:
    text = "@ SOA ns1 hm 1 1 1 1 1\n@ NS ns1\nwww A 192.0.2\n"
    exc = error("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": text})
    assert exc.path == "zones.site.lan.file"
    assert exc.message.startswith(f"{tmp_path / 'site.zone'}:3: bad A value '192.0.2'")


def test_zone_file_include_is_rejected_with_file_and_line(error, tmp_path: Path) -> None:
    text = "@ SOA ns1 hm 1 1 1 1 1\n$INCLUDE more.zone\n"
    exc = error("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": text})
    assert exc.path == "zones.site.lan.file"
    assert exc.message.startswith(f"{tmp_path / 'site.zone'}:2: directive $INCLUDE")


def test_conflict_in_a_zone_file_is_reported_at_the_file_key_with_its_line(
    error, tmp_path: Path
) -> None:
    text = "@ SOA ns1 hm 1 1 1 1 1\n@ NS ns1\nwww A 192.0.2.1\nwww CNAME web\n"
    exc = error("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": text})
    assert exc.path == "zones.site.lan.file"
    assert exc.message == (
        f"{tmp_path / 'site.zone'}:4: CNAME at www.site.lan. cannot coexist with other data "
        "(found A)"
    )


def test_duplicate_in_a_zone_file_names_both_lines(error, tmp_path: Path) -> None:
    text = "@ SOA ns1 hm 1 1 1 1 1\n@ NS ns1\nwww A 192.0.2.1\nwww A 192.0.2.1\n"
    exc = error("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": text})
    zone_file = tmp_path / "site.zone"
    assert exc.message == f"{zone_file}:4: duplicate record (first at {zone_file}:3)"


def test_zone_file_without_soa_is_reported_at_the_file_key(error, tmp_path: Path) -> None:
    exc = error("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": "@ NS ns1\n"})
    assert exc.path == "zones.site.lan.file"
    assert exc.message == f"{tmp_path / 'site.zone'}: zone site.lan. has no SOA record at its apex"


def test_zone_file_without_ns_is_reported_at_the_soa_line(error, tmp_path: Path) -> None:
    text = "; no NS\n@ SOA ns1 hm 1 1 1 1 1\n"
    exc = error("zones: {site.lan: {file: site.zone}}\n", **{"site.zone": text})
    assert exc.path == "zones.site.lan.file"
    assert exc.message == (
        f"{tmp_path / 'site.zone'}:2: zone site.lan. has no NS records at its apex"
    )


def test_zone_file_that_is_not_utf8_is_reported_at_the_file_key(write, tmp_path: Path) -> None:
    (tmp_path / "site.zone").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as info:
        load(write("zones: {site.lan: {file: site.zone}}\n"))
    assert info.value.path == "zones.site.lan.file"
    assert "not UTF-8 text" in info.value.message
