"""Hostile and odd input: the handler never fails on any bytes, the listeners survive garbage
and stalled streams, and TCP follows RFC 7766 (pipelining, partial writes, idle timeout,
connection cap).

Every socket has a timeout and every loop a bound, so a server bug fails a test rather than
hanging the run.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedns import config
from edgedns.dns import wire
from edgedns.server.handler import QueryHandler
from edgedns.server.lifecycle import build_handler

TIMEOUT = 2.0
PROMPT = 1.0
"""How long a query to a healthy server may take here; loopback answers take microseconds."""

ZONES = f"""
zones:
  example.test:
    records:
      www: {{A: 192.0.2.1, AAAA: "2001:db8::1", TXT: "hello"}}
      alias: {{CNAME: www}}
      "*.wild": {{A: 192.0.2.7}}
      mail: {{MX: "10 www"}}
      big: {{A: [{", ".join(f"10.0.0.{i}" for i in range(1, 101))}]}}
      sub: {{NS: ns.sub}}
      ns.sub: {{A: 192.0.2.53}}
"""
IDLE = 0.3
IDLE_CONFIG = ZONES + "tcp: {idle_timeout: 300ms, max_connections: 4}\n"
CAP_CONFIG = ZONES + "tcp: {idle_timeout: 10s, max_connections: 4}\n"


# --- helpers --------------------------------------------------------------------------------


def make_wire(name: str = "www.example.test", rdtype: str = "A", qid: int = 0x1234,
              **kwargs) -> bytes:
    kwargs.setdefault("use_edns", False)
    q = dns.message.make_query(name, rdtype, **kwargs)
    q.id = qid
    return q.to_wire()


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def recv_exact(sock: socket.socket, size: int) -> bytes:
    out = b""
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            raise EOFError(f"connection closed after {len(out)} of {size} bytes")
        out += chunk
    return out


def recv_frame(sock: socket.socket) -> bytes:
    return recv_exact(sock, int.from_bytes(recv_exact(sock, 2), "big"))


def connect(srv, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection((srv.host, srv.port), timeout=timeout)


def udp_send(srv, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, (srv.host, srv.port))


def assert_answers_promptly(srv) -> None:
    """A valid query over UDP and over TCP (a fresh connection) is answered within PROMPT."""
    for tcp in (False, True):
        start = time.monotonic()
        r = srv.query("www.example.test", "A", tcp=tcp, timeout=PROMPT)
        assert r.rcode() == dns.rcode.NOERROR
        assert time.monotonic() - start < PROMPT


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the server closes (FIN or RST) `sock` within `within` seconds; any data it
    sends before is read and discarded."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65535):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


# --- (a) the handler on arbitrary bytes -----------------------------------------------------


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> QueryHandler:
    path: Path = tmp_path_factory.mktemp("robust") / "edgedns.yaml"
    path.write_text(ZONES)
    return build_handler(config.load(path))


_NAMES = ["www.example.test", "WwW.ExAmPlE.TeSt", "alias.example.test", "x.wild.example.test",
          "example.test", "nope.example.test", "a.b.sub.example.test", "big.example.test",
          "example.com", ".", "mail.example.test"]
_TYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "CNAME", "ANY", "AXFR", "IXFR", "OPT", "TSIG",
          "DS", "RRSIG", 0, 65535]


@st.composite
def valid_queries(draw: st.DrawFn) -> bytes:
    """Well-formed queries as dnspython makes them, often with EDNS and options."""
    options = draw(st.lists(
        st.builds(dns.edns.GenericOption, st.integers(0, 65535), st.binary(max_size=40)),
        max_size=3,
    ))
    edns = draw(st.sampled_from([False, 0, 0, 1]))
    q = dns.message.make_query(
        draw(st.sampled_from(_NAMES)),
        draw(st.sampled_from(_TYPES)),
        rdclass=draw(st.sampled_from([1, 1, 1, 3, 254, 255])),
        use_edns=edns,
        payload=draw(st.sampled_from([0, 512, 1232, 1400, 4096, 65535])),
        want_dnssec=draw(st.booleans()) if edns is not False else False,
        options=options if edns is not False else None,
    )
    q.id = draw(st.integers(0, 65535))
    q.flags = draw(st.integers(0, 0xFFFF)) & ~0xF80F  # any flags, but QR=0, opcode 0, rcode 0
    return q.to_wire()


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """`base` messages with bit flips, truncations and splices of random bytes."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "overwrite"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=24))
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


messages = st.one_of(st.binary(max_size=600), valid_queries(), mutated(valid_queries()))


@settings(max_examples=2000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=messages, tcp=st.booleans())
def test_respond_never_fails_and_replies_parse_with_the_query_id(
    handler: QueryHandler, data: bytes, tcp: bool
) -> None:
    reply = handler.respond(data, tcp, "127.0.0.1")
    if len(data) < 12 or data[2] & 0x80:
        assert reply is None  # too short to be a query, or a response: never answered
        return
    assert isinstance(reply, bytes)
    assert reply[:2] == data[:2]
    assert reply[2] & 0x80
    message = dns.message.from_wire(reply)
    assert message.id == int.from_bytes(data[:2], "big")
    try:
        query = wire.parse_query(data)
    except wire.Reject:
        return
    assert len(reply) <= wire.limit(query, tcp)


