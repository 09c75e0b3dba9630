"""Forwarding end to end, against real upstreams on loopback: NSD, other edgedns servers
(stopped and restarted during a test), and `FakeUpstream`, a tiny asyncio DNS server that can
answer late, forge replies or speak DNS over TLS. One behaviour per test.

Every wait is bounded: dnspython queries carry timeouts, sockets have timeouts, threads are
joined with timeouts and polling loops have a fixed number of rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from edgedns import config as config_mod
from edgedns.forward.forwarder import Upstream
from tests.conftest import RunningServer
from tests.support import DATA, daemon, free_port, nsd_server

LOCAL = "127.0.0.1"
FAKE_ADDRESS = "192.0.2.100"
FORGED_ADDRESS = "6.6.6.6"

needs_nsd = pytest.mark.skipif(
    daemon("nsd") is None, reason="reference server NSD not installed (apt-get install nsd)"
)


# --- upstreams -----------------------------------------------------------------------------


@pytest.fixture
def blackhole() -> Iterator[Callable[[], int]]:
    """Factory of UDP ports that take queries and never answer (an unreachable upstream)."""
    socks: list[socket.socket] = []

    def make() -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOCAL, 0))
        socks.append(sock)
        return sock.getsockname()[1]

    yield make
    for sock in socks:
        sock.close()


class FakeUpstream:
    """A DNS server on 127.0.0.1 answering every A question with `address`, after `delay`.

    Over UDP, or over TLS when given a server `tls` context. With `forge`, each UDP query is
    first met by forged replies carrying `FORGED_ADDRESS`: one with another ID, one with the
    right ID for another name, and one right in every field but sent from another port.
    Queries with CD set get `cd_address`; setting `rcode` makes it answer that instead, with
    no records (an upstream that can no longer resolve). `mangle`, when set, rewrites each
    UDP reply's bytes before they are sent.
    """

    def __init__(self, address: str = FAKE_ADDRESS, *, ttl: int = 300, delay: float = 0.0,
                 forge: bool = False, tls: ssl.SSLContext | None = None,
                 cd_address: str = FAKE_ADDRESS) -> None:
        self.address, self.ttl, self.delay, self.forge, self.tls = address, ttl, delay, forge, tls
        self.cd_address = cd_address
        self.rcode = dns.rcode.NOERROR
        self.mangle: Callable[[bytes], bytes] | None = None
        self.queries: list[str] = []
        """Lowercased question names, in arrival order."""
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._forger: socket.socket | None = None
        self._stream: asyncio.AbstractServer | None = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._close())
        self.loop.close()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.tls is not None:
            self._stream = await asyncio.start_server(self._serve_stream, LOCAL, 0, ssl=self.tls)
            self.port = self._stream.sockets[0].getsockname()[1]
            return
        owner = self

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                owner._udp_query(data, addr)

        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(LOCAL, 0))
        self.port = self._udp.get_extra_info("sockname")[1]
        self._forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._forger.bind((LOCAL, 0))

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._forger is not None:
            self._forger.close()
        if self._stream is not None:
            self._stream.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stream.wait_closed(), 5)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def _answer(self, data: bytes) -> tuple[dns.message.Message, dns.message.Message] | None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        question = query.question[0]
        self.queries.append(question.name.to_text().lower())
        reply = dns.message.make_response(query)
        reply.set_rcode(self.rcode)
        if question.rdtype == dns.rdatatype.A and self.rcode == dns.rcode.NOERROR:
            address = self.cd_address if query.flags & dns.flags.CD else self.address
            reply.answer.append(dns.rrset.from_text(question.name, self.ttl, "IN", "A", address))
        return query, reply

    def _udp_query(self, data: bytes, addr) -> None:
        answered = self._answer(data)
        if answered is None or self._udp is None:
            return
        query, reply = answered
        if self.forge:
            self._send_forgeries(query, addr)
        out = reply.to_wire()
        if self.mangle is not None:
            out = self.mangle(out)
        self.loop.call_later(self.delay, self._send, out, addr)

    def _send(self, data: bytes, addr) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(data, addr)

    def _send_forgeries(self, query: dns.message.Message, addr) -> None:
        forged = dns.message.make_response(query)
        forged.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A",
                                                 FORGED_ADDRESS))
        right = forged.to_wire()
        forged.id = (query.id + 1) % 65536
        self._send(forged.to_wire(), addr)  # another ID
        other = dns.message.make_query("forged." + query.question[0].name.to_text(), "A")
        other.id = query.id
        other_reply = dns.message.make_response(other)
        other_reply.answer.append(dns.rrset.from_text(other.question[0].name, 300, "IN", "A",
                                                      FORGED_ADDRESS))
        self._send(other_reply.to_wire(), addr)  # the right ID, another question
        assert self._forger is not None
        self._forger.sendto(right, addr)  # all right, but from a port edgedns did not ask

    async def _serve_stream(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100):
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 10), "big")
                data = await asyncio.wait_for(reader.readexactly(size), 10)
                answered = self._answer(data)
                if answered is None:
                    break
                await asyncio.sleep(self.delay)
                out = answered[1].to_wire()
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()


@pytest.fixture
def fake_upstream() -> Iterator[Callable[..., FakeUpstream]]:
    running: list[FakeUpstream] = []

    def start(*args, **kwargs) -> FakeUpstream:
        running.append(FakeUpstream(*args, **kwargs))
        return running[-1]

    yield start
    for fake in running:
        fake.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``server(yaml_text, port=0)`` → a RunningServer on 127.0.0.1:`port`."""
    running: list[RunningServer] = []

    def start(yaml_text: str, port: int = 0) -> RunningServer:
        path = tmp_path / f"edgedns-{len(running)}.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        srv = RunningServer(config_mod.load(path, (f"{LOCAL}:{port}",)))
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """NSD serving tests/data/rules.zone on 127.0.0.1; yields its port."""
    if daemon("nsd") is None:
        pytest.skip("reference server NSD not installed")
    work = tmp_path_factory.mktemp("nsd")
    shutil.copy(DATA / "rules.zone", work / "rules.zone")
    with nsd_server(work, {"rules.lan.": "rules.zone"}, free_port(LOCAL)) as port:
        yield port


