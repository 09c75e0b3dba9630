"""Reload: a changed config is swapped in whole (by `Server.reload`, the file watcher or
SIGHUP); a bad one is refused and the old one keeps serving; health, listeners and queries in
flight survive it. One behaviour per test.

Every wait is bounded: queries carry timeouts, polling loops have deadlines, threads and
subprocesses are joined or killed with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgedns import config as config_mod
from edgedns.server.lifecycle import Server
from tests.conftest import RunningServer
from tests.support import REPO, free_port, wait_until

BASE = """\
admin: 127.0.0.1:0
reload_interval: 0
zones:
  example.lan:
    records:
      www: {{A: {www}}}
{extra}"""
"""`www.example.lan` answers `www`; `extra` adds lines (indented two spaces: more zones)."""


def config_text(www: str = "192.0.2.1", extra: str = "") -> str:
    return BASE.format(www=www, extra=extra)


OTHER_ZONE = """\
  other.lan:
    records:
      www: {A: 198.51.100.1}
"""


def a_addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
                  for rd in rrset)


def reload(srv: RunningServer, reason: str = "test") -> bool:
    return asyncio.run_coroutine_threadsafe(srv.server.reload(reason), srv.loop).result(10)


def write(path: Path, text: str) -> None:
    """Replace `path` atomically: a reader never sees a half-written config."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def config_path(srv: RunningServer) -> Path:
    return srv.server.config.source


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def admin_url(srv: RunningServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.server.admin_port}{path}"


def status(srv: RunningServer) -> dict:
    code, body = http_get(admin_url(srv, "/status"))
    assert code == 200
    return json.loads(body)


def metric(srv: RunningServer, sample_name: str, **labels: str) -> float:
    code, body = http_get(admin_url(srv, "/metrics"))
    assert code == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return sample.value
    raise AssertionError(f"no sample {sample_name} {labels}")


