"""`zones.Z.hosts`: an /etc/hosts-format file read into A/AAAA records of the zone, with PTR
records in any reverse zone served (dnsmasq's habit); errors name the file and line."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import dns.message
import pytest

from edgedns import config as config_mod
from edgedns.dns import names

HOSTS = """\
# the lab
192.0.2.10   nas nas-alias     # short names are in the zone
192.0.2.11   printer.site.lan  # so are names ending in it, dot or not
2001:db8::5  plc.site.lan.
198.51.100.7 far               # no reverse zone served for it: no PTR
"""

CONFIG = """\
zones:
  site.lan:
    hosts: hosts
    records:
      www: {A: 192.0.2.1}
  2.0.192.in-addr.arpa: {}
"""


def load(tmp_path: Path, hosts: str = HOSTS, config: str = CONFIG) -> config_mod.Config:
    (tmp_path / "hosts").write_text(hosts)
    path = tmp_path / "edgedns.yaml"
    path.write_text(textwrap.dedent(config))
    return config_mod.load(path)


def test_hosts_names_become_addresses_in_the_zone(tmp_path: Path) -> None:
    site, _ = load(tmp_path).zones
    for owner, rtype in (("nas.site.lan.", 1), ("nas-alias.site.lan.", 1),
                         ("printer.site.lan.", 1), ("plc.site.lan.", 28), ("far.site.lan.", 1),
                         ("www.site.lan.", 1)):
        assert site.get(names.from_text(owner), rtype) is not None, owner


def test_addresses_in_a_served_reverse_zone_get_a_ptr_to_their_first_name(tmp_path) -> None:
    _, reverse = load(tmp_path).zones
    ptrs = {names.to_text(owner) for owner, node in reverse.nodes.items()
            if any(r.rtype == 12 for r in node)}
    assert ptrs == {"10.2.0.192.in-addr.arpa.", "11.2.0.192.in-addr.arpa."}
    ptr = reverse.get(names.from_text("10.2.0.192.in-addr.arpa."), 12)
    assert ptr.rdatas == ((names.from_text("nas.site.lan."),),)


def test_the_hosts_file_is_watched_like_zone_files(tmp_path: Path) -> None:
    assert tmp_path / "hosts" in load(tmp_path).files


@pytest.mark.parametrize(("line", "message"), [
    ("192.0.2.300 nas", "'192.0.2.300' is not an IP address"),
    ("192.0.2.9", "an address and at least one name are needed"),
    ("192.0.2.9 nas.other.lan.", "'nas.other.lan.' is not in zone site.lan."),
])
def test_a_bad_line_is_refused_naming_the_file_and_line(tmp_path, line, message) -> None:
    with pytest.raises(config_mod.ConfigError) as info:
        load(tmp_path, hosts="# first\n" + line + "\n")
    assert info.value.path == f"zones.site.lan.hosts ({tmp_path / 'hosts'}:2)"
    assert info.value.message == message


def test_a_missing_hosts_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edgedns.yaml"
    path.write_text(CONFIG)
    with pytest.raises(config_mod.ConfigError) as info:
        config_mod.load(path)
    assert info.value.path == "zones.site.lan.hosts"
    assert info.value.message.startswith(f"cannot read {tmp_path / 'hosts'}:")


def test_served_hosts_answer_forward_and_reverse_and_follow_edits(edgedns_server,
                                                                 tmp_path) -> None:
    srv = edgedns_server(CONFIG, files={"hosts": HOSTS})

    def answer(name: str, rtype: str) -> list[str]:
        reply: dns.message.Message = srv.query(name, rtype)
        return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)

    assert answer("nas.site.lan", "A") == ["192.0.2.10"]
    assert answer("10.2.0.192.in-addr.arpa", "PTR") == ["nas.site.lan."]
    (tmp_path / "hosts").write_text("192.0.2.20 nas\n")
    assert asyncio.run_coroutine_threadsafe(srv.server.reload("test"), srv.loop).result(10)
    assert answer("nas.site.lan", "A") == ["192.0.2.20"]
    assert answer("20.2.0.192.in-addr.arpa", "PTR") == ["nas.site.lan."]
    assert srv.query("printer.site.lan", "A").rcode() == 3  # gone with the edit