# --- helpers -------------------------------------------------------------------------------


def ask(srv: RunningServer | int, qname: str, rdtype: str = "A", *, tcp: bool = False,
        timeout: float = 3.0, source: str | None = None, qid: int | None = None,
        **make_kwargs) -> dns.message.Message:
    """One query to `srv` (a server or a port on 127.0.0.1), without EDNS unless asked."""
    port = srv if isinstance(srv, int) else srv.port
    make_kwargs.setdefault("use_edns", False)
    q = dns.message.make_query(qname, rdtype, **make_kwargs)
    if qid is not None:
        q.id = qid
    if tcp:
        return dns.query.tcp(q, LOCAL, port=port, timeout=timeout, source=source)
    return dns.query.udp(q, LOCAL, port=port, timeout=timeout, source=source)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in reply.answer
                  if rrset.rdtype == dns.rdatatype.A for rd in rrset)


def forwarder_yaml(*upstreams: str | int, zone_records: str = "www: {A: 192.0.2.1}",
                   **forward: object) -> str:
    """A config serving site.lan itself and forwarding everything else to `upstreams`
    (ports on 127.0.0.1, or upstream strings); extra `forward` keys as YAML text."""
    ups = ", ".join(f'"{LOCAL}:{u}"' if isinstance(u, int) else f'"{u}"' for u in upstreams)
    extra = "".join(f"\n  {k}: {v}" for k, v in forward.items() if k != "cache")
    cache = f"\ncache: {forward['cache']}" if "cache" in forward else ""
    return (f"zones:\n  site.lan:\n    records:\n      {zone_records}\n"
            f"forward:\n  upstreams: [{ups}]{extra}{cache}\n")


def authoritative_yaml(zone: str, records: str) -> str:
    """A config serving `zone` with `records` (YAML flow mapping lines) and nothing else."""
    lines = "".join(f"      {line}\n" for line in textwrap.dedent(records).strip().splitlines())
    return f"zones:\n  {zone}:\n    records:\n{lines}"