def closed_port(host: str) -> int:
    """A TCP port nothing listens on at `host` (a member that is down)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def answers(host: str, port: int, name: str = "www.example.lan", *, tcp: bool = False,
            timeout: float = 1.0) -> dns.message.Message:
    q = dns.message.make_query(name, "A", use_edns=False)
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=timeout)
    return dns.query.udp(q, host, port=port, timeout=timeout)


def answered(host: str, port: int) -> bool:
    try:
        answers(host, port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return False
    return True


# --- applying a changed config -------------------------------------------------------------


def test_reload_answers_a_changed_record(edgedns_server):
    srv = edgedns_server(config_text("192.0.2.1"))
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.1"]
    write(config_path(srv), config_text("192.0.2.2"))
    assert reload(srv)
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.2"]


def test_reload_answers_a_new_record(edgedns_server):
    srv = edgedns_server(config_text())
    assert srv.query("new.example.lan").rcode() == dns.rcode.NXDOMAIN
    write(config_path(srv), config_text().replace(
        "      www:", "      new: {A: 192.0.2.77}\n      www:"))
    assert reload(srv)
    assert a_addresses(srv.query("new.example.lan")) == ["192.0.2.77"]


def test_reload_refuses_a_removed_zone(edgedns_server):
    srv = edgedns_server(config_text(extra=OTHER_ZONE))
    assert a_addresses(srv.query("www.other.lan")) == ["198.51.100.1"]
    write(config_path(srv), config_text())
    assert reload(srv)
    assert srv.query("www.other.lan").rcode() == dns.rcode.REFUSED
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.1"]


def test_changed_file_is_picked_up_within_reload_interval(edgedns_server):
    text = config_text().replace("reload_interval: 0", "reload_interval: 300ms")
    srv = edgedns_server(text)
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.1"]
    write(config_path(srv), text.replace("192.0.2.1", "192.0.2.2"))
    # 300 ms plus scheduling slack; the default interval (3 s) would not make it.
    wait_until(lambda: a_addresses(srv.query("www.example.lan")) == ["192.0.2.2"], within=2.0)
    assert srv.server.reloads.successes == 1


def test_changed_zone_file_is_picked_up_by_the_watcher(edgedns_server):
    zone = """\
        $ORIGIN files.lan.
        @ 300 IN SOA ns1 hostmaster 1 3600 600 86400 30
        @ 300 IN NS ns1
        www 300 IN A {address}
        """
    srv = edgedns_server(
        config_text().replace("reload_interval: 0", "reload_interval: 300ms")
        + "  files.lan:\n    file: files.zone\n",
        files={"files.zone": zone.format(address="203.0.113.1")},
    )
    assert a_addresses(srv.query("www.files.lan")) == ["203.0.113.1"]
    write(config_path(srv).parent / "files.zone",
          textwrap.dedent(zone.format(address="203.0.113.2")))
    wait_until(lambda: a_addresses(srv.query("www.files.lan")) == ["203.0.113.2"], within=2.0)


@pytest.fixture
def serve_subprocess(tmp_path: Path) -> Iterator[Callable[[str], tuple[subprocess.Popen, int]]]:
    """``serve(yaml_text)`` → (process, port): ``edgedns serve`` on 127.0.0.1:port, answering.
    Killed at teardown."""
    procs: list[subprocess.Popen] = []

    def serve(text: str) -> tuple[subprocess.Popen, int]:
        path = tmp_path / "sub.yaml"
        path.write_text(text)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgedns", "serve", "-c", str(path), "--listen",
             f"127.0.0.1:{port}", "--log-level", "warning"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        procs.append(proc)
        # UDP answers come only after the signal handlers are installed (see Server.run).
        deadline = time.monotonic() + 15
        while not answered("127.0.0.1", port):
            if proc.poll() is not None:
                raise AssertionError(f"edgedns exited: {proc.stderr.read().decode()}")
            assert time.monotonic() < deadline, "edgedns did not start answering within 15 s"
        return proc, port

    yield serve
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        proc.stderr.close()


def test_sighup_reloads_a_running_process(tmp_path, serve_subprocess):
    text = config_text().replace("admin: 127.0.0.1:0", "admin: false")
    proc, port = serve_subprocess(text)
    assert a_addresses(answers("127.0.0.1", port)) == ["192.0.2.1"]
    (tmp_path / "sub.yaml").write_text(text.replace("192.0.2.1", "192.0.2.2"))
    os.kill(proc.pid, signal.SIGHUP)
    wait_until(lambda: a_addresses(answers("127.0.0.1", port)) == ["192.0.2.2"], within=5.0)
    assert proc.poll() is None


# --- refusing a bad config -----------------------------------------------------------------

BAD_CONFIGS = {
    "yaml_error": config_text() + "  broken: [unclosed\n",
    "unknown_key": config_text() + "colour: blue\n",
    "cname_clash": config_text().replace(
        "      www:", "      alias: {CNAME: www, A: 192.0.2.5}\n      www:"),
}
BAD_ERRORS = {
    "yaml_error": "not valid YAML",
    "unknown_key": "colour: unknown key",
    "cname_clash": "CNAME",
}


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
def test_bad_config_is_refused_and_the_old_one_keeps_serving(edgedns_server, kind):
    srv = edgedns_server(config_text())
    write(config_path(srv), BAD_CONFIGS[kind])
    assert not reload(srv)
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.1"]
    assert srv.query("www.example.lan", tcp=True).rcode() == dns.rcode.NOERROR


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
def test_refused_reload_shows_in_status_with_its_error(edgedns_server, kind):
    srv = edgedns_server(config_text())
    write(config_path(srv), BAD_CONFIGS[kind])
    assert not reload(srv)
    last = status(srv)["last_reload"]
    assert last["ok"] is False
    assert BAD_ERRORS[kind] in last["error"]
    assert str(config_path(srv)) in last["error"]
    assert last["failures"] == 1


def test_refused_reload_shows_in_metrics(edgedns_server):
    srv = edgedns_server(config_text())
    assert metric(srv, "edgedns_last_reload_successful") == 1
    assert metric(srv, "edgedns_reloads_total", result="failure") == 0
    write(config_path(srv), BAD_CONFIGS["unknown_key"])
    assert not reload(srv)
    assert metric(srv, "edgedns_last_reload_successful") == 0
    assert metric(srv, "edgedns_reloads_total", result="failure") == 1
    assert not reload(srv)
    assert metric(srv, "edgedns_reloads_total", result="failure") == 2


def test_good_config_after_a_bad_one_clears_the_failure(edgedns_server):
    srv = edgedns_server(config_text())
    write(config_path(srv), BAD_CONFIGS["cname_clash"])
    assert not reload(srv)
    write(config_path(srv), config_text("192.0.2.2"))
    assert reload(srv)
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.2"]
    last = status(srv)["last_reload"]
    assert last["ok"] is True and last["error"] is None
    assert (last["successes"], last["failures"]) == (1, 1)
    assert metric(srv, "edgedns_last_reload_successful") == 1
    assert metric(srv, "edgedns_reloads_total", result="success") == 1


def test_watcher_tries_a_bad_config_once_and_the_next_edit_again(edgedns_server):
    text = config_text().replace("reload_interval: 0", "reload_interval: 100ms")
    srv = edgedns_server(text)
    write(config_path(srv), text + "colour: blue\n")
    wait_until(lambda: srv.server.reloads.failures >= 1, within=3.0)
    time.sleep(0.6)  # six more intervals, the file unchanged
    assert srv.server.reloads.failures == 1
    write(config_path(srv), text.replace("192.0.2.1", "192.0.2.2"))
    wait_until(lambda: a_addresses(srv.query("www.example.lan")) == ["192.0.2.2"], within=2.0)
    assert (srv.server.reloads.successes, srv.server.reloads.failures) == (1, 1)


# --- health carries over -------------------------------------------------------------------

POOL = """\
    pools:
      app:
        check: {{type: tcp, port: {port}, interval: 5s, timeout: 1s}}
        members: [{members}]
