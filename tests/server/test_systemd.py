"""systemd readiness (sd_notify): a real `edgedns serve` with $NOTIFY_SOCKET set tells READY=1
once it answers, RELOADING=1 and READY=1 around a reload, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedns.server.systemd import Notifier
from tests.support import REPO, free_port

CONFIG = "admin: false\nzones:\n  site.lan:\n    records:\n      www: {A: 192.0.2.1}\n"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(15)
        yield sock, path


def messages(sock: socket.socket) -> dict[str, str]:
    fields = sock.recv(4096).decode().split("\n")
    return dict(field.split("=", 1) for field in fields)


def test_serve_tells_systemd_ready_reloading_and_stopping(tmp_path: Path, notify_socket):
    sock, path = notify_socket
    config = tmp_path / "edgedns.yaml"
    config.write_text(CONFIG)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgedns", "serve", "-c", str(config),
                             "--listen", f"127.0.0.1:{port}"], cwd=REPO,
                            env={**_env(), "NOTIFY_SOCKET": path},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = messages(sock)
        assert ready == {"READY": "1",
                         "STATUS": f"serving 1 zones, 0 pools on 127.0.0.1:{port}"}
        proc.send_signal(signal.SIGHUP)
        reloading = messages(sock)
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert messages(sock)["READY"] == "1"
        proc.send_signal(signal.SIGTERM)
        assert messages(sock) == {"STOPPING": "1", "STATUS": "shutting down"}
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait(5)


def test_without_notify_socket_nothing_is_sent(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert notifier.address is None
    notifier.ready("serving")  # and no error


def test_an_abstract_socket_address_is_used_as_such() -> None:
    assert Notifier("@/org/example/notify").address == "\0/org/example/notify"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