def poll(condition: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def states(srv: RunningServer) -> dict:
    forwarder = srv.server.handler.forwarder
    assert forwarder is not None
    return forwarder._states


# --- resolution through a real upstream ----------------------------------------------------


def sections(reply: dns.message.Message) -> tuple:
    return tuple(sorted(rrset.to_text() for rrset in section)
                 for section in (reply.answer, reply.authority, reply.additional))


@needs_nsd
@pytest.mark.parametrize(("qname", "rdtype", "rcode"), [
    ("host.rules.lan.", "A", dns.rcode.NOERROR),
    ("alias.rules.lan.", "A", dns.rcode.NOERROR),
    ("host.rules.lan.", "MX", dns.rcode.NOERROR),
    ("nope.rules.lan.", "A", dns.rcode.NXDOMAIN),
    ("deleg.rules.lan.", "A", dns.rcode.NOERROR),
])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_forwarded_reply_passes_rcode_and_sections_through_from_nsd(
    server, nsd, qname, rdtype, rcode, tcp
):
    srv = server(forwarder_yaml(nsd))
    direct = ask(nsd, qname, rdtype, tcp=tcp, use_edns=0)
    forwarded = ask(srv, qname, rdtype, tcp=tcp, use_edns=0)
    assert forwarded.rcode() == direct.rcode() == rcode
    assert sections(forwarded) == sections(direct)
    assert forwarded.flags & dns.flags.AA == direct.flags & dns.flags.AA
    assert forwarded.flags & dns.flags.RA


@needs_nsd
@pytest.mark.parametrize("cached", [False, True], ids=["fresh", "cached"])
def test_forwarded_reply_carries_the_clients_id_and_question_case(server, nsd, cached):
    srv = server(forwarder_yaml(nsd))
    if cached:
        ask(srv, "host.rules.lan.")
    reply = ask(srv, "HoSt.RuLeS.lAn.", qid=0xBEEF)
    assert reply.id == 0xBEEF
    assert reply.question[0].name.to_text() == "HoSt.RuLeS.lAn."
    assert reply.flags & dns.flags.RD and reply.flags & dns.flags.RA
    assert addresses(reply) == ["192.0.2.10", "192.0.2.11"]


def test_names_in_our_zones_are_never_forwarded(server):
    upstream = server(authoritative_yaml("site.lan", """
        www: {A: 198.51.100.1}
        only-upstream: {A: 198.51.100.2}
    """) + "  other.lan:\n    records:\n      www: {A: 198.51.100.3}\n")
    srv = server(forwarder_yaml(upstream.port))
    assert addresses(ask(upstream, "only-upstream.site.lan.")) == ["198.51.100.2"]
    assert addresses(ask(srv, "www.other.lan.")) == ["198.51.100.3"]  # forwarding works
    own = ask(srv, "www.site.lan.")
    assert addresses(own) == ["192.0.2.1"] and own.flags & dns.flags.AA
    missing = ask(srv, "only-upstream.site.lan.")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.flags & dns.flags.AA


def test_without_forward_outside_names_are_refused(server, fake_upstream):
    srv = server(authoritative_yaml("site.lan", "www: {A: 192.0.2.1}"))
    assert addresses(ask(srv, "www.site.lan.")) == ["192.0.2.1"]
    assert ask(srv, "www.example.test.").rcode() == dns.rcode.REFUSED
    assert ask(srv, "www.example.test.", tcp=True).rcode() == dns.rcode.REFUSED


# --- big answers: UDP truncated upstream, TCP retry ----------------------------------------

BIG_TXT = [f'"{i:02d}' + "x" * 96 + '"' for i in range(40)]  # ~4.5 KB as one RRset


@pytest.fixture
def big_upstream(server) -> RunningServer:
    return server(authoritative_yaml("big.lan", "big: {TXT: [" + ", ".join(
        f"'{t}'" for t in BIG_TXT) + "]}"))


def test_truncated_upstream_answer_is_fetched_over_tcp_for_a_tcp_client(server, big_upstream):
    srv = server(forwarder_yaml(big_upstream.port))
    assert ask(big_upstream, "big.big.lan.", "TXT").flags & dns.flags.TC  # UDP won't do
    reply = ask(srv, "big.big.lan.", "TXT", tcp=True)
    assert not reply.flags & dns.flags.TC
    assert reply.rcode() == dns.rcode.NOERROR
    assert len(reply.answer) == 1 and len(reply.answer[0]) == len(BIG_TXT)


@pytest.mark.parametrize("edns", [False, 0], ids=["no-edns", "edns"])
def test_udp_client_gets_tc_for_a_big_forwarded_answer_then_all_of_it_over_tcp(
    server, big_upstream, edns
):
    srv = server(forwarder_yaml(big_upstream.port))
    udp = ask(srv, "big.big.lan.", "TXT", use_edns=edns)
    assert udp.flags & dns.flags.TC
    assert not udp.answer and udp.rcode() == dns.rcode.NOERROR
    tcp = ask(srv, "big.big.lan.", "TXT", tcp=True, use_edns=edns)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == len(BIG_TXT)


# --- failover and upstream health ----------------------------------------------------------


def test_closed_first_upstream_fails_over_to_the_second_at_once(server, fake_upstream):
    fake = fake_upstream()
    srv = server(forwarder_yaml(free_port(), fake.port, timeout="2s"))
    started = time.monotonic()
    reply = ask(srv, "www.example.test.")
    assert time.monotonic() - started < 1.0  # port unreachable: no need to wait
    assert addresses(reply) == [FAKE_ADDRESS]


def test_silent_first_upstream_fails_over_to_the_second_within_the_budget(
    server, fake_upstream, blackhole
):
    fake = fake_upstream()
    srv = server(forwarder_yaml(blackhole(), fake.port, timeout="2s"))
    started = time.monotonic()
    reply = ask(srv, "www.example.test.", timeout=5)
    assert time.monotonic() - started < 2.0
    assert addresses(reply) == [FAKE_ADDRESS]


def test_all_upstreams_silent_gives_servfail_once_the_timeout_is_spent(server, blackhole):
    srv = server(forwarder_yaml(blackhole(), blackhole(), timeout="1s"))
    started = time.monotonic()
    reply = ask(srv, "www.example.test.", timeout=5)
    elapsed = time.monotonic() - started
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.flags & dns.flags.RA
    assert 0.8 <= elapsed < 2.5


def test_all_upstreams_unreachable_gives_servfail_at_once(server):
    srv = server(forwarder_yaml(free_port(), free_port(), timeout="2s"))
    started = time.monotonic()
    reply = ask(srv, "www.example.test.", timeout=5)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 1.0


def test_upstream_is_marked_down_after_max_fails_and_up_again_when_it_returns(server):
    first_yaml = authoritative_yaml("up.lan", "'*': {A: 198.51.100.1}")
    first = server(first_yaml)
    port = first.port
    second = server(authoritative_yaml("up.lan", "'*': {A: 198.51.100.2}"))
    srv = server(forwarder_yaml(port, second.port, max_fails=2, health_check="200ms"))
    state = states(srv)[Upstream(LOCAL, port)]
    assert addresses(ask(srv, "a.up.lan.")) == ["198.51.100.1"]  # sequential: first first

    first.stop()
    assert addresses(ask(srv, "b.up.lan.")) == ["198.51.100.2"]
    assert (state.fails, state.down) == (1, False)
    assert addresses(ask(srv, "c.up.lan.")) == ["198.51.100.2"]
    assert (state.fails, state.down) == (2, True)
    assert addresses(ask(srv, "d.up.lan.")) == ["198.51.100.2"]
    assert state.fails == 2  # a down upstream is tried last, so not at all here

    server(first_yaml, port=port)
    assert poll(lambda: not state.down, 5.0), "the probe never saw the upstream return"
    assert state.fails == 0
    assert addresses(ask(srv, "e.up.lan.")) == ["198.51.100.1"]


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP])
def test_an_upstream_that_cannot_answer_moves_the_question_to_the_next(server, fake_upstream,
                                                                       rcode):
    failing, good = fake_upstream(), fake_upstream()
    failing.rcode = rcode
    srv = server(forwarder_yaml(failing.port, good.port))
    reply = ask(srv, "www.example.test.")
    assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == [FAKE_ADDRESS]
    assert failing.queries == good.queries == ["www.example.test."]
    state = states(srv)[Upstream(LOCAL, failing.port)]
    assert state.results == {dns.rcode.to_text(rcode).lower(): 1}
    assert not state.down  # it answered: alive, just not able to resolve this


