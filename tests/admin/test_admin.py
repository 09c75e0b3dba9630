"""The admin endpoint over real HTTP: /health, /ready, /status, /metrics, errors, the bearer
token and the limits that keep a misbehaving client from hurting DNS. One behaviour per test.

Every wait is bounded: HTTP requests and sockets carry timeouts, polling loops have deadlines.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import dns.message
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgedns.admin import http as admin
from tests.conftest import RunningServer
from tests.support import EXAMPLE_ZONE as ZONE
from tests.support import wait_until

TOKEN = "s3cret-token-0123456789"

POOL = """\
    pools:
      app:
        check: {{type: tcp, port: {port}, interval: {interval}, timeout: {timeout}}}
        members: [{members}]
"""


def pool_config(port: int, members: str = "127.0.0.3", interval: str = "5s",
                timeout: str = "1s", head: str = "") -> str:
    return head + ZONE + POOL.format(port=port, members=members, interval=interval,
                                     timeout=timeout)


def url(srv: RunningServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.server.admin_port}{path}"


def get(srv: RunningServer, path: str, *, method: str = "GET", token: str | None = None,
        timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url(srv, path), method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def raw_request(srv: RunningServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", srv.server.admin_port), timeout=timeout) as s:
        s.sendall(data)
        return read_all(s)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    for _ in range(1000):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def samples(srv: RunningServer) -> dict[str, list]:
    """Metric family name → its samples, parsed as Prometheus does."""
    code, headers, body = get(srv, "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family.samples
            for family in text_string_to_metric_families(body.decode())}


def closed_port(host: str = "127.0.0.3") -> int:
    """A TCP port nothing listens on at `host`: a check there fails at once."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_port() -> Iterator[Callable[[str], int]]:
    """``live(host)`` → a TCP port where the kernel accepts connections: a check passes."""
    socks: list[socket.socket] = []

    def live(host: str) -> int:
        socks.append(socket.create_server((host, 0), backlog=64))
        return socks[-1].getsockname()[1]

    yield live
    for sock in socks:
        sock.close()


@pytest.fixture
def hanging_port() -> Iterator[Callable[[str], int]]:
    """``hanging(host)`` → a TCP port whose accept queue is full: connecting there hangs
    (the kernel drops the SYNs), so a check there takes until its timeout."""
    socks: list[socket.socket] = []

    def hanging(host: str) -> int:
        server = socket.socket()
        server.bind((host, 0))
        server.listen(0)
        port = server.getsockname()[1]
        filler = socket.create_connection((host, port), timeout=2)
        socks.extend([server, filler])
        return port

    yield hanging
    for sock in socks:
        sock.close()


# --- /health and /ready --------------------------------------------------------------------


def test_health_is_ok_while_running(edgedns_server):
    srv = edgedns_server(ZONE)
    code, headers, body = get(srv, "/health")
    assert (code, body) == (200, b"ok\n")
    assert headers["Connection"] == "close"


def test_ready_without_pools_at_once(edgedns_server):
    srv = edgedns_server(ZONE)
    assert get(srv, "/ready")[0] == 200


def test_ready_is_503_until_the_first_verdict(edgedns_server, hanging_port):
    port = hanging_port("127.0.0.3")
    srv = edgedns_server(pool_config(port, interval="5s", timeout="1500ms"))
    started = time.monotonic()
    code, _, body = get(srv, "/ready")
    assert time.monotonic() - started < 1.0, "too slow to see the probe still running"
    assert code == 503 and b"waiting" in body
    wait_until(lambda: get(srv, "/ready")[0] == 200, within=5.0)
    assert srv.server.pools.all_probed()


def test_ready_after_the_first_probe_of_a_closed_port(edgedns_server):
    srv = edgedns_server(pool_config(closed_port()))
    wait_until(lambda: get(srv, "/ready")[0] == 200, within=5.0)
    # Ready means a verdict, not a healthy one: the member is known to be down.
    member = json.loads(get(srv, "/status")[2])["pools"][0]["members"][0]
    assert member["up"] is False and member["probed"] is True


def test_ready_is_503_when_the_health_engine_stalls(edgedns_server):
    srv = edgedns_server(pool_config(closed_port(), interval="200ms", timeout="100ms"))
    wait_until(lambda: get(srv, "/ready")[0] == 200, within=5.0)
    # As if the scheduler hung: no probe result comes any more.
    asyncio.run_coroutine_threadsafe(
        srv.server.supervisor.stop("health-scheduler"), srv.loop).result(5)
    wait_until(lambda: get(srv, "/ready")[0] == 503, within=3.0)
    assert get(srv, "/ready")[2].startswith(b"health engine stalled: no probe result for ")
    families = samples(srv)
    assert families["edgedns_health_stalled"][0].value == 1
    engine = json.loads(get(srv, "/status")[2])["health_engine"]
    assert engine["stalled"] is True and engine["seconds_since_last_result"] >= 0.9


