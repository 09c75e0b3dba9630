"""End to end: a real server's pool answers follow real TCP health checks on loopback."""

from __future__ import annotations

import logging
import socket
import threading

import dns.message
import dns.rdatatype
import pytest

from tests.support import wait_until

LIVE, DEAD = "127.0.0.2", "127.0.0.3"


def port_free_on(*addresses: str) -> int:
    """A TCP port nothing listens on at any of `addresses`."""
    for _ in range(50):
        socks = [socket.socket() for _ in addresses]
        try:
            socks[0].bind((addresses[0], 0))
            port = socks[0].getsockname()[1]
            for sock, address in zip(socks[1:], addresses[1:], strict=True):
                sock.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no port free on all of {addresses}")


class Listener:
    """A TCP listener accepting (and at once closing) connections in a thread."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.create_server((address, port))
        self.sock.settimeout(0.05)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listen():
    """``listen(address, port)`` → a Listener, closed at teardown."""
    opened: list[Listener] = []

    def listen(address: str, port: int) -> Listener:
        opened.append(Listener(address, port))
        return opened[-1]

    yield listen
    for listener in opened:
        listener.close()


def a_records(reply: dns.message.Message, owner: str) -> list[str]:
    return [rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
            and rrset.name.to_text() == owner for rd in rrset]


def config(port: int) -> str:
    return f"""\
        zones:
          site.lan:
            records:
              www: {{CNAME: web}}
            pools:
              web:
                ttl: 5
                check: {{type: tcp, port: {port}, interval: 200ms, timeout: 150ms, fall: 1,
                         rise: 3}}
                members: [{LIVE}, {DEAD}]
              rr:
                policy: round_robin
                check: {{type: none}}
                members: [127.0.0.11, 127.0.0.12, 127.0.0.13]
    """


def test_pool_answers_converge_to_the_live_member_and_take_back_a_revived_one(
    edgedns_server, listen, caplog,
) -> None:
    port = port_free_on(LIVE, DEAD)
    listen(LIVE, port)
    srv = edgedns_server(config(port))

    def answer() -> list[str]:
        return sorted(a_records(srv.query("web.site.lan."), "web.site.lan."))

    wait_until(lambda: answer() == [LIVE], within=8.0)
    assert srv.query("web.site.lan.").answer[0].ttl == 5

    caplog.set_level(logging.INFO, logger="edgedns.pools.pool")
    listen(DEAD, port)
    took = wait_until(lambda: answer() == [LIVE, DEAD], within=8.0)
    # rise: 3 successes, each confirming one `retry_interval` (100 ms) after the one before:
    # not the first one alone.
    assert took >= 0.2
    assert any(m.startswith(f"{DEAD} is UP: connected (tcp {DEAD}:{port}")
               for m in caplog.messages)


def test_a_cname_to_a_pool_answers_the_chain_with_the_pools_current_addresses(
    edgedns_server, listen,
) -> None:
    port = port_free_on(LIVE, DEAD)
    listen(LIVE, port)
    srv = edgedns_server(config(port))
    wait_until(lambda: a_records(srv.query("web.site.lan."), "web.site.lan.") == [LIVE], within=8.0)

    reply = srv.query("www.site.lan.")
    (cname,) = [r for r in reply.answer if r.rdtype == dns.rdatatype.CNAME]
    assert (cname.name.to_text(), [rd.target.to_text() for rd in cname]) == (
        "www.site.lan.", ["web.site.lan."])
    assert a_records(reply, "web.site.lan.") == [LIVE]


def test_a_round_robin_pool_rotates_its_answers(edgedns_server) -> None:
    srv = edgedns_server(config(port_free_on(LIVE, DEAD)))
    answers = [tuple(a_records(srv.query("rr.site.lan."), "rr.site.lan.")) for _ in range(6)]
    assert answers == [("127.0.0.11",), ("127.0.0.12",), ("127.0.0.13",)] * 2