def test_servfail_is_passed_on_only_when_every_upstream_says_so_and_never_cached(
        server, fake_upstream):
    first, second = fake_upstream(), fake_upstream()
    first.rcode = second.rcode = dns.rcode.SERVFAIL
    srv = server(forwarder_yaml(first.port, second.port))
    for _ in range(2):
        assert ask(srv, "www.example.test.").rcode() == dns.rcode.SERVFAIL
    assert first.queries == second.queries == ["www.example.test."] * 2


def compression_loop(reply: bytes) -> bytes:
    """`reply` with its answer's owner name (a pointer to the question) pointing at itself."""
    owner = reply.index(b"\xc0\x0c", 12)
    return reply[:owner] + struct.pack("!H", 0xC000 | owner) + reply[owner + 2 :]


def test_a_reply_no_client_could_decode_is_not_relayed_nor_cached(server, fake_upstream):
    broken, good = fake_upstream(), fake_upstream()
    broken.mangle = compression_loop
    srv = server(forwarder_yaml(broken.port, good.port))
    assert addresses(ask(srv, "www.example.test.")) == [FAKE_ADDRESS]
    assert states(srv)[Upstream(LOCAL, broken.port)].results == {"bad_reply": 1}
    alone = server(forwarder_yaml(broken.port))
    assert ask(alone, "www.example.test.").rcode() == dns.rcode.SERVFAIL