def test_metrics_count_background_failures_by_task(edgedns_server):
    srv = edgedns_server(pool_config(closed_port()))
    failures = {s.labels["task"]: s.value for s in samples(srv)["edgedns_background_failures"]}
    assert failures == {"probe": 0, "health-scheduler": 0, "config-watch": 0, "notify": 0}


# --- /status -------------------------------------------------------------------------------


def test_status_lists_zones_pools_members_and_the_last_reload(edgedns_server, live_port):
    port = live_port("127.0.0.2")
    with socket.socket() as other:  # the same port, closed on 127.0.0.3
        other.bind(("127.0.0.3", port))
    srv = edgedns_server(pool_config(port, members="127.0.0.2, 127.0.0.3"))
    wait_until(srv.server.pools.all_probed)
    code, headers, body = get(srv, "/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    snap = json.loads(body)
    assert snap["ready"] is True
    assert snap["listen"] == [f"127.0.0.1:{srv.port}"]
    assert [z["name"] for z in snap["zones"]] == ["example.lan."]
    assert snap["zones"][0]["records"] >= 3  # SOA, NS, A
    (pool,) = snap["pools"]
    assert (pool["name"], pool["healthy"]) == ("app.example.lan.", 1)
    up, down = pool["members"]
    assert (up["address"], up["up"], down["address"], down["up"]) == (
        "127.0.0.2", True, "127.0.0.3", False)
    assert up["check"] == f"tcp 127.0.0.2:{port}"
    assert up["reason"] and down["reason"]
    assert isinstance(up["rtt_ms"], float) and up["rtt_ms"] >= 0
    assert up["since"] and down["since"]  # ISO times
    assert (up["successes"], up["failures"]) == (1, 0)
    assert (down["successes"], down["failures"]) == (0, 1)
    assert snap["last_reload"] == {"ok": True, "at": None, "error": None, "successes": 0,
                                   "failures": 0}
    assert "upstreams" not in snap


def test_status_shows_upstreams_and_cache_when_forwarding(edgedns_server):
    srv = edgedns_server("forward: {upstreams: [127.0.0.1:9]}\n" + ZONE)
    snap = json.loads(get(srv, "/status")[2])
    assert snap["upstreams"][0]["upstream"].startswith("127.0.0.1")
    assert set(snap["cache"]) == {"entries", "hits", "misses"}


# --- /metrics ------------------------------------------------------------------------------


def test_metrics_count_queries_by_zone_type_rcode_and_transport(edgedns_server):
    srv = edgedns_server(ZONE)
    for _ in range(3):
        srv.query("www.example.lan")
    srv.query("www.example.lan", tcp=True)
    srv.query("nope.example.lan", "AAAA")
    srv.query("www.elsewhere.test")
    queries = {tuple(sorted(s.labels.items())): s.value
               for s in samples(srv)["edgedns_queries"] if s.name == "edgedns_queries_total"}

    def n(zone: str, qtype: str, rcode: str, transport: str) -> float | None:
        return queries.get((("rcode", rcode), ("transport", transport), ("type", qtype),
                            ("zone", zone)))

    assert n("example.lan.", "A", "NOERROR", "udp") == 3
    assert n("example.lan.", "A", "NOERROR", "tcp") == 1
    assert n("example.lan.", "AAAA", "NXDOMAIN", "udp") == 1
    assert n("", "A", "REFUSED", "udp") == 1


def test_metrics_count_unknown_query_types_as_other(edgedns_server):
    srv = edgedns_server(ZONE)
    for qtype in range(65000, 65100):  # 100 types nobody defined
        srv.query("www.example.lan", qtype)
    srv.query("www.example.lan", "A")
    types = {s.labels["type"]: s.value for s in samples(srv)["edgedns_queries"]
             if s.name == "edgedns_queries_total"}
    assert types == {"other": 100, "A": 1}


def test_metrics_have_the_latency_histogram(edgedns_server):
    srv = edgedns_server(ZONE)
    for _ in range(4):
        srv.query("www.example.lan")
    latency = samples(srv)["edgedns_query_duration_seconds"]
    udp = {s.labels.get("le"): s.value for s in latency
           if s.labels["transport"] == "udp" and s.name.endswith("_bucket")}
    assert udp["+Inf"] == 4
    counts = [udp[le] for le in sorted(udp, key=lambda le: float(le))]
    assert counts == sorted(counts)  # cumulative
    count = next(s.value for s in latency
                 if s.name.endswith("_count") and s.labels["transport"] == "udp")
    total = next(s.value for s in latency
                 if s.name.endswith("_sum") and s.labels["transport"] == "udp")
    assert count == 4 and 0 < total < 4


def test_metrics_have_member_health_and_probe_rtt(edgedns_server, live_port):
    port = live_port("127.0.0.2")
    with socket.socket() as other:
        other.bind(("127.0.0.3", port))
    srv = edgedns_server(pool_config(port, members="127.0.0.2, 127.0.0.3"))
    wait_until(srv.server.pools.all_probed)
    families = samples(srv)
    up = {s.labels["member"]: s.value for s in families["edgedns_member_up"]}
    assert up == {"127.0.0.2": 1, "127.0.0.3": 0}
    assert {s.labels["pool"] for s in families["edgedns_member_up"]} == {"app.example.lan."}
    rtt = {s.labels["member"]: s.value for s in families["edgedns_probe_rtt_seconds"]}
    assert 0 <= rtt["127.0.0.2"] < 1
    assert families["edgedns_pool_healthy_members"][0].value == 1
    assert families["edgedns_probes"][0].value >= 2
    assert families["edgedns_icmp_replies_unmatched"][0].value == 0


def test_metrics_have_reload_counters(edgedns_server):
    srv = edgedns_server(ZONE)
    families = samples(srv)
    reloads = {s.labels["result"]: s.value for s in families["edgedns_reloads"]}
    assert reloads == {"success": 0, "failure": 0}
    assert families["edgedns_last_reload_successful"][0].value == 1
    assert families["edgedns_uptime_seconds"][0].value >= 0


def test_metrics_have_tcp_connections_and_those_refused(edgedns_server):
    srv = edgedns_server(ZONE + "tcp: {max_per_client: 1}\n")
    with socket.create_connection((srv.host, srv.port), timeout=5):
        wait_until(lambda: samples(srv)["edgedns_tcp_connections"][0].value == 1)
        with socket.create_connection((srv.host, srv.port), timeout=5) as refused:
            refused.settimeout(5)
            assert refused.recv(1) == b""  # closed at once: the client's one is taken
        families = samples(srv)
    assert families["edgedns_tcp_refused"][0].value == 1
    assert families["edgedns_tcp_evicted"][0].value == 0


class Upstream:
    """A UDP DNS server on 127.0.0.1 answering every A question with 192.0.2.53, at once."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
                query = dns.message.from_wire(data)
            except (TimeoutError, OSError, dns.exception.DNSException):
                continue
            reply = dns.message.make_response(query)
            question = query.question[0]
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A",
                                                        "192.0.2.53"))
            self.sock.sendto(reply.to_wire(), addr)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


def test_metrics_have_upstream_and_cache_when_forwarding(edgedns_server, upstream):
    srv = edgedns_server(f"forward: {{upstreams: ['127.0.0.1:{upstream.port}']}}\n" + ZONE)
    for _ in range(3):
        reply = srv.query("host.elsewhere.test")
        assert reply.answer and reply.answer[0][0].address == "192.0.2.53"
    families = samples(srv)
    name = f"127.0.0.1:{upstream.port}"
    results = {s.labels["result"]: s.value for s in families["edgedns_upstream_queries"]
               if s.labels["upstream"] == name and s.name.endswith("_total")}
    assert sum(results.values()) >= 1 and all(v >= 0 for v in results.values())
    assert [(s.labels["upstream"], s.value) for s in families["edgedns_upstream_up"]] == [
        (name, 1)]
    assert families["edgedns_cache_misses"][0].value == 1
    assert families["edgedns_cache_hits"][0].value == 2
    assert families["edgedns_cache_entries"][0].value == 1
    assert "edgedns_cache_stale_served" in families
    forwarded = [s for s in families["edgedns_queries"]
                 if s.name == "edgedns_queries_total" and s.labels["zone"] == "forward"]
    assert sum(s.value for s in forwarded) == 3


def test_metrics_have_no_forwarding_families_without_forward(edgedns_server):
    families = samples(edgedns_server(ZONE))
    assert "edgedns_upstream_queries" not in families
    assert "edgedns_cache_hits" not in families


# --- errors --------------------------------------------------------------------------------


def test_unknown_path_is_404(edgedns_server):
    srv = edgedns_server(ZONE)
    assert get(srv, "/nope")[0] == 404


def test_query_string_is_ignored(edgedns_server):
    assert get(edgedns_server(ZONE), "/health?verbose=1")[0] == 200


def test_post_is_405(edgedns_server):
    srv = edgedns_server(ZONE)
    assert get(srv, "/status", method="POST")[0] == 405


def test_head_has_headers_and_no_body(edgedns_server):
    srv = edgedns_server(ZONE)
    reply = raw_request(srv, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: 3" in head
    assert body == b""


def test_bad_request_line_is_400(edgedns_server):
    srv = edgedns_server(ZONE)
    assert raw_request(srv, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("size", [admin.MAX_REQUEST_HEAD + 100, 100 * 1024])
def test_oversized_request_head_is_400(edgedns_server, size):
    srv = edgedns_server(ZONE)
    head = b"GET /health HTTP/1.1\r\nX-Filler: " + b"a" * size + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", srv.server.admin_port), timeout=5) as s:
        try:
            s.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 400 ")


# --- bearer token --------------------------------------------------------------------------

TOKEN_CONFIG = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n" + ZONE


def test_the_status_page_is_one_self_contained_document(edgedns_server):
    srv = edgedns_server(ZONE)
    code, headers, body = get(srv, "/")
    assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert "fetch(\"/status\"" in page
    # Sites have no internet: no asset may come from elsewhere.
    assert "http://" not in page and "https://" not in page and "src=" not in page


def test_the_status_page_shell_needs_no_token_but_its_data_does(edgedns_server):
    head = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n"
    srv = edgedns_server(ZONE + head)
    assert get(srv, "/")[0] == 200
    assert get(srv, "/status")[0] == 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/status", "/metrics", "/nope"])
def test_token_is_required_on_every_route(edgedns_server, path):
    srv = edgedns_server(TOKEN_CONFIG)
    code, headers, _ = get(srv, path)
    assert code == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_token_is_401(edgedns_server):
    srv = edgedns_server(TOKEN_CONFIG)
    assert get(srv, "/status", token="wrong-token-0123456789")[0] == 401
    assert get(srv, "/status", token=TOKEN + "x")[0] == 401
    assert get(srv, "/status", token=TOKEN[:-1])[0] == 401


def test_right_token_is_200(edgedns_server):
    srv = edgedns_server(TOKEN_CONFIG)
    code, _, body = get(srv, "/status", token=TOKEN)
    assert code == 200 and json.loads(body)["zones"]
    assert get(srv, "/metrics", token=TOKEN)[0] == 200


# --- limits --------------------------------------------------------------------------------


def test_slow_client_is_cut_after_the_read_timeout(edgedns_server, monkeypatch):
    monkeypatch.setattr(admin, "READ_TIMEOUT", 0.3)
    srv = edgedns_server(ZONE)
    with socket.create_connection(("127.0.0.1", srv.server.admin_port), timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\n")  # and never the blank line
        reply = read_all(s)
        took = time.monotonic() - started
    assert reply == b""
    assert 0.2 < took < 3.0
    assert get(srv, "/health")[0] == 200  # the endpoint itself is fine


def test_connections_above_the_cap_are_dropped(edgedns_server, monkeypatch):
    monkeypatch.setattr(admin, "MAX_CONNECTIONS", 3)
    srv = edgedns_server(ZONE)
    endpoint = srv.server._admin
    slow = [socket.create_connection(("127.0.0.1", srv.server.admin_port), timeout=5)
            for _ in range(3)]
    try:
        for s in slow:
            s.sendall(b"GET /health HTTP/1.1\r\n")
        wait_until(lambda: endpoint._open == 3)
        assert raw_request(srv, b"GET /health HTTP/1.1\r\n\r\n") == b""
        for s in slow:  # the slow ones still get their answer once they finish
            s.sendall(b"\r\n")
            assert read_all(s).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in slow:
            s.close()
    wait_until(lambda: endpoint._open == 0)
    assert get(srv, "/health")[0] == 200


def test_idle_clients_cannot_keep_status_out(edgedns_server, monkeypatch):
    monkeypatch.setattr(admin, "MAX_CONNECTIONS", 8)
    srv = edgedns_server(ZONE)
    idle = [socket.create_connection(("127.0.0.1", srv.server.admin_port), timeout=5)
            for _ in range(8)]
    try:
        wait_until(lambda: srv.server._admin._open == 8)
        time.sleep(admin.EVICT_AFTER + 0.1)
        for _ in range(3):  # each takes the slot of an idle one
            assert get(srv, "/status")[0] == 200
    finally:
        for s in idle:
            s.close()
