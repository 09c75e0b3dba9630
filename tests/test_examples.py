"""The files in examples/ work as written: the config loads and the service files parse."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from edgedns import config as config_mod
from tests import labbase, lanlab
from tests.support import EXAMPLES, REPO, daemon, wait_until


def test_example_config_loads_with_zones_pools_and_tcp_checks_only() -> None:
    cfg = config_mod.load(EXAMPLES / "zones.yaml")
    assert [str(e) for e in cfg.listen] == ["127.0.0.1:5353"]
    assert cfg.pools, "the example shows pools"
    checks = {m.check.type for pool in cfg.pools for m in pool.members}
    assert checks <= {"tcp", "http", "none"}, "the example must run without privileges"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify insists that ExecStart exists; point it at a binary that does.
    unit = (EXAMPLES / "edgedns.service").read_text()
    assert "ExecStart=/opt/edgedns/bin/edgedns serve" in unit
    (tmp_path / "edgedns.service").write_text(
        unit.replace("/opt/edgedns/bin/edgedns", shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "edgedns.service")],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "edgedns.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


keepalived_lab = pytest.mark.skipif(
    daemon("keepalived") is None or labbase.available() is not None
    or lanlab.script_python() is None or not lanlab.runnable_by_others(str(REPO / "edgedns")),
    reason="needs keepalived, root (namespaces) and a Python and checkout that keepalived's "
           "unprivileged script user can read")


@keepalived_lab
def test_keepalived_example_passes_its_config_test_as_shipped(tmp_path: Path) -> None:
    # As shipped: its script user and /opt/edgedns/bin/edgedns-alive, made to exist in
    # private namespaces (see lanlab.keepalived_as_installed); the file is not changed.
    command = lanlab.keepalived_as_installed(tmp_path, lanlab.script_python() or "", REPO)
    result = subprocess.run([*command, "--config-test", "-f", str(EXAMPLES / "keepalived.conf")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@keepalived_lab
def test_keepalived_example_moves_the_address_when_edgedns_dies(tmp_path: Path) -> None:
    shipped = (EXAMPLES / "keepalived.conf").read_text()
    vip = "192.168.1.53"
    assert f"{vip}/24" in shipped and "priority 100" in shipped
    with lanlab.LanLab(["a", "b", "client"]) as lan:
        lan.exec("client", "ip", "addr", "add", "192.168.1.50/24", "dev", "eth0")
        prefix = lanlab.keepalived_as_installed(tmp_path, lanlab.script_python() or "", REPO)
        servers, keepers = {}, {}
        for host, conf in (("a", shipped), ("b", shipped.replace("priority 100", "priority 90"))):
            servers[host] = lanlab.EdgednsHost(lan, host, tmp_path, None, port=53).start()
            (tmp_path / f"{host}.conf").write_text(conf)
            keepers[host] = lan.popen(
                host, *prefix, "-n", "-l", "-P", "-f", str(tmp_path / f"{host}.conf"),
                "-p", str(tmp_path / f"{host}.pid"), "-r", str(tmp_path / f"{host}-vrrp.pid"),
                stdout=(tmp_path / f"keepalived-{host}.log").open("w"), stderr=subprocess.STDOUT)
            if host == "a":
                wait_until(lambda: lan.holds("a", vip), within=10)
        client = lanlab.Asker(lan.socket("client", socket.AF_INET, socket.SOCK_DGRAM),
                              (vip, 53), "who.site.lan").start()
        try:
            wait_until(lambda: client.answered_by() == {"a": len(client.answers)}
                       and len(client.answers) > 5)
            servers["a"].signal(signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda: lan.holds("b", vip) and not lan.holds("a", vip), within=10)
            wait_until(lambda: set(client.answered_by(since=time.monotonic() - 0.3)) == {"b"},
                       within=5)
            assert "Entering FAULT STATE" in (tmp_path / "keepalived-a.log").read_text()
            assert client.outages(since=killed - 0.1)  # a real outage, which bench/ measures
        finally:
            client.stop()