@pytest.mark.parametrize("data", [
    make_wire(use_edns=0, options=[dns.edns.GenericOption(10, b"\x01" * 8)]),
    make_wire("big.example.test", use_edns=0, payload=4096, want_dnssec=True),
    make_wire("WwW.eXaMpLe.TeSt", "AAAA"),
])
def test_respond_replies_to_every_sample_valid_query(handler: QueryHandler, data: bytes) -> None:
    # Guards the property test above: its valid-query strategy does produce answerable input.
    reply = handler.respond(data, False, "127.0.0.1")
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR


# --- (b) garbage at the sockets -------------------------------------------------------------


@pytest.fixture
def srv(edgedns_server):
    return edgedns_server(ZONES)


@pytest.fixture
def capped(edgedns_server):
    return edgedns_server(CAP_CONFIG)


def test_garbage_datagrams_leave_the_server_answering(srv) -> None:
    rng = random.Random(7)
    for _ in range(200):
        udp_send(srv, rng.randbytes(rng.randrange(0, 600)))
    assert_answers_promptly(srv)


def test_one_byte_datagram_leaves_the_server_answering(srv) -> None:
    udp_send(srv, b"\x00")
    assert_answers_promptly(srv)


def test_4000_byte_random_datagram_leaves_the_server_answering(srv) -> None:
    udp_send(srv, random.Random(11).randbytes(4000))
    assert_answers_promptly(srv)


def test_oversized_datagram_leaves_the_server_answering(srv) -> None:
    udp_send(srv, make_wire() + bytes(9000))
    assert_answers_promptly(srv)


def test_half_a_length_prefix_then_stall_does_not_block_others(srv) -> None:
    with connect(srv) as stalled:
        stalled.sendall(b"\x00")
        assert_answers_promptly(srv)


def test_frame_announcing_65535_bytes_with_10_sent_does_not_block_others(srv) -> None:
    with connect(srv) as stalled:
        stalled.sendall(b"\xff\xff" + bytes(10))
        assert_answers_promptly(srv)


def test_zero_length_frame_is_skipped_and_the_next_query_answered(srv) -> None:
    with connect(srv) as sock:
        sock.sendall(frame(b"") + frame(make_wire(qid=77)))
        assert dns.message.from_wire(recv_frame(sock)).id == 77
    assert_answers_promptly(srv)


def test_random_bytes_over_tcp_leave_the_server_answering(srv) -> None:
    rng = random.Random(13)
    for _ in range(3):  # under the connection cap of 4, so the check below gets a slot
        with connect(srv) as sock:
            sock.sendall(rng.randbytes(3000))
    assert_answers_promptly(srv)


def test_connection_closed_mid_frame_leaves_the_server_answering(srv) -> None:
    data = frame(make_wire())
    for cut in (1, 2, 5, len(data) - 1):
        with connect(srv) as sock:
            sock.sendall(data[:cut])
    assert_answers_promptly(srv)


def test_connection_reset_mid_frame_leaves_the_server_answering(srv) -> None:
    sock = connect(srv)
    sock.sendall(frame(make_wire())[:7])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # linger 0: RST instead of FIN
    assert_answers_promptly(srv)


def test_garbage_frame_gets_no_reply_but_the_connection_stays_usable(srv) -> None:
    with connect(srv) as sock:
        sock.sendall(frame(b"\x01\x02\x03") + frame(make_wire(qid=99)))
        assert dns.message.from_wire(recv_frame(sock)).id == 99


# --- (c) TCP per RFC 7766 -------------------------------------------------------------------


def test_pipelined_queries_in_one_send_are_all_answered_in_order(srv) -> None:
    names = ["www", "alias", "x.wild", "nope", "mail", "big"] * 3
    queries = [make_wire(f"{n}.example.test", qid=1000 + i) for i, n in enumerate(names)]
    with connect(srv) as sock:
        sock.sendall(b"".join(frame(q) for q in queries))
        replies = [dns.message.from_wire(recv_frame(sock)) for _ in queries]
    assert [r.id for r in replies] == [1000 + i for i in range(len(names))]
    assert [str(r.question[0].name) for r in replies] == [f"{n}.example.test." for n in names]


def test_query_split_into_one_byte_writes_is_answered(srv) -> None:
    data = frame(make_wire(qid=4321))
    with connect(srv) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            time.sleep(0.002)  # give the server a chance to see each byte on its own
        reply = dns.message.from_wire(recv_frame(sock))
    assert reply.id == 4321
    assert reply.answer