def test_a_reload_keeps_a_dead_upstream_marked_down(server, fake_upstream, blackhole):
    fake = fake_upstream()
    srv = server(forwarder_yaml(blackhole(), fake.port, timeout="2s", max_fails=1,
                                health_check="10s"))
    assert addresses(ask(srv, "a.example.test.", timeout=5)) == [FAKE_ADDRESS]  # waited 1 s
    ok = asyncio.run_coroutine_threadsafe(srv.server.reload("test"), srv.loop).result(10)
    assert ok
    down = [state.down for state in states(srv).values()]
    assert down == [True, False]
    started = time.monotonic()
    assert addresses(ask(srv, "b.example.test.", timeout=5)) == [FAKE_ADDRESS]
    assert time.monotonic() - started < 0.5  # the dead one is asked last, not first


# --- cache ----------------------------------------------------------------------------------


def test_cached_answer_ttl_counts_down(server, fake_upstream):
    fake = fake_upstream(ttl=300)
    srv = server(forwarder_yaml(fake.port))
    assert ask(srv, "www.example.test.").answer[0].ttl == 300
    time.sleep(2.2)
    assert 296 <= ask(srv, "www.example.test.").answer[0].ttl <= 298
    assert fake.queries == ["www.example.test."]


def short_ttl_setup(server, serve_stale: str) -> tuple[RunningServer, RunningServer]:
    upstream = server(authoritative_yaml("short.lan", "www: {ttl: 1, A: 198.51.100.7}"))
    srv = server(forwarder_yaml(
        upstream.port, timeout="500ms",
        cache=f"{{min_ttl: 0, serve_stale: {serve_stale}}}"))
    reply = ask(srv, "www.short.lan.")
    assert addresses(reply) == ["198.51.100.7"] and reply.answer[0].ttl == 1
    upstream.stop()
    time.sleep(1.2)  # the answer expires
    return upstream, srv


def test_expired_answer_is_served_stale_with_ttl_30_when_the_upstream_is_gone(server):
    _, srv = short_ttl_setup(server, "1m")
    reply = ask(srv, "www.short.lan.")
    assert reply.rcode() == dns.rcode.NOERROR
    assert addresses(reply) == ["198.51.100.7"]
    assert {rrset.ttl for rrset in reply.answer + reply.authority} == {30}


def test_expired_answer_is_not_served_when_serve_stale_is_off(server):
    _, srv = short_ttl_setup(server, "0")
    assert ask(srv, "www.short.lan.").rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize(("serve_stale", "expected"), [("1m", [FAKE_ADDRESS]), ("0", [])])
def test_expired_answer_is_served_stale_when_the_upstream_answers_servfail(
    server, fake_upstream, serve_stale, expected
):
    fake = fake_upstream(ttl=1)
    srv = server(forwarder_yaml(fake.port, cache=f"{{min_ttl: 0, serve_stale: {serve_stale}}}"))
    assert addresses(ask(srv, "www.example.test.")) == [FAKE_ADDRESS]
    fake.rcode = dns.rcode.SERVFAIL
    time.sleep(1.2)  # the answer expires
    reply = ask(srv, "www.example.test.")
    assert fake.queries == ["www.example.test."] * 2
    assert addresses(reply) == expected
    if expected:
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0].ttl == 30
    else:
        assert reply.rcode() == dns.rcode.SERVFAIL  # the upstream's, relayed