"""


def pool_config(port: int, members: str, www: str = "192.0.2.1") -> str:
    return config_text(www) + POOL.format(port=port, members=members)


def reload_and_look(srv: RunningServer) -> tuple[bool, dict[str, tuple[bool, bool]]]:
    """Reload, and in the same event-loop turn read each target's (up, probed)."""
    async def go():
        ok = await srv.server.reload("test")
        return ok, {t.address: (h.up, h.probed) for t, h in srv.server.pools.health.items()}

    return asyncio.run_coroutine_threadsafe(go(), srv.loop).result(10)


@pytest.fixture
def tcp_listener() -> Iterator[Callable[[str, int], socket.socket]]:
    """``listen(address, port)``: a TCP listener (the kernel completes the handshakes)."""
    socks: list[socket.socket] = []

    def listen(address: str, port: int) -> socket.socket:
        socks.append(socket.create_server((address, port)))
        return socks[-1]

    yield listen
    for sock in socks:
        sock.close()


def probed(srv: RunningServer) -> bool:
    return srv.server.pools.all_probed()


def test_down_member_is_not_answered_right_after_a_reload(edgedns_server, tcp_listener):
    port = closed_port("127.0.0.3")
    tcp_listener("127.0.0.2", port)
    srv = edgedns_server(pool_config(port, "127.0.0.2, 127.0.0.3"))
    wait_until(lambda: probed(srv))
    assert a_addresses(srv.query("app.example.lan")) == ["127.0.0.2"]
    write(config_path(srv), pool_config(port, "127.0.0.2, 127.0.0.3", www="192.0.2.2"))
    ok, health = reload_and_look(srv)
    assert ok
    # No "starting up" phase where every member counts as up until probed again.
    assert health == {"127.0.0.2": (True, True), "127.0.0.3": (False, True)}
    assert a_addresses(srv.query("app.example.lan")) == ["127.0.0.2"]
    assert status(srv)["ready"] is True


def test_up_member_stays_up_across_a_reload(edgedns_server, tcp_listener):
    port = closed_port("127.0.0.2")
    tcp_listener("127.0.0.2", port)
    srv = edgedns_server(pool_config(port, "127.0.0.2"))
    wait_until(lambda: probed(srv))
    before = next(iter(srv.server.pools.health.values()))
    assert before.up and before.successes >= 1
    write(config_path(srv), pool_config(port, "127.0.0.2", www="192.0.2.2"))
    ok, health = reload_and_look(srv)
    assert ok
    assert health == {"127.0.0.2": (True, True)}
    after = next(iter(srv.server.pools.health.values()))
    assert after.changed_at == before.changed_at  # never flapped
    assert a_addresses(srv.query("app.example.lan")) == ["127.0.0.2"]


@pytest.mark.parametrize("change", [("timeout: 1s", "timeout: 2s"),
                                    ("interval: 5s", "interval: 4s")])
