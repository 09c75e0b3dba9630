"""The `vrrp` section: keys, defaults, and what is refused (with its key path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgedns.config import ConfigError, load
from edgedns.vip.settings import VirtualAddress

HEAD = """\
listen: [0.0.0.0:53]
zones:
  site.lan: {}
"""


def load_vrrp(tmp_path: Path, section: str):
    path = tmp_path / "edgedns.yaml"
    path.write_text(HEAD + "vrrp:\n" + textwrap.indent(textwrap.dedent(section), "  "))
    return load(path).vrrp


def refused(tmp_path: Path, section: str, head: str = HEAD) -> ConfigError:
    path = tmp_path / "edgedns.yaml"
    path.write_text(head + "vrrp:\n" + textwrap.indent(textwrap.dedent(section), "  "))
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value


MINIMAL = """\
interface: eth0
virtual_router_id: 51
addresses: [198.19.0.100]
"""


def test_minimal_section_takes_the_documented_defaults(tmp_path: Path) -> None:
    vrrp = load_vrrp(tmp_path, MINIMAL)
    assert (vrrp.interface, vrrp.vrid, vrrp.priority, vrrp.advert_interval, vrrp.preempt,
            vrrp.version, vrrp.announce_count, vrrp.announce_interval) == (
        "eth0", 51, 100, 0.1, False, 3, 3, 0.5)
    assert vrrp.addresses == (VirtualAddress("198.19.0.100", 32),)


def test_addresses_take_a_prefix_and_both_families(tmp_path: Path) -> None:
    vrrp = load_vrrp(tmp_path, MINIMAL.replace(
        "[198.19.0.100]", "[198.19.0.100/24, 2001:2::100]"))
    assert vrrp.addresses == (VirtualAddress("198.19.0.100", 24),
                              VirtualAddress("2001:2::100", 128))
    assert vrrp.families() == (4, 6)


def test_advert_interval_is_a_duration(tmp_path: Path) -> None:
    assert load_vrrp(tmp_path, MINIMAL + "advert_interval: 250ms\n").advert_interval == 0.25


def test_track_reuses_health_checks_against_localhost(tmp_path: Path) -> None:
    vrrp = load_vrrp(tmp_path, MINIMAL + "track:\n  k3s-api: {port: 6443}\n"
                     "  web: {type: http, port: 8080, path: /healthz}\n")
    checks = dict(vrrp.track)
    assert (checks["k3s-api"].type, checks["k3s-api"].address, checks["k3s-api"].port) == (
        "tcp", "127.0.0.1", 6443)
    assert checks["web"].path == "/healthz"


def test_v2_with_password_for_keepalived_peers(tmp_path: Path) -> None:
    vrrp = load_vrrp(tmp_path, MINIMAL + "version: 2\nadvert_interval: 1s\nauth_pass: s3cret\n")
    assert (vrrp.version, vrrp.auth_pass) == (2, b"s3cret")


@pytest.mark.parametrize("extra, path, message", [
    ("priority: 255\n", "vrrp.priority", "from 1 to 254"),
    ("advert_interval: 5ms\n", "vrrp.advert_interval", "10ms to 40.95s"),
    ("version: 2\nadvert_interval: 100ms\n", "vrrp.advert_interval", "whole seconds"),
    ("auth_pass: x\n", "vrrp.auth_pass", "only VRRPv2"),
    ("version: 2\nadvert_interval: 1\nauth_pass: much-too-long\n", "vrrp.auth_pass",
     "1 to 8 bytes"),
    ("unicast_peers: [peer]\n", "vrrp.unicast_peers[0]", "not an IP address"),
    ("track: {x: {type: tcp}}\n", "vrrp.track.x.port", "needs a port"),
    ("prio: 5\n", "vrrp.prio", "unknown key"),
])
def test_bad_values_are_refused_by_key_path(tmp_path: Path, extra: str, path: str,
                                            message: str) -> None:
    error = refused(tmp_path, MINIMAL + extra)
    assert error.path == path and message in error.message


def test_required_keys(tmp_path: Path) -> None:
    error = refused(tmp_path, "interface: eth0\naddresses: [198.19.0.100]\n")
    assert (error.path, error.message) == ("vrrp.virtual_router_id", "is required")


def test_bad_and_repeated_addresses(tmp_path: Path) -> None:
    assert "not ADDR or ADDR/PREFIX" in refused(
        tmp_path, MINIMAL.replace("[198.19.0.100]", "[vip]")).message
    assert refused(tmp_path, MINIMAL.replace(
        "[198.19.0.100]", "[198.19.0.100, 198.19.0.100/24]")).path == "vrrp.addresses[1]"


def test_v2_carries_no_ipv6(tmp_path: Path) -> None:
    error = refused(tmp_path, MINIMAL.replace("[198.19.0.100]", "[2001:2::100]")
                    + "version: 2\nadvert_interval: 1\n")
    assert "IPv4 addresses only" in error.message


def test_listening_only_on_virtual_addresses_is_refused(tmp_path: Path) -> None:
    head = HEAD.replace("0.0.0.0:53", "198.19.0.100:53")
    error = refused(tmp_path, MINIMAL, head)
    assert error.path == "listen" and "self-check" in error.message
