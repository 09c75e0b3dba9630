"""Graceful shutdown of a real ``edgedns serve`` process: SIGTERM stops accepting, answers
what is in flight (here: TCP queries waiting on a slow forwarded upstream) and exits 0 within
`shutdown_timeout`; SIGINT exits cleanly too.

Every wait is bounded; the process is killed at teardown if it is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import pytest

from tests.support import REPO, free_port

LOCAL = "127.0.0.1"
UPSTREAM_ANSWER = "192.0.2.53"
SHUTDOWN_TIMEOUT = 3.0

CONFIG = """\
admin: false
reload_interval: 0
shutdown_timeout: {shutdown}s
forward: {{upstreams: ['127.0.0.1:{upstream}'], timeout: 10s, health_check: 1m}}
zones:
  example.lan:
    records:
      www: {{A: 192.0.2.1}}
"""


class SlowUpstream:
    """A UDP DNS server on 127.0.0.1 answering A questions with `UPSTREAM_ANSWER` after
    `delay` seconds (never, when None). `questions` lists the names asked, in order."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.questions: list[str] = []
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._transport: asyncio.DatagramTransport | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("upstream did not start")

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        owner = self

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                owner._query(data, addr)

        self._transport, _ = self.loop.run_until_complete(
            self.loop.create_datagram_endpoint(Udp, local_addr=(LOCAL, 0)))
        self.port = self._transport.get_extra_info("sockname")[1]
        ready.set()
        self.loop.run_forever()
        self._transport.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def _query(self, data: bytes, addr) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        question = query.question[0]
        self.questions.append(question.name.to_text())
        reply = dns.message.make_response(query)
        if question.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A",
                                                    UPSTREAM_ANSWER))
        if self.delay is not None:
            self.loop.call_later(self.delay, self._send, reply.to_wire(), addr)

    def _send(self, data: bytes, addr) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def asked(self, suffix: str) -> int:
        return sum(1 for name in list(self.questions) if name.endswith(suffix))

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def upstream() -> Iterator[Callable[[float | None], SlowUpstream]]:
    started: list[SlowUpstream] = []

    def make(delay: float | None) -> SlowUpstream:
        started.append(SlowUpstream(delay))
        return started[-1]

    yield make
    for server in started:
        server.stop()


def answered(port: int) -> bool:
    q = dns.message.make_query("www.example.lan", "A", use_edns=False)
    try:
        dns.query.udp(q, LOCAL, port=port, timeout=0.3)
    except (dns.exception.Timeout, OSError):
        return False
    return True


class Process:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def exits_within(self, seconds: float) -> int:
        """Its exit code; fails when it runs longer than `seconds`."""
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {seconds}s after the signal") from None


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[int], Process]]:
    """``serve(upstream_port)`` → a running ``edgedns serve`` process, answering queries."""
    running: list[Process] = []

    def start(upstream_port: int, shutdown: float = SHUTDOWN_TIMEOUT) -> Process:
        config = tmp_path / "edgedns.yaml"
        config.write_text(CONFIG.format(shutdown=shutdown, upstream=upstream_port))
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edgedns", "serve", "-c", str(config), "--listen",
                 f"{LOCAL}:{port}"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        running.append(Process(proc, port, log))
        # UDP answers start only once the signal handlers are in place (Server.run).
        deadline = time.monotonic() + 15
        while not answered(port):
            assert proc.poll() is None, f"edgedns exited: {log.read_text()}"
            assert time.monotonic() < deadline, "edgedns did not answer within 15 s"
        return running[-1]

    yield start
    for p in running:
        if p.proc.poll() is None:
            p.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.proc.wait(10)


def send_tcp(port: int, name: str) -> socket.socket:
    """Open a TCP connection and send one A query for `name`; the reply is read later."""
    sock = socket.create_connection((LOCAL, port), timeout=5)
    wire = dns.message.make_query(name, "A", use_edns=False).to_wire()
    sock.sendall(len(wire).to_bytes(2, "big") + wire)
    return sock


def read_tcp_reply(sock: socket.socket) -> dns.message.Message:
    data = b""
    for _ in range(100):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big"):
            break
    assert len(data) >= 2, "connection closed without a reply"
    return dns.message.from_wire(data[2 : 2 + int.from_bytes(data[:2], "big")])


def wait_until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {within}s")


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection((LOCAL, port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def in_flight(serve, upstream, delay: float | None, count: int = 3):
    """A server with `count` TCP queries sent, all waiting on the upstream."""
    slow = upstream(delay)
    server = serve(slow.port)
    socks = [send_tcp(server.port, f"q{i}.elsewhere.test") for i in range(count)]
    wait_until(lambda: slow.asked(".elsewhere.test.") >= count, within=3.0)
    return server, socks


def test_sigterm_answers_queries_in_flight(serve, upstream):
    server, socks = in_flight(serve, upstream, delay=0.5)
    server.proc.send_signal(signal.SIGTERM)
    try:
        for i, sock in enumerate(socks):
            reply = read_tcp_reply(sock)
            assert reply.question[0].name.to_text() == f"q{i}.elsewhere.test."
            assert [rd.address for rd in reply.answer[0]] == [UPSTREAM_ANSWER]
    finally:
        for sock in socks:
            sock.close()
    assert server.exits_within(SHUTDOWN_TIMEOUT + 2) == 0


def test_sigterm_refuses_new_connections_while_draining(serve, upstream):
    server, socks = in_flight(serve, upstream, delay=0.5)
    try:
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: connection_refused(server.port), within=0.4)
        assert server.proc.poll() is None, "exited before its queries in flight were answered"
        # New UDP queries are not read either.
        assert not answered(server.port)
        for sock in socks:
            assert read_tcp_reply(sock).answer
    finally:
        for sock in socks:
            sock.close()
    assert server.exits_within(SHUTDOWN_TIMEOUT + 2) == 0


def test_sigterm_exits_within_shutdown_timeout_when_upstream_never_answers(serve, upstream):
    server, socks = in_flight(serve, upstream, delay=None, count=1)
    try:
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.exits_within(SHUTDOWN_TIMEOUT + 2) == 0
        assert time.monotonic() - started >= SHUTDOWN_TIMEOUT - 0.5  # it did wait
    finally:
        socks[0].close()


def test_sigterm_when_idle_exits_at_once(serve, upstream):
    server = serve(upstream(0.5).port)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.exits_within(SHUTDOWN_TIMEOUT + 2) == 0
    assert time.monotonic() - started < 2.0
    assert "shutting down" in server.log.read_text()


def test_sigint_exits_cleanly(serve, upstream):
    server = serve(upstream(0.5).port)
    server.proc.send_signal(signal.SIGINT)
    assert server.exits_within(SHUTDOWN_TIMEOUT + 2) == 0
    log = server.log.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert "shutting down" in log