def test_a_dead_member_whose_check_changed_stays_out_until_its_new_verdict(
        edgedns_server, tcp_listener, change):
    """A changed check gets a new verdict of its own (it may differ), but until then the
    member keeps the state it had: a known-dead member is not served meanwhile."""
    port = closed_port("127.0.0.3")
    tcp_listener("127.0.0.2", port)
    srv = edgedns_server(pool_config(port, "127.0.0.2, 127.0.0.3"))
    wait_until(lambda: probed(srv))
    write(config_path(srv), pool_config(port, "127.0.0.2, 127.0.0.3").replace(*change))
    ok, health = reload_and_look(srv)
    assert ok
    assert health["127.0.0.3"] == (False, False)
    assert a_addresses(srv.query("app.example.lan")) == ["127.0.0.2"]


@pytest.mark.skipif(os.geteuid() != 0, reason="ICMP checks need root for raw sockets here")
@pytest.mark.parametrize("address", ["127.0.0.3", "::1"])
def test_a_reload_adding_the_first_icmp_check_of_a_family_probes_it(edgedns_server, address):
    port = closed_port("127.0.0.3")
    srv = edgedns_server(pool_config(port, "127.0.0.3"))
    wait_until(lambda: probed(srv))
    members = f"127.0.0.3, '{address}'" if address == "::1" else address
    write(config_path(srv), pool_config(port, members).replace(
        f"type: tcp, port: {port}", "type: icmp"))
    ok, _ = reload_and_look(srv)
    assert ok
    assert srv.server.icmp.versions == ({4, 6} if address == "::1" else {4})
    # Loopback answers pings: every member is up by its first ICMP verdict.
    wait_until(lambda: all(h.probed and h.up for h in srv.server.pools.health.values()))
    assert all(h.last.reason == "echo reply" for h in srv.server.pools.health.values())


# --- listen addresses ----------------------------------------------------------------------


