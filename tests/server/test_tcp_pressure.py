"""TCP under pressure (RFC 7766 §6.2): a client that sends and never reads holds a bounded
amount of the server's memory and is answered in full once it reads; one client address
cannot take every connection; idle timeouts shorten as the connection table fills."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import dns.flags
import dns.message
import pytest

from edgedns.server import listeners
from edgedns.server.listeners import TcpConnections

BIG_TXT = " ".join(f'"{chr(97 + i % 26) * 250}"' for i in range(32))  # ~8 KB of TXT
ZONE = f"""
zones:
  example.lan:
    records:
      big: {{TXT: '{BIG_TXT}'}}
      www: {{A: 192.0.2.1}}
"""
QUERIES = 2_000


def framed(name: str, rdtype: str, qid: int) -> bytes:
    query = dns.message.make_query(name, rdtype, use_edns=False)
    query.id = qid
    wire = query.to_wire()
    return struct.pack("!H", len(wire)) + wire


def connection_state(srv) -> list[tuple[int, int]]:
    """(reply bytes waiting to be written, query bytes buffered) per open connection."""
    async def read() -> list[tuple[int, int]]:
        return [(p.transport.get_write_buffer_size(), len(p.buffer))
                for p in srv.server.connections.open]

    return asyncio.run_coroutine_threadsafe(read(), srv.loop).result(5)


def read_replies(sock: socket.socket, count: int, within: float) -> int:
    deadline = time.monotonic() + within
    got, data = 0, b""
    while got < count and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + struct.unpack_from("!H", data)[0]:
            size = struct.unpack_from("!H", data)[0]
            dns.message.from_wire(data[2 : 2 + size])  # every reply is a whole message
            data = data[2 + size :]
            got += 1
    return got


def test_a_client_that_never_reads_holds_a_bounded_share_of_memory(edgedns_server) -> None:
    srv = edgedns_server(ZONE)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        sock.settimeout(5)
        sock.connect((srv.host, srv.port))
        sock.sendall(b"".join(framed("big.example.lan", "TXT", i) for i in range(QUERIES)))
        time.sleep(1.0)  # the server answers what it may, then waits for the client
        (queued, buffered), = connection_state(srv)
        # One reply may overshoot the queue bound; nothing like 2,000 x 8 KB (16 MB).
        assert queued <= listeners.REPLY_BYTES_QUEUED + 9_000
        assert buffered <= listeners.QUERY_BYTES_BUFFERED + 65_536
        # Once the client reads, every query is answered.
        assert read_replies(sock, QUERIES, within=30) == QUERIES


def test_one_client_address_cannot_take_every_connection(edgedns_server) -> None:
    srv = edgedns_server(ZONE + "tcp: {max_per_client: 2, max_connections: 10}\n")
    kept = [socket.create_connection((srv.host, srv.port), timeout=5) for _ in range(2)]
    try:
        for sock in kept:  # both answer
            sock.sendall(framed("www.example.lan", "A", 1))
            assert read_replies(sock, 1, within=5) == 1
        with socket.create_connection((srv.host, srv.port), timeout=5) as third:
            third.sendall(framed("www.example.lan", "A", 2))
            with pytest.raises((ConnectionResetError, AssertionError)):
                assert read_replies(third, 1, within=2) == 1
        # Another address is still served.
        with socket.socket() as other:
            other.bind(("127.0.0.2", 0))
            other.settimeout(5)
            other.connect((srv.host, srv.port))
            other.sendall(framed("www.example.lan", "A", 3))
            assert read_replies(other, 1, within=5) == 1
    finally:
        for sock in kept:
            sock.close()


def test_idle_timeout_shortens_as_the_table_fills() -> None:
    connections = TcpConnections(lambda *a: None, idle_timeout=10.0, max_connections=100,
                                 max_per_client=100)
    timeouts = []
    for used in (0, 50, 75, 100):
        connections.open = set(range(used))  # only the count matters here
        timeouts.append(connections.current_idle_timeout())
    assert timeouts == [10.0, 10.0, pytest.approx(5.5), 1.0]


def test_a_short_idle_timeout_is_never_lengthened() -> None:
    connections = TcpConnections(lambda *a: None, idle_timeout=0.3, max_connections=4,
                                 max_per_client=4)
    connections.open = set(range(4))
    assert connections.current_idle_timeout() == 0.3


def test_with_the_table_full_of_slow_clients_a_new_client_is_still_answered(
    edgedns_server,
) -> None:
    srv = edgedns_server(ZONE + "tcp: {max_connections: 4, max_per_client: 4}\n")
    slow = []
    try:
        for i in range(4):  # slowloris: half a length prefix, and nothing more
            sock = socket.socket()
            sock.bind((f"127.0.1.{i + 1}", 0))
            sock.settimeout(5)
            sock.connect((srv.host, srv.port))
            sock.sendall(b"\x00")
            slow.append(sock)
        time.sleep(listeners.EVICT_IDLE + 0.2)
        with socket.create_connection((srv.host, srv.port), timeout=5) as fresh:
            fresh.sendall(framed("www.example.lan", "A", 11))
            assert read_replies(fresh, 1, within=1.0) == 1
        assert srv.server.connections.evicted >= 1
    finally:
        for sock in slow:
            sock.close()


def test_a_pool_of_5000_members_answers_addresses_over_tcp(edgedns_server) -> None:
    members = ", ".join(f"10.0.{i >> 8}.{i & 255}" for i in range(5_000))
    srv = edgedns_server(ZONE + f"""\
    pools:
      many: {{check: {{type: none}}, members: [{members}]}}
""")
    udp = srv.query("many.example.lan", "A")
    tcp = srv.query("many.example.lan", "A", tcp=True)
    assert udp.flags & dns.flags.TC  # a thousand addresses do not fit in 512 bytes
    assert sum(len(rrset) for rrset in tcp.answer) == 1_000
