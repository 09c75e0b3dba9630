"""The files in examples/ work as written: the config loads and the service files parse."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgedns import config as config_mod
from tests.support import EXAMPLES, daemon


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


@pytest.mark.skipif(daemon("keepalived") is None, reason="keepalived not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="keepalived checks its scripts as root only")
def test_keepalived_example_passes_its_config_test(tmp_path: Path) -> None:
    # The config test insists that the check script exists and that its user can run it;
    # point it at a binary that exists, run as root (no keepalived_script user here).
    conf = (EXAMPLES / "keepalived.conf").read_text()
    assert '"/opt/edgedns/bin/edgedns status --admin http://127.0.0.1:9153' in conf
    assert "script_user keepalived_script" in conf
    conf = conf.replace("/opt/edgedns/bin/edgedns", shutil.which("true") or "/bin/true")
    (tmp_path / "keepalived.conf").write_text(
        conf.replace("script_user keepalived_script", "script_user root"))
    result = subprocess.run(
        [daemon("keepalived") or "keepalived", "--config-test", "-f",
         str(tmp_path / "keepalived.conf")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
