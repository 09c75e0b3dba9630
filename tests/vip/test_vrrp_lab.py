"""Virtual addresses on a real LAN: two edgedns hosts and a client on a bridge in network
namespaces (`tests.lanlab`), the client asking the virtual address every 20 ms as a stub
resolver would. Each test takes a real failure (SIGKILL, SIGTERM, a listener that stops
answering, a pulled cable) and checks who holds the address and who answers afterwards.
The outage figures live in ``bench/vrrp.py``; here only where the address ends up.

Needs root (namespaces, raw sockets, netlink); keepalived's tests need keepalived.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedns.vip import packet
from tests import labbase, lanlab
from tests.lanlab import (
    DNS_PORT,
    VIP,
    VIP6,
    Asker,
    EdgednsHost,
    LanLab,
    start_keepalived,
    vrrp_yaml,
)
from tests.support import daemon, wait_until

pytestmark = pytest.mark.skipif(labbase.available() is not None,
                                reason=labbase.available() or "")

PORT = DNS_PORT


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[LanLab]:
    with LanLab(["a", "b", "client"]) as lab:
        yield lab


def asker(lan: LanLab, address: str = VIP) -> Asker:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return Asker(lan.socket("client", family, socket.SOCK_DGRAM), (address, PORT),
                 "who.site.lan").start()


def pair(lan: LanLab, work: Path, extra: str = "", addresses: str = f"[{VIP}]",
         zones: str = lanlab.ZONES, top: str = "") -> tuple[EdgednsHost, EdgednsHost]:
    """a (priority 200) started first, so it is master; then b (100) as backup. `extra`
    goes into both `vrrp` sections, `top` into both configs."""
    a = EdgednsHost(lan, "a", work, vrrp_yaml(200, addresses, extra), zones=zones,
                    extra=top).start()
    wait_until(lambda: a.state() == "master", within=5)
    b = EdgednsHost(lan, "b", work, vrrp_yaml(100, addresses, extra), zones=zones,
                    extra=top).start()
    wait_until(lambda: b.state() == "backup", within=5)
    return a, b


def answered_by(client: Asker, since: float) -> set[str]:
    return set(client.answered_by(since=since))


def test_killed_master_is_replaced_and_stays_replaced_when_it_returns(
        lan: LanLab, tmp_path: Path) -> None:
    a, b = pair(lan, tmp_path)
    client = asker(lan)
    try:
        wait_until(lambda: client.answered_by() == {"a": len(client.answers)}
                   and len(client.answers) > 5)
        a.signal(signal.SIGKILL)
        wait_until(lambda: b.state() == "master", within=3)
        killed = time.monotonic()
        wait_until(lambda: answered_by(client, killed + 0.2) == {"b"}, within=3)
        assert lan.holds("b", VIP)
        assert lan.holds("a", VIP)  # what a crash leaves behind ...
        a.start()
        wait_until(lambda: a.state() == "backup", within=5)
        assert not lan.holds("a", VIP)  # ... is removed when edgedns starts again
        assert "left by an earlier run" in a.log.read_text()
        returned = time.monotonic()
        time.sleep(1.0)
        assert b.state() == "master"  # preempt is off: the address stays where it is
        assert answered_by(client, returned) == {"b"}
        assert client.outages(since=returned) == []
    finally:
        client.stop()


def test_graceful_stop_hands_over_with_priority_zero_and_tells_the_hooks(
        lan: LanLab, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat >> {events}\necho >> {events}\n")
    hook.chmod(0o755)
    a, b = pair(lan, tmp_path, top=f"notify: {{command: {hook}}}\n")
    a.signal(signal.SIGTERM)
    wait_until(lambda: b.state() == "master", within=3)
    assert b.router()["reason"] == f"master {lan.address('a')} left (priority 0)"
    assert not lan.holds("a", VIP)
    wait_until(lambda: events.exists() and '"vrrp_master"' in events.read_text())
    told = [json.loads(line) for line in events.read_text().splitlines() if line]
    expected = {"event": "vrrp_master", "family": "IPv4",
                "reason": f"master {lan.address('a')} left (priority 0)"}
    assert any(expected.items() <= event.items() for event in told)  # b's; a's are there too


def test_master_whose_dns_stops_answering_gives_the_address_up(lan: LanLab,
                                                               tmp_path: Path) -> None:
    a, b = pair(lan, tmp_path)
    client = asker(lan)
    try:
        lan.drop_dns("a", PORT)  # the process lives, its listener answers nobody
        wait_until(lambda: b.state() == "master", within=3)
        router = a.status()["vrrp"]["routers"][0]
        assert router["state"] == "fault"
        assert router["reason"] == f"DNS self-check: no reply from 127.0.0.1:{PORT}"
        assert not lan.holds("a", VIP)
        moved = time.monotonic()
        wait_until(lambda: answered_by(client, moved) == {"b"}, within=3)
        lan.undrop_dns("a")
        wait_until(lambda: a.state() == "backup", within=3)
        time.sleep(0.5)
        assert b.state() == "master"
    finally:
        client.stop()


def test_a_pulled_cable_faults_the_master_and_the_address_stays_when_it_returns(
        lan: LanLab, tmp_path: Path) -> None:
    a, b = pair(lan, tmp_path)
    lan.port_down("a")
    wait_until(lambda: b.state() == "master", within=3)
    wait_until(lambda: a.router()["reason"] == "eth0 has no carrier", within=3)
    assert a.state() == "fault" and not lan.holds("a", VIP)
    lan.port_up("a")
    wait_until(lambda: a.state() == "backup", within=3)
    time.sleep(0.5)
    assert (b.state(), lan.holds("b", VIP), lan.holds("a", VIP)) == ("master", True, False)


def test_healed_split_leaves_exactly_one_master(lan: LanLab, tmp_path: Path) -> None:
    a, b = pair(lan, tmp_path)
    for host in ("a", "b"):  # they stop hearing each other; clients still reach both
        lan.drop_vrrp(host)
    wait_until(lambda: b.state() == "master", within=3)
    assert a.state() == "master"
    client = asker(lan)
    try:
        for host in ("a", "b"):
            lan.undrop_vrrp(host)
        healed = time.monotonic()
        wait_until(lambda: b.state() == "backup", within=3)  # a has the higher priority
        time.sleep(0.5)
        assert (a.state(), lan.holds("a", VIP), lan.holds("b", VIP)) == ("master", True, False)
        wait_until(lambda: answered_by(client, healed + 0.5) == {"a"}, within=3)
    finally:
        client.stop()
    table = lan.exec("b", sys.executable, "-m", "edgedns", "status").stdout
    assert re.search(rf"^vrrp IPv4 vrid 51 on eth0  BACKUP  priority 100  master "
                     rf"{lan.address('a')}  since \S+  \({lan.address('a')} advertises "
                     rf"priority 200\)  {VIP}/32$", table, re.M), table


def test_ipv6_virtual_address_moves_with_unsolicited_neighbour_advertisements(
        lan: LanLab, tmp_path: Path) -> None:
    a, b = pair(lan, tmp_path, addresses=f"[{VIP}, '{VIP6}/64']")
    assert [r["family"] for r in a.status()["vrrp"]["routers"]] == ["IPv4", "IPv6"]
    client = asker(lan, VIP6)
    try:
        wait_until(lambda: len(client.answers) > 5 and client.answered_by() == {
            "a": len(client.answers)})
        a.signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: answered_by(client, killed + 0.3) == {"b"}, within=3)
        assert lan.holds("b", VIP6) and lan.holds("b", VIP)
    finally:
        client.stop()


def test_adverts_from_outside_the_unicast_peers_are_ignored(lan: LanLab,
                                                            tmp_path: Path) -> None:
    peers = f"unicast_peers: [{lan.address('a')}, {lan.address('b')}]\n"
    a, b = pair(lan, tmp_path, extra=peers)
    # The client forges a priority-254 advert from its own address, TTL 255 as required.
    forged = packet.encode(packet.Advert(3, 51, 254, 0.1, (VIP,)), lan.address("client"),
                           lan.address("a"))
    sock = lanlab.in_netns(lan.netns("client"), lambda: socket.socket(
        socket.AF_INET, socket.SOCK_RAW, packet.PROTOCOL))
    with sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        for _ in range(20):
            sock.sendto(forged, (lan.address("a"), 0))
            time.sleep(0.02)
    time.sleep(1.1)  # /status is rebuilt at most once a second
    status = a.status()["vrrp"]
    assert status["routers"][0]["state"] == "master"
    assert status["counters"]["adverts_dropped"] >= 20
    assert b.state() == "backup"


needs_keepalived = pytest.mark.skipif(daemon("keepalived") is None,
                                      reason="needs keepalived (apt-get install keepalived)")


@needs_keepalived
def test_keepalived_peer_takes_over_from_edgedns_and_hands_back(lan: LanLab,
                                                                tmp_path: Path) -> None:
    a = EdgednsHost(lan, "a", tmp_path, vrrp_yaml(200)).start()
    wait_until(lambda: a.state() == "master", within=5)
    EdgednsHost(lan, "b", tmp_path, None).start()  # b answers DNS; keepalived moves its address
    peer = start_keepalived(lan, "b", tmp_path, 100)
    client = asker(lan)
    try:
        time.sleep(1.0)  # keepalived hears a's adverts, checks them and stays backup
        assert not lan.holds("b", VIP)
        a.signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: lan.holds("b", VIP), within=3)
        wait_until(lambda: answered_by(client, killed + 0.3) == {"b"}, within=3)
        a.start()
        wait_until(lambda: a.state() == "backup", within=5)  # keepalived's adverts accepted
        wait_until(lambda: a.router()["master"] == lan.address("b"), within=3)
        peer.terminate()  # keepalived sends priority 0 as it stops
        peer.wait(timeout=10)
        wait_until(lambda: a.state() == "master", within=3)
        assert "left (priority 0)" in a.status()["vrrp"]["routers"][0]["reason"]
    finally:
        client.stop()


@needs_keepalived
def test_vrrpv2_with_a_password_interoperates_with_keepalived(lan: LanLab,
                                                             tmp_path: Path) -> None:
    v2 = vrrp_yaml(200, extra="version: 2\nauth_pass: s3cret\n")
    a = EdgednsHost(lan, "a", tmp_path, v2).start()
    wait_until(lambda: a.state() == "master", within=6)
    peer = start_keepalived(lan, "b", tmp_path, 100, version=2, auth_pass="s3cret")
    time.sleep(4.0)  # longer than keepalived's master-down interval at 1 s adverts
    assert not lan.holds("b", VIP)
    assert "Entering MASTER" not in (tmp_path / "keepalived-b.log").read_text()
    a.signal(signal.SIGKILL)
    wait_until(lambda: lan.holds("b", VIP), within=6)
    a.start()
    wait_until(lambda: a.status()["vrrp"]["routers"][0]["master"] == lan.address("b"),
               within=5)
    time.sleep(3.5)
    status = a.status()["vrrp"]
    assert status["routers"][0]["state"] == "backup"  # keepalived's adverts, password checked
    assert status["counters"]["adverts_received"] >= 3
    assert status["counters"]["adverts_dropped"] == 0
    peer.terminate()
    peer.wait(timeout=10)


LISTENER = ("import socket,time;s=socket.socket();"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            "s.bind(('127.0.0.1',{port}));s.listen(8);time.sleep(600)")


def test_tracked_service_going_down_moves_the_address(lan: LanLab, tmp_path: Path) -> None:
    service = lan.popen("a", sys.executable, "-c", LISTENER.format(port=6443))
    lan.popen("b", sys.executable, "-c", LISTENER.format(port=6443))
    a, b = pair(lan, tmp_path, extra="track:\n  k3s-api: {port: 6443}\n")
    service.kill()
    wait_until(lambda: b.state() == "master", within=5)
    router = a.router()
    assert router["state"] == "fault"
    assert router["reason"].startswith("tracked k3s-api (tcp 127.0.0.1:6443) down")
    assert not lan.holds("a", VIP)


def test_host_whose_pools_are_all_down_hands_over(lan: LanLab, tmp_path: Path) -> None:
    pool = textwrap.dedent("""\
        zones:
          site.lan:
            records:
              who: {TXT: "%s"}
            pools:
              app: {members: [127.0.0.1], check: {type: tcp, port: 7001}}
        """)
    backend = lan.popen("a", sys.executable, "-c", LISTENER.format(port=7001))
    lan.popen("b", sys.executable, "-c", LISTENER.format(port=7001))
    a, b = pair(lan, tmp_path, zones=pool)
    backend.kill()  # a's only pool loses its only member: a's view of the backends is gone
    wait_until(lambda: b.state() == "master", within=5)
    router = a.router()
    assert (router["state"], router["priority"], router["reason"]) == (
        "backup", 1, "every pool is down")
    metrics = a.get("/metrics").decode()
    assert 'edgedns_vrrp_state{family="IPv4",state="backup",vrid="51"} 1.0' in metrics
    assert 'edgedns_vrrp_priority{family="IPv4",vrid="51"} 1.0' in metrics


@pytest.mark.skipif(shutil.which("dnsperf") is None, reason="needs dnsperf")
def test_saturating_queries_cause_no_state_change(lan: LanLab, tmp_path: Path) -> None:
    a, b = pair(lan, tmp_path, top="rate_limit: false\n")  # one client, full speed
    before = a.router()["transitions"] + b.router()["transitions"]
    queries = tmp_path / "queries.txt"
    queries.write_text("who.site.lan TXT\n")
    done = lan.exec("client", "dnsperf", "-s", VIP, "-p", str(PORT), "-d", str(queries),
                    "-l", "5", "-c", "8", "-q", "500", timeout=60)
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", done.stdout).group(1))
    assert qps > 1000, done.stdout  # the master was busy answering, not idle
    time.sleep(1.1)  # /status is rebuilt at most once a second
    assert a.router()["transitions"] + b.router()["transitions"] == before
    assert a.status()["vrrp"]["self_check"]["down"] is None


@needs_keepalived
def test_keepalived_ipv6_peer_in_both_roles(lan: LanLab, tmp_path: Path) -> None:
    a = EdgednsHost(lan, "a", tmp_path, vrrp_yaml(200, f"['{VIP6}/64']")).start()
    wait_until(lambda: a.state() == "master", within=5)
    EdgednsHost(lan, "b", tmp_path, None).start()
    peer = start_keepalived(lan, "b", tmp_path, 100, vip=f"{VIP6}/64")
    client = asker(lan, VIP6)
    try:
        time.sleep(1.0)
        assert not lan.holds("b", VIP6)  # keepalived took edgedns's IPv6 adverts
        a.signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: answered_by(client, killed + 0.5) == {"b"}, within=5)
        a.start()
        wait_until(lambda: a.router()["master"] not in (None, a.router()["self"])
                   and a.state() == "backup", within=5)
        assert a.router()["master"].startswith("fe80::")  # keepalived's link-local address
        peer.terminate()
        peer.wait(timeout=10)
        wait_until(lambda: a.state() == "master", within=3)
    finally:
        client.stop()
