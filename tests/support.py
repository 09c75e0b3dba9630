"""Helpers shared by several test modules: polling, free ports, a reference NSD server and
common config snippets. Every wait here is bounded."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest
from dnslib import QTYPE, RD
from dnslib.dns import RDMAP, DNSBuffer

from edgedns.dns import rdata

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
DATA = REPO / "tests" / "data"

# A zone with one A record, as edgedns YAML (append a pools: block indented under it if needed).
EXAMPLE_ZONE = """\
zones:
  example.lan:
    records:
      www: {A: 192.0.2.1}
"""


def as_dnslib(rtype: int, data: rdata.Rdata) -> RD:
    """Our wire-form record data as dnslib reads it: an independent decoding of the bytes
    we serve, in a form that prints (``str``) as presentation text."""
    wire = rdata.to_wire(data)
    return RDMAP.get(QTYPE.get(rtype), RD).parse(DNSBuffer(wire), len(wire))


def wait_until(condition: Callable[[], bool], within: float = 5.0, step: float = 0.02) -> float:
    """Poll `condition` until true; returns the seconds it took (fails after `within`)."""
    start = time.monotonic()
    deadline = start + within
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"condition not met within {within}s")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on both UDP and TCP at `host` just now (nothing listens there)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on UDP and TCP")


@contextlib.contextmanager
def listener_on(host: str, absent_on: tuple[str, ...]) -> Iterator[int]:
    """A TCP port with a listener on `host` and nothing on the `absent_on` addresses, so a
    check of the same port there is refused (a down member)."""
    for _ in range(50):
        sock = socket.create_server((host, 0))
        port = sock.getsockname()[1]
        try:
            for other in absent_on:
                with socket.socket() as probe:
                    probe.bind((other, port))
        except OSError:
            sock.close()
            continue
        with sock:
            yield port
        return
    raise RuntimeError("no suitable port")


SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
"""Where Debian installs daemons (nsd, keepalived); a non-root user's PATH often lacks them."""


def daemon(name: str) -> str | None:
    """The path of the program `name` on PATH or in the sbin directories, else None."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


@contextlib.contextmanager
def nsd_server(work: Path, zones: dict[str, str], port: int) -> Iterator[int]:
    """Run NSD on 127.0.0.1:`port` serving `zones` (apex → zone file name, already in `work`);
    yields the port once NSD answers an SOA query for the first zone (fails after 10 s)."""
    host = "127.0.0.1"
    zone_lines = "".join(f"zone:\n  name: {apex}\n  zonefile: {f}\n" for apex, f in zones.items())
    conf = work / "nsd.conf"
    conf.write_text(textwrap.dedent(f"""\
        server:
          ip-address: {host}@{port}
          server-count: 1
          username: ""
          database: ""
          zonesdir: "{work}"
          pidfile: "{work}/nsd.pid"
          zonelistfile: "{work}/zone.list"
          xfrdfile: "{work}/xfrd.state"
          xfrdir: "{work}"
          hide-version: yes
          hide-identity: yes
          rrl-ratelimit: 0
        remote-control:
          control-enable: no
        """) + zone_lines)
    log = work / "nsd.stderr"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([daemon("nsd") or "nsd", "-d", "-c", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        probe = dns.message.make_query(next(iter(zones)), "SOA")
        deadline = time.monotonic() + 10.0
        while True:
            try:
                dns.query.udp(probe, host, port=port, timeout=0.2)
                break
            except (dns.exception.Timeout, ConnectionRefusedError):
                if time.monotonic() >= deadline:
                    pytest.fail(f"NSD did not start: {log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        error = f" ({record.exc_info[1]!r})" if record.exc_info else ""
        self.into.append(record.getMessage() + error)


@contextlib.contextmanager
def loop_errors() -> Iterator[list[str]]:
    """Collect what event loops log at ERROR meanwhile: asyncio's word for an unhandled
    exception (a task's exception never retrieved, an exception in a callback)."""
    logged: list[str] = []
    handler = _Collect(logged)
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    try:
        yield logged
    finally:
        asyncio_log.removeHandler(handler)
