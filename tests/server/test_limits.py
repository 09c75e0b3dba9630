"""Open files: the server raises its soft limit to the hard limit at start, and shares what
it has so that clients can never take the descriptors health probes need."""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from edgedns.server.limits import RESERVED_FILES, client_caps
from tests.support import REPO, free_port, wait_until


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    code = ("import resource; from edgedns.server.limits import raise_open_files; "
            "print(raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, preexec_fn=lower,
                          capture_output=True, text=True, timeout=30, check=True)
    reported, in_force = map(int, done.stdout.split())
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert reported == in_force == want


# --- client_caps ----------------------------------------------------------------------------


def test_caps_that_fit_are_kept() -> None:
    assert client_caps(65536, 2000, 256, 1000) == (256, 1000)


def test_caps_that_do_not_fit_shrink_in_proportion_leaving_room_for_probes() -> None:
    tcp, upstream = client_caps(1024, 200, 256, 1000)
    assert tcp + upstream + 200 + RESERVED_FILES <= 1024
    assert (tcp, upstream) == (141, 554)  # room for 696 of the 1,256 wanted: 55 % of each


def test_caps_never_reach_zero() -> None:
    assert client_caps(100, 500, 256, 1000) == (1, 1)


def test_an_unknown_limit_keeps_the_caps() -> None:
    assert client_caps(-1, 10_000, 256, 1000) == (256, 1000)


# --- a real server short of descriptors -----------------------------------------------------

MEMBERS = 40
LIMIT = 265
"""Below 256 TCP connections + what the process itself holds: without the shares, a client
flood leaves probes no descriptor (EMFILE) and marks members down (seen: 25 of 40 left)."""


@contextlib.contextmanager
def live_members() -> Iterator[tuple[list[str], int]]:
    """`MEMBERS` loopback addresses with a listening TCP port each (one port number)."""
    addresses = [f"127.0.9.{i + 1}" for i in range(MEMBERS)]
    port = free_port(addresses[0])
    sockets = []
    try:
        for address in addresses:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(512)
            sockets.append(sock)
        yield addresses, port
    finally:
        for sock in sockets:
            sock.close()


def pool_size(port: int) -> int:
    query = dns.message.make_query("app.example.lan", "A", use_edns=0, payload=1232)
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=1)
    return sum(len(rrset) for rrset in reply.answer)


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] < LIMIT,
                    reason=f"needs a hard open-files limit of at least {LIMIT}")
def test_a_flood_of_tcp_clients_leaves_descriptors_for_health_probes(tmp_path: Path) -> None:
    port = free_port()
    with live_members() as (addresses, check_port):
        config = tmp_path / "edgedns.yaml"
        config.write_text(f"""\
listen: ["127.0.0.1:{port}"]
admin: false
rate_limit: false
tcp: {{max_connections: 256, max_per_client: 256, idle_timeout: 30s}}
zones:
  example.lan:
    pools:
      app:
        policy: all
        check: {{type: tcp, port: {check_port}, interval: 300ms, timeout: 200ms, fall: 1}}
        members: [{", ".join(addresses)}]
""")
        log = tmp_path / "serve.log"

        def short_of_files() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))

        clients: list[socket.socket] = []
        with log.open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "edgedns", "serve", "-c", str(config)],
                                    cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                    preexec_fn=short_of_files)
        try:
            wait_until(lambda: proc.poll() is not None or _answers(port) == MEMBERS, within=15)
            assert proc.poll() is None, log.read_text()
            for _ in range(400):  # more than any share: connections the server must refuse
                with contextlib.suppress(OSError):
                    clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            # Three check intervals with every descriptor clients can get taken.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert _answers(port) == MEMBERS
                time.sleep(0.1)
        finally:
            for sock in clients:
                sock.close()
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "is short for 40 probe sockets" in text and "capped at 97 and 0" in text, text
    assert "Too many open files" not in text, text


def _answers(port: int) -> int:
    try:
        return pool_size(port)
    except (dns.exception.Timeout, OSError):
        return -1
