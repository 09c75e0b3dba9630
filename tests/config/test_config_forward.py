"""The `forward:` and `cache:` config keys: defaults, every key, resolv.conf, and errors naming
the exact key path."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from edgedns.config import Config, ConfigError, load
from edgedns.dns import names
from edgedns.forward.cache import CacheSettings
from edgedns.forward.forwarder import DEFAULT_ALLOW, Route, Upstream

ZONES = "zones:\n  site.lan: {}\n"


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "edgedns.yaml"
        path.write_text(ZONES + textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def config(write):
    def config(text: str) -> Config:
        return load(write(text))

    return config


@pytest.fixture
def error(write):
    def error(text: str) -> ConfigError:
        path = write(text)
        with pytest.raises(ConfigError) as info:
            load(path)
        assert str(info.value).startswith(f"{path}: {info.value.path}: ")
        return info.value

    return error


def test_without_forward_nothing_is_forwarded_and_the_cache_has_defaults(config):
    cfg = config("")
    assert cfg.forward is None
    assert cfg.cache == CacheSettings()


def test_forward_defaults(config):
    fwd = config("forward: {upstreams: [192.0.2.53]}").forward
    assert fwd.default == Route((Upstream("192.0.2.53", 53),), "sequential", 2.0)
    assert fwd.zones == ()
    assert (fwd.max_fails, fwd.health_check, fwd.max_inflight) == (2, 0.5, 1000)
    assert fwd.allow == tuple(ipaddress.ip_network(n) for n in DEFAULT_ALLOW)
    assert fwd.tls_ca is None


def test_cache_defaults():
    assert CacheSettings() == CacheSettings(size=10_000, max_bytes=64 << 20, min_ttl=0,
                                            max_ttl=86_400, serve_stale=3_600)


@pytest.mark.parametrize(("written", "size"), [("64MiB", 64 << 20), ("512KiB", 512 << 10),
                                                ("1GiB", 1 << 30), ("4096", 4096),
                                                ("2 MiB", 2 << 20)])
def test_cache_and_packet_cache_sizes_take_units(config, written: str, size: int):
    cfg = config(f"cache: {{max_bytes: {written}}}\npacket_cache: {{max_bytes: {written}}}\n")
    assert (cfg.cache.max_bytes, cfg.packet_cache_bytes) == (size, size)


@pytest.mark.parametrize("written", ["64MB", "lots", "-1", "true", "1.5MiB"])
def test_a_bad_size_is_rejected_at_its_key(error, written: str):
    exc = error(f"packet_cache: {{max_bytes: {written}}}\n")
    assert exc.path == "packet_cache.max_bytes"
    assert "is not a size" in exc.message


def test_every_forward_key_is_read(config, tmp_path):
    (tmp_path / "ca.pem").write_text("not checked here\n")
    fwd = config("""\
        forward:
          upstreams: [127.0.0.1:5300, "[::1]:5301", "tls://192.0.2.1@dns.example", 192.0.2.2]
          policy: round_robin
          timeout: 500ms
          max_fails: 5
          health_check: 2s
          max_inflight: 10
          allow: [10.1.0.0/16, "2001:db8::/32", 192.0.2.7]
          tls_ca: ca.pem
        """).forward
    assert fwd.default.upstreams == (
        Upstream("127.0.0.1", 5300), Upstream("::1", 5301),
        Upstream("192.0.2.1", 853, "dns.example"), Upstream("192.0.2.2", 53))
    assert (fwd.default.policy, fwd.default.timeout) == ("round_robin", 0.5)
    assert (fwd.max_fails, fwd.health_check, fwd.max_inflight) == (5, 2.0, 10)
    assert fwd.allow == (ipaddress.ip_network("10.1.0.0/16"),
                         ipaddress.ip_network("2001:db8::/32"),
                         ipaddress.ip_network("192.0.2.7/32"))
    assert fwd.tls_ca == str(tmp_path / "ca.pem")  # relative to the config file


def test_tls_upstream_takes_an_explicit_port(config):
    fwd = config('forward: {upstreams: ["tls://[2001:db8::1]:8853@dns.example"]}').forward
    assert fwd.default.upstreams == (Upstream("2001:db8::1", 8853, "dns.example"),)
    assert str(fwd.default.upstreams[0]) == "tls://[2001:db8::1]:8853@dns.example"


def test_every_cache_key_is_read(config):
    assert config("cache: {size: 50, min_ttl: 10s, max_ttl: 1h, serve_stale: 0}").cache == (
        CacheSettings(size=50, min_ttl=10, max_ttl=3600, serve_stale=0))


def test_conditional_zones_inherit_what_they_do_not_set(config):
    fwd = config("""\
        forward:
          upstreams: [192.0.2.53]
          policy: random
          timeout: 3s
          zones:
            corp.test: {upstreams: [10.0.0.53]}
            dev.corp.test.: {timeout: 1s}
        """).forward
    assert fwd.zones == (
        (names.from_text("corp.test."), Route((Upstream("10.0.0.53"),), "random", 3.0)),
        (names.from_text("dev.corp.test."), Route((Upstream("192.0.2.53"),), "random", 1.0)),
    )


def test_upstreams_from_a_resolv_conf(config, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(textwrap.dedent("""\
        # written by hand
        search lan
        nameserver 192.0.2.53
        options edns0 trust-ad
        nameserver ::1
        nameserver fe80::1%eth0
        """))
    fwd = config(f"forward: {{upstreams: {resolv}}}").forward
    assert fwd.default.upstreams == (
        Upstream("192.0.2.53"), Upstream("::1"), Upstream("fe80::1"))


def test_resolv_conf_without_nameservers_is_an_error(error, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search lan\n")
    exc = error(f"forward: {{upstreams: {resolv}}}")
    assert exc.path == "forward.upstreams"
    assert "lists no nameserver" in exc.message


def test_missing_resolv_conf_is_an_error(error, tmp_path):
    exc = error(f"forward: {{upstreams: {tmp_path}/nope.conf}}")
    assert exc.path == "forward.upstreams"
    assert exc.message.startswith(f"cannot read {tmp_path}/nope.conf")


def test_resolv_conf_with_a_bad_nameserver_is_an_error(error, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver dns.example\n")
    assert error(f"forward: {{upstreams: {resolv}}}").path == "forward.upstreams"


@pytest.mark.parametrize("text", ["forward: {policy: random}", "forward: {}"])
def test_missing_upstreams_is_an_error(error, text):
    exc = error(text)
    assert exc.path == "forward.upstreams"
    assert exc.message.startswith("is required")


@pytest.mark.parametrize("upstreams", ["[]", "192.0.2.53", "relative/resolv.conf"])
def test_upstreams_that_are_not_a_list_or_absolute_path_are_an_error(error, upstreams):
    exc = error(f"forward: {{upstreams: {upstreams}}}")
    assert exc.path == "forward.upstreams"
    assert "non-empty list" in exc.message


@pytest.mark.parametrize("bad", ["dns.example", "192.0.2.1:99999", "192.0.2.1:0", "300.1.2.3"])
def test_bad_upstream_is_an_error_naming_its_index(error, bad):
    exc = error(f'forward: {{upstreams: [192.0.2.53, "{bad}"]}}')
    assert exc.path == "forward.upstreams[1]"


@pytest.mark.parametrize("bad", ["tls://192.0.2.1", "tls://192.0.2.1@"])
def test_tls_upstream_without_a_name_is_an_error(error, bad):
    exc = error(f'forward: {{upstreams: ["{bad}"]}}')
    assert exc.path == "forward.upstreams[0]"
    assert "tls://ADDRESS@NAME" in exc.message


def test_bad_upstream_in_a_conditional_zone_names_the_zone(error):
    exc = error("""\
        forward:
          upstreams: [192.0.2.53]
          zones:
            corp.test: {upstreams: [not-an-address]}
        """)
    assert exc.path == "forward.zones.corp.test.upstreams[0]"


def test_bad_policy_is_an_error_listing_the_choices(error):
    exc = error("forward: {upstreams: [192.0.2.53], policy: fastest}")
    assert exc.path == "forward.policy"
    assert exc.message == "'fastest' is not one of: sequential, random, round_robin"


def test_bad_allow_network_is_an_error_naming_its_index(error):
    exc = error("forward: {upstreams: [192.0.2.53], allow: [10.0.0.0/8, 10.0.0.0/33]}")
    assert exc.path == "forward.allow[1]"


def test_allow_that_is_not_a_list_is_an_error(error):
    assert error("forward: {upstreams: [192.0.2.53], allow: 10.0.0.0/8}").path == "forward.allow"


@pytest.mark.parametrize(("key", "value"), [
    ("timeout", "0"), ("timeout", "soon"), ("health_check", "-1"),
    ("max_fails", "0"), ("max_inflight", "many"),
])
def test_bad_forward_numbers_are_errors_naming_the_key(error, key, value):
    assert error(f"forward: {{upstreams: [192.0.2.53], {key}: {value}}}").path == f"forward.{key}"


def test_missing_tls_ca_file_is_an_error(error):
    exc = error("forward: {upstreams: [192.0.2.53], tls_ca: missing.pem}")
    assert exc.path == "forward.tls_ca"


@pytest.mark.parametrize(("text", "path"), [
    ("forward: {upstreams: [192.0.2.53], upstream: [192.0.2.54]}", "forward.upstream"),
    ("forward: {upstreams: [192.0.2.53], zones: {corp.test: {max_fails: 3}}}",
     "forward.zones.corp.test.max_fails"),
    ("cache: {ttl: 5}", "cache.ttl"),
])
def test_unknown_keys_are_errors_naming_them(error, text, path):
    exc = error(text)
    assert exc.path == path
    assert exc.message.startswith("unknown key (allowed: ")


def test_min_ttl_above_max_ttl_is_an_error(error):
    exc = error("cache: {min_ttl: 2h, max_ttl: 1h}")
    assert (exc.path, exc.message) == ("cache.min_ttl", "is above max_ttl")


@pytest.mark.parametrize(("key", "value"), [
    ("size", "0"), ("size", "1.5"), ("min_ttl", "-5"), ("serve_stale", "later"),
])
def test_bad_cache_values_are_errors_naming_the_key(error, key, value):
    assert error(f"cache: {{{key}: {value}}}").path == f"cache.{key}"


def test_forward_that_is_not_a_mapping_is_an_error(error):
    exc = error("forward: [192.0.2.53]")
    assert exc.path == "forward"
    assert exc.message.startswith("must be a mapping")