def test_several_queries_on_one_connection_one_after_another(srv) -> None:
    with connect(srv) as sock:
        for qid in range(5):
            sock.sendall(frame(make_wire(qid=qid)))
            assert dns.message.from_wire(recv_frame(sock)).id == qid


def test_server_closes_after_the_client_half_closes_and_replies_are_sent(srv) -> None:
    with connect(srv) as sock:
        sock.sendall(frame(make_wire(qid=5)))
        sock.shutdown(socket.SHUT_WR)
        assert dns.message.from_wire(recv_frame(sock)).id == 5
        assert closed_by_peer(sock, within=TIMEOUT)


def test_idle_connection_is_closed_after_the_idle_timeout(edgedns_server) -> None:
    srv = edgedns_server(IDLE_CONFIG)
    with connect(srv) as sock:
        start = time.monotonic()
        assert closed_by_peer(sock, within=IDLE + 2.0)
        assert time.monotonic() - start >= IDLE * 0.8


def test_connection_is_kept_open_while_within_the_idle_timeout(edgedns_server) -> None:
    srv = edgedns_server(IDLE_CONFIG)
    with connect(srv) as sock:
        assert not closed_by_peer(sock, within=IDLE / 3)
        sock.sendall(frame(make_wire(qid=1)))
        assert dns.message.from_wire(recv_frame(sock)).id == 1


def test_idle_timeout_restarts_after_each_reply(edgedns_server) -> None:
    srv = edgedns_server(IDLE_CONFIG)
    with connect(srv) as sock:
        for qid in range(4):  # 4 × IDLE/2 apart: together longer than one timeout
            time.sleep(IDLE / 2)
            sock.sendall(frame(make_wire(qid=qid)))
            assert dns.message.from_wire(recv_frame(sock)).id == qid
        assert closed_by_peer(sock, within=IDLE + 2.0)


def test_trickling_partial_frames_does_not_keep_a_connection_open(edgedns_server) -> None:
    srv = edgedns_server(IDLE_CONFIG)
    data = frame(make_wire() + bytes(400))
    with connect(srv) as sock:
        start = time.monotonic()
        closed = False
        for i in range(len(data) - 1):  # never completes the frame
            try:
                sock.sendall(data[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_by_peer(sock, within=0.05):
                closed = True
                break
            if time.monotonic() - start > IDLE + 2.0:
                break
        assert closed


def test_client_that_never_reads_is_still_closed_after_the_idle_timeout(edgedns_server) -> None:
    srv = edgedns_server(ZONES + "tcp: {idle_timeout: 300ms, max_connections: 1}\n")
    hog = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.settimeout(TIMEOUT)
        hog.connect((srv.host, srv.port))
        # ~16 MB of replies that are never read: more than any socket buffers can absorb, so
        # the server is left holding unsent replies when the idle timeout strikes.
        burst = frame(make_wire("big.example.test", qid=1)) * 10_000
        try:
            hog.sendall(burst)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading us (or already dropped us): either way, wait
        time.sleep(IDLE + 0.5)
        # The one connection slot must have been freed for this fresh client.
        r = srv.query("www.example.test", "A", tcp=True, timeout=PROMPT)
        assert r.rcode() == dns.rcode.NOERROR
    finally:
        hog.close()


def open_answered(srv, qid: int) -> socket.socket:
    """A connection that has had one query answered: the server has counted it."""
    sock = connect(srv)
    sock.sendall(frame(make_wire(qid=qid)))
    assert dns.message.from_wire(recv_frame(sock)).id == qid
    return sock


def refused(srv) -> bool:
    """True when a new connection is closed by the server without answering a query."""
    with connect(srv) as sock:
        try:
            sock.sendall(frame(make_wire(qid=9)))
            recv_frame(sock)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return True
        return False


def test_connection_beyond_max_connections_is_closed(capped) -> None:
    held = [open_answered(capped, qid) for qid in range(4)]
    try:
        assert refused(capped)
        for sock in held:  # the ones admitted keep working
            sock.sendall(frame(make_wire(qid=50)))
            assert dns.message.from_wire(recv_frame(sock)).id == 50
    finally:
        for sock in held:
            sock.close()


def test_udp_is_still_answered_with_max_connections_reached(capped) -> None:
    held = [open_answered(capped, qid) for qid in range(4)]
    try:
        assert capped.query("www.example.test", "A", timeout=PROMPT).rcode() == dns.rcode.NOERROR
    finally:
        for sock in held:
            sock.close()


def test_closing_a_connection_frees_a_slot(capped) -> None:
    held = [open_answered(capped, qid) for qid in range(4)]
    try:
        assert refused(capped)
        held.pop().close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the server notices the close within a loop turn or two
            try:
                held.append(open_answered(capped, 7))
                break
            except (EOFError, ConnectionResetError, BrokenPipeError):
                assert time.monotonic() < deadline, "slot not freed"
                time.sleep(0.02)
        assert refused(capped)  # the newcomer took the freed slot: the cap holds again
    finally:
        for sock in held:
            sock.close()