def test_answer_fetched_with_checking_disabled_is_not_served_to_other_clients(
    server, fake_upstream
):
    fake = fake_upstream(cd_address="192.0.2.66")  # what a validator returns unchecked
    srv = server(forwarder_yaml(fake.port))
    unchecked = ask(srv, "www.example.test.", flags=dns.flags.RD | dns.flags.CD)
    assert addresses(unchecked) == ["192.0.2.66"] and unchecked.flags & dns.flags.CD
    assert addresses(ask(srv, "www.example.test.")) == [FAKE_ADDRESS]
    assert addresses(ask(srv, "www.example.test.", flags=dns.flags.RD | dns.flags.CD)) == [
        "192.0.2.66"]  # cached, each under its own key
    assert fake.queries == ["www.example.test."] * 2


# --- access control ------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_client_outside_allow_is_refused_forwarding_but_gets_our_zones(
    server, fake_upstream, tcp
):
    fake = fake_upstream()
    srv = server(forwarder_yaml(fake.port, allow="[127.0.0.1/32]"))
    outsider = "127.0.0.99"
    assert ask(srv, "www.example.test.", tcp=tcp, source=outsider).rcode() == dns.rcode.REFUSED
    assert fake.queries == []
    assert addresses(ask(srv, "www.site.lan.", tcp=tcp, source=outsider)) == ["192.0.2.1"]
    assert addresses(ask(srv, "www.example.test.", tcp=tcp, source=LOCAL)) == [FAKE_ADDRESS]


# --- a local CNAME into a forwarded name ----------------------------------------------------


ALIAS = "alias: {CNAME: app.example.test.}"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_local_cname_to_a_forwarded_name_is_answered_with_the_chased_address(
        server, fake_upstream, tcp):
    fake = fake_upstream()
    srv = server(forwarder_yaml(fake.port, zone_records=ALIAS))
    reply = ask(srv, "aLiAs.site.lan.", tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.RA
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer] == [
        ("aLiAs.site.lan.", "CNAME"), ("app.example.test.", "A")]
    assert addresses(reply) == [FAKE_ADDRESS]
    assert reply.question[0].name.to_text() == "aLiAs.site.lan."  # 0x20 kept
    assert fake.queries == ["app.example.test."]
    ask(srv, "alias.site.lan.", tcp=tcp)
    assert fake.queries == ["app.example.test."]  # the second time from the cache


def test_the_chased_names_rcode_is_the_replys(server, fake_upstream):
    fake = fake_upstream()
    fake.rcode = dns.rcode.NXDOMAIN
    srv = server(forwarder_yaml(fake.port, zone_records=ALIAS))
    reply = ask(srv, "alias.site.lan.")
    assert reply.rcode() == dns.rcode.NXDOMAIN  # RFC 6604: the last name's
    assert [dns.rdatatype.to_text(r.rdtype) for r in reply.answer] == ["CNAME"]


def test_without_forwarding_or_for_a_client_outside_allow_the_cname_alone(
        server, fake_upstream):
    fake = fake_upstream()
    alone = server(authoritative_yaml("site.lan", ALIAS))
    reply = ask(alone, "alias.site.lan.")
    assert [dns.rdatatype.to_text(r.rdtype) for r in reply.answer] == ["CNAME"]
    srv = server(forwarder_yaml(fake.port, zone_records=ALIAS, allow="[127.0.0.1/32]"))
    reply = ask(srv, "alias.site.lan.", source="127.0.0.99")
    assert [dns.rdatatype.to_text(r.rdtype) for r in reply.answer] == ["CNAME"]
    assert fake.queries == []


# --- concurrency ----------------------------------------------------------------------------


def send_raw(srv: RunningServer, qname: str, qid: int, stack: contextlib.ExitStack
             ) -> tuple[socket.socket, dns.message.Message]:
    """Send one UDP query without waiting; the socket to read its reply from, and the query."""
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.settimeout(5)
    q = dns.message.make_query(qname, "A", use_edns=False)
    q.id = qid
    sock.sendto(q.to_wire(), (LOCAL, srv.port))
    return sock, q


def test_concurrent_identical_questions_share_one_upstream_query(server, fake_upstream):
    fake = fake_upstream(delay=0.3)
    srv = server(forwarder_yaml(fake.port))
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        sent = [send_raw(srv, "WWW.example.test." if i % 2 else "www.example.TEST.",
                         0x1000 + i, stack) for i in range(20)]
        assert time.monotonic() - started < 0.3, "queries not all sent before the reply"
        replies = [dns.message.from_wire(sock.recv(4096)) for sock, _ in sent]
    assert fake.queries == ["www.example.test."]
    for (_, query), reply in zip(sent, replies, strict=True):
        assert reply.id == query.id
        assert reply.question[0].name.to_text() == query.question[0].name.to_text()
        assert addresses(reply) == [FAKE_ADDRESS]


