"""`user:`: started as root, edgedns binds, then runs as the given user, keeping only the
capabilities a reload may still need (a port below 1024, ICMP checks); it still answers,
probes and reloads."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from tests.support import REPO, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def low_free_port() -> int:
    """A port below 1024 free on 127.0.0.1 for both UDP and TCP."""
    for port in range(900, 1000):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port between 900 and 999")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may read (pytest's own are root's only)."""
    with tempfile.TemporaryDirectory(prefix="edgedns-user-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


def capabilities(pid: int) -> tuple[int, int]:
    """(real uid, effective capability mask) of process `pid`."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return int(fields["Uid"].split()[0]), int(fields["CapEff"].strip(), 16)


def answers(port: int) -> list[str]:
    query = dns.message.make_query("app.site.lan", "A")
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return []
    return sorted(rd.address for rrset in reply.answer for rd in rrset)


def test_runs_as_the_user_keeping_only_what_reloads_need(public_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    port = low_free_port()
    config = public_dir / "edgedns.yaml"
    config.write_text(f"""\
user: nobody
listen: ["127.0.0.1:{port}"]
admin: false
reload_interval: 0
state_dir: {public_dir / "state"}
zones:
  site.lan:
    pools:
      app: {{check: {{type: icmp}}, members: [127.0.0.1]}}
""")
    config.chmod(0o644)
    proc = subprocess.Popen([sys.executable, "-m", "edgedns", "serve", "-c", str(config)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_until(lambda: proc.poll() is not None or answers(port) == ["127.0.0.1"],
                   within=15)
        assert proc.poll() is None
        uid, caps = capabilities(proc.pid)
        assert uid == nobody
        assert caps == (1 << 10) | (1 << 13)  # CAP_NET_BIND_SERVICE and CAP_NET_RAW only
        proc.send_signal(signal.SIGHUP)  # read as nobody: the reload still works
        time.sleep(1.0)
        assert answers(port) == ["127.0.0.1"]  # probed over the raw socket opened as root
        assert (public_dir / "state").stat().st_uid == nobody
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        proc.kill()
        err = proc.communicate()[1]
    assert "running as nobody, keeping CAP_NET_BIND_SERVICE, CAP_NET_RAW" in err
    assert "reloaded (SIGHUP)" in err


def test_an_unknown_user_stops_the_start_saying_so(public_dir: Path) -> None:
    config = public_dir / "edgedns.yaml"
    config.write_text("user: no-such-user-here\nlisten: ['127.0.0.1:0']\nadmin: false\n"
                      f"state_dir: {public_dir / 'state'}\nzones: {{site.lan: {{}}}}\n")
    done = subprocess.run([sys.executable, "-m", "edgedns", "serve", "-c", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "Error: cannot serve: no user 'no-such-user-here'" in done.stderr