class ThreadServer:
    """A `Server` on its own loop in a thread, listening where its config says (no override,
    unlike `RunningServer`), so a reload can change the listen addresses."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = Server(config_mod.load(path))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.server.start())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def endpoints(self) -> dict[str, int]:
        return {e.host: e.port for e in self.server.bound}

    def stop(self) -> None:
        if self.thread.is_alive():
            self.call(self.server.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def thread_server(tmp_path: Path) -> Iterator[Callable[[str], ThreadServer]]:
    running: list[ThreadServer] = []

    def start(text: str) -> ThreadServer:
        path = tmp_path / "listen.yaml"
        path.write_text(text)
        running.append(ThreadServer(path))
        return running[-1]

    yield start
    for srv in running:
        srv.stop()


def listen_config(*listen: str) -> str:
    return f"listen: [{', '.join(listen)}]\nadmin: false\n" + config_text().replace(
        "admin: 127.0.0.1:0\n", "")


def test_added_listen_address_answers_alongside_the_first(thread_server, tmp_path):
    first, second = f"127.0.0.1:{free_port('127.0.0.1')}", f"127.0.0.5:{free_port('127.0.0.5')}"
    srv = thread_server(listen_config(first))
    write(tmp_path / "listen.yaml", listen_config(first, second))
    assert srv.call(srv.server.reload("test"))
    bound = srv.endpoints()
    assert set(bound) == {"127.0.0.1", "127.0.0.5"}
    for host, port in bound.items():
        assert a_addresses(answers(host, port)) == ["192.0.2.1"]
        assert a_addresses(answers(host, port, tcp=True)) == ["192.0.2.1"]


def test_removed_listen_address_stops_answering(thread_server, tmp_path):
    first, second = f"127.0.0.1:{free_port('127.0.0.1')}", f"127.0.0.5:{free_port('127.0.0.5')}"
    srv = thread_server(listen_config(first))
    write(tmp_path / "listen.yaml", listen_config(first, second))
    assert srv.call(srv.server.reload("test"))
    ports = srv.endpoints()
    write(tmp_path / "listen.yaml", listen_config(second))
    assert srv.call(srv.server.reload("test"))
    assert srv.endpoints() == {"127.0.0.5": ports["127.0.0.5"]}
    assert a_addresses(answers("127.0.0.5", ports["127.0.0.5"])) == ["192.0.2.1"]
    with pytest.raises(dns.exception.Timeout):
        answers("127.0.0.1", ports["127.0.0.1"], timeout=0.5)
    with pytest.raises(ConnectionRefusedError):
        answers("127.0.0.1", ports["127.0.0.1"], tcp=True, timeout=0.5)


def test_listen_address_that_cannot_be_bound_refuses_the_reload(thread_server, tmp_path):
    first = f"127.0.0.1:{free_port('127.0.0.1')}"
    srv = thread_server(listen_config(first))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.6", 0))
        busy = f"127.0.0.6:{taken.getsockname()[1]}"
        write(tmp_path / "listen.yaml", listen_config(busy).replace("192.0.2.1", "192.0.2.2"))
        assert not srv.call(srv.server.reload("test"))
    assert "127.0.0.6" in srv.server.reloads.last_error
    host, port = first.split(":")
    assert srv.endpoints() == {host: int(port)}
    assert a_addresses(answers(host, int(port))) == ["192.0.2.1"]


# --- under load ----------------------------------------------------------------------------

LOAD_NAMES = ("www.example.lan", "api.example.lan")


def load_config(generation: int) -> str:
    """Both names answer in every generation; the address says which config answered."""
    return config_text(f"192.0.2.{generation}").replace(
        "      www:", f"      api: {{A: 198.51.100.{generation}}}\n      www:")


def valid_answer(name: str, addresses: list[str], generations: range) -> bool:
    prefix = "192.0.2." if name.startswith("www") else "198.51.100."
    return any(addresses == [f"{prefix}{g}"] for g in generations)


def test_reload_under_load_loses_no_query(edgedns_server):
    srv = edgedns_server(load_config(1))
    generations = range(1, 6)
    failures: list[str] = []
    counts = {"udp": 0, "tcp": 0}
    lock = threading.Lock()
    stop_tcp = threading.Event()
    progress = [0]

    def udp_client(seed: int) -> None:
        n = 0
        for i in range(2000):
            name = LOAD_NAMES[(i + seed) % 2]
            try:
                reply = answers(srv.host, srv.port, name, timeout=1.0)
            except (dns.exception.DNSException, OSError) as exc:
                failures.append(f"udp {name}: {exc!r}")
                continue
            if reply.rcode() != dns.rcode.NOERROR or not valid_answer(
                    name, a_addresses(reply), generations):
                failures.append(f"udp {name}: {reply}")
            n += 1
            progress[0] += 1  # approximate across threads; only paces the reloads
        with lock:
            counts["udp"] += n

    def tcp_client() -> None:
        n = 0
        for i in range(1000):
            if stop_tcp.is_set():
                break
            name = LOAD_NAMES[i % 2]
            try:
                reply = answers(srv.host, srv.port, name, tcp=True, timeout=1.0)
            except (dns.exception.DNSException, OSError) as exc:
                failures.append(f"tcp {name}: {exc!r}")
                continue
            if not valid_answer(name, a_addresses(reply), generations):
                failures.append(f"tcp {name}: {reply}")
            n += 1
        with lock:
            counts["tcp"] += n

    threads = [threading.Thread(target=udp_client, args=(s,), daemon=True) for s in range(3)]
    threads.append(threading.Thread(target=tcp_client, daemon=True))
    for thread in threads:
        thread.start()
    results = []
    for k, generation in enumerate((2, 3, None, 4, 5), 1):  # None: a bad config, refused
        # Each reload while the UDP clients are busy: after k * 800 of their 6000 queries.
        wait_until(lambda k=k: progress[0] >= k * 800 or failures, within=60)
        text = load_config(generation) if generation else BAD_CONFIGS["cname_clash"]
        write(config_path(srv), text)
        results.append(reload(srv))
    assert progress[0] < 6000, "the queries ended before the reloads: not under load"
    stop_tcp.set()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a client did not finish within 60 s"
    assert results == [True, True, False, True, True]
    assert failures == []
    assert counts["udp"] == 6000 and counts["tcp"] > 0
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.5"]


def test_a_bug_while_preparing_a_reload_keeps_the_old_config_serving(
    edgedns_server, monkeypatch, caplog
):
    srv = edgedns_server(config_text())

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in loading")

    monkeypatch.setattr(config_mod, "load", broken)
    with caplog.at_level("ERROR", logger="edgedns.server.lifecycle"):
        assert not reload(srv)
    assert a_addresses(srv.query("www.example.lan")) == ["192.0.2.1"]
    assert srv.server.reloads.last_error == "a bug in loading"
    assert any(r.exc_info for r in caplog.records if "refused" in r.getMessage())