def test_questions_beyond_max_inflight_get_servfail_at_once(server, fake_upstream):
    fake = fake_upstream(delay=1.0)
    srv = server(forwarder_yaml(fake.port, max_inflight=1))
    with contextlib.ExitStack() as stack:
        first = send_raw(srv, "a.example.test.", 1, stack)
        same = send_raw(srv, "a.example.test.", 2, stack)  # joins the first: not refused
        started = time.monotonic()
        other = ask(srv, "b.example.test.")
        assert time.monotonic() - started < 0.8  # not after the first's reply (1 s)
        assert other.rcode() == dns.rcode.SERVFAIL
        for sock, query in (first, same):
            reply = dns.message.from_wire(sock.recv(4096))
            assert reply.id == query.id and addresses(reply) == [FAKE_ADDRESS]
    assert addresses(ask(srv, "b.example.test.")) == [FAKE_ADDRESS]  # the slot is free again
    assert fake.queries == ["a.example.test.", "b.example.test."]


def test_forged_replies_are_ignored_and_the_real_one_relayed(server, fake_upstream):
    fake = fake_upstream(delay=0.3, forge=True)
    srv = server(forwarder_yaml(fake.port))
    reply = ask(srv, "www.example.test.")
    assert addresses(reply) == [FAKE_ADDRESS]
    assert addresses(ask(srv, "www.example.test.")) == [FAKE_ADDRESS]  # nor cached
    assert fake.queries == ["www.example.test."]


# --- conditional forwarding ----------------------------------------------------------------


def test_conditional_forwarding_picks_the_longest_matching_suffix(server, fake_upstream):
    default, corp, dev = (fake_upstream(f"192.0.2.{i}") for i in (10, 20, 30))
    srv = server(forwarder_yaml(default.port, zones=(
        f'{{corp.test: {{upstreams: ["{LOCAL}:{corp.port}"]}}, '
        f'dev.corp.test: {{upstreams: ["{LOCAL}:{dev.port}"]}}}}')))
    expected = {
        "www.dev.corp.test.": "192.0.2.30",
        "dev.corp.test.": "192.0.2.30",
        "WWW.Dev.Corp.Test.": "192.0.2.30",
        "www.devx.corp.test.": "192.0.2.20",
        "corp.test.": "192.0.2.20",
        "www.corp.test.": "192.0.2.20",
        "www.example.test.": "192.0.2.10",
        "corp.test.example.": "192.0.2.10",
    }
    for qname, address in expected.items():
        assert addresses(ask(srv, qname)) == [address], qname


# --- DNS over TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for dns.test, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    work = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (work / "ext.cnf").write_text(
        "subjectAltName=DNS:dns.test\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    for cmd in (
        ["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=edgedns test CA"],
        ["openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=dns.test"],
        ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"],
    ):
        subprocess.run(cmd, cwd=work, check=True, capture_output=True, timeout=60)
    return {name: work / f"{name}.pem" for name in ("ca", "server")} | {
        "key": work / "server.key"}


@pytest.fixture
def tls_upstream(certs, fake_upstream) -> FakeUpstream:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["server"], certs["key"])
    return fake_upstream(tls=context)


def test_dot_upstream_with_the_right_name_resolves(server, certs, tls_upstream):
    srv = server(forwarder_yaml(f"tls://{LOCAL}:{tls_upstream.port}@dns.test",
                                tls_ca=f'"{certs["ca"]}"'))
    assert addresses(ask(srv, "www.example.test.")) == [FAKE_ADDRESS]
    assert tls_upstream.queries == ["www.example.test."]


@pytest.mark.parametrize("name", ["other.test", "dns.test"], ids=["wrong-name", "no-ca"])
def test_dot_upstream_whose_certificate_does_not_verify_gives_servfail(
    server, certs, tls_upstream, name
):
    tls_ca = f'"{certs["ca"]}"' if name != "dns.test" else None
    extra = {"tls_ca": tls_ca} if tls_ca else {}
    srv = server(forwarder_yaml(f"tls://{LOCAL}:{tls_upstream.port}@{name}", timeout="1s",
                                **extra))
    assert ask(srv, "www.example.test.", timeout=5).rcode() == dns.rcode.SERVFAIL
    assert tls_upstream.queries == []
