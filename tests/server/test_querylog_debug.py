"""The query log (``query_log: true``: one line per query on logger ``edgedns.querylog``) and
the ``_edgedns.<pool>`` TXT debug answers, which only trusted clients get."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from edgedns.server import handler as handler_mod
from tests.support import EXAMPLE_ZONE as ZONE
from tests.support import listener_on, wait_until

QUERYLOG = "edgedns.querylog"

POOL = """\
    pools:
      app:
        check: {{type: tcp, port: {port}, interval: 5s, timeout: 1s}}
        members: [127.0.0.2, 127.0.0.3]
"""

LINE = re.compile(r"client=(?P<client>\S+) name=(?P<name>\S+) type=(?P<type>\S+) "
                  r"rcode=(?P<rcode>\S+) transport=(?P<transport>\S+) "
                  r"latency_us=(?P<latency>\d+) source=(?P<source>\S+)")


def logged(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, str]]:
    """The query log lines, once `count` of them arrived (the server logs on its thread)."""
    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == QUERYLOG]

    wait_until(lambda: len(lines()) >= count, within=3.0)
    out = []
    for record in lines():
        match = LINE.fullmatch(record.getMessage())
        assert match, record.getMessage()
        assert record.levelno == logging.INFO
        out.append(match.groupdict())
    return out


@pytest.fixture
def check_port() -> Iterator[int]:
    """A TCP port with a listener on 127.0.0.2 only: 127.0.0.3 is down there."""
    with listener_on("127.0.0.2", ("127.0.0.3",)) as port:
        yield port


def test_query_log_has_one_line_per_query(edgedns_server, caplog):
    caplog.set_level(logging.INFO, logger=QUERYLOG)
    srv = edgedns_server("query_log: true\n" + ZONE)
    srv.query("www.example.lan")
    srv.query("nope.example.lan", "AAAA", tcp=True)
    srv.query("www.elsewhere.test", "MX")
    time.sleep(0.2)  # no extra lines trickle in
    first, second, third = logged(caplog, 3)
    assert first == {**first, "client": "127.0.0.1", "name": "www.example.lan.", "type": "A",
                     "rcode": "NOERROR", "transport": "udp", "source": "example.lan."}
    assert second == {**second, "name": "nope.example.lan.", "type": "AAAA",
                      "rcode": "NXDOMAIN", "transport": "tcp", "source": "example.lan."}
    assert third == {**third, "name": "www.elsewhere.test.", "type": "MX", "rcode": "REFUSED",
                     "transport": "udp", "source": "none"}
    assert all(0 < int(line["latency"]) < 1_000_000 for line in (first, second, third))


def test_query_log_is_off_by_default(edgedns_server, caplog):
    caplog.set_level(logging.DEBUG, logger=QUERYLOG)
    srv = edgedns_server(ZONE)
    for _ in range(3):
        assert srv.query("www.example.lan").rcode() == dns.rcode.NOERROR
    time.sleep(0.2)
    assert [r for r in caplog.records if r.name == QUERYLOG] == []


def test_query_log_names_a_debug_answer_as_its_source(edgedns_server, caplog, check_port):
    caplog.set_level(logging.INFO, logger=QUERYLOG)
    srv = edgedns_server("query_log: true\n" + ZONE + POOL.format(port=check_port))
    srv.query("_edgedns.app.example.lan", "TXT")
    (line,) = logged(caplog, 1)
    assert (line["type"], line["source"]) == ("TXT", "debug")


# --- _edgedns.<pool> -----------------------------------------------------------------------


def txt_strings(reply: dns.message.Message) -> list[str]:
    return sorted(b"".join(rd.strings).decode() for rrset in reply.answer
                  if rrset.rdtype == dns.rdatatype.TXT for rd in rrset)


def test_debug_txt_lists_each_members_state(edgedns_server, check_port):
    srv = edgedns_server(ZONE + POOL.format(port=check_port))
    wait_until(srv.server.pools.all_probed)
    reply = srv.query("_edgedns.app.example.lan", "TXT")
    assert reply.rcode() == dns.rcode.NOERROR
    up, down = txt_strings(reply)
    assert up.startswith(f"127.0.0.2 up check=tcp 127.0.0.2:{check_port} reason=")
    assert re.search(r" rtt=\d+\.\dms$", up)
    assert down.startswith(f"127.0.0.3 down check=tcp 127.0.0.3:{check_port} reason=")
    assert reply.answer[0].ttl == 0


def test_debug_txt_over_tcp(edgedns_server, check_port):
    srv = edgedns_server(ZONE + POOL.format(port=check_port))
    wait_until(srv.server.pools.all_probed)
    assert len(txt_strings(srv.query("_edgedns.app.example.lan", "TXT", tcp=True))) == 2


def test_debug_txt_for_an_unknown_pool_is_the_zones_answer(edgedns_server, check_port):
    srv = edgedns_server(ZONE + POOL.format(port=check_port))
    assert srv.query("_edgedns.nope.example.lan", "TXT").rcode() == dns.rcode.NXDOMAIN


def test_debug_txt_is_not_answered_outside_debug_allow(edgedns_server, check_port):
    srv = edgedns_server("debug_allow: [127.0.0.1/32]\n" + ZONE + POOL.format(port=check_port))
    wait_until(srv.server.pools.all_probed)
    q = dns.message.make_query("_edgedns.app.example.lan", "TXT", use_edns=False)
    reply = dns.query.udp(q, srv.host, port=srv.port, timeout=2, source="127.0.0.99")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert txt_strings(reply) == []
    # while the allowed client still gets the states
    assert len(txt_strings(srv.query("_edgedns.app.example.lan", "TXT"))) == 2


def test_debug_txt_is_for_loopback_clients_by_default(edgedns_server, check_port):
    srv = edgedns_server(ZONE + POOL.format(port=check_port))
    q = dns.message.make_query("_edgedns.app.example.lan", "TXT", use_edns=False)
    reply = dns.query.udp(q, srv.host, port=srv.port, timeout=2, source="127.0.0.99")
    assert len(txt_strings(reply)) == 2  # 127.0.0.0/8 is loopback
    assert srv.server.config.debug_allow == (ipaddress.ip_network("127.0.0.0/8"),
                                             ipaddress.ip_network("::1/128"))


def test_debug_txt_is_rate_limited(edgedns_server, check_port):
    srv = edgedns_server(ZONE + POOL.format(port=check_port))
    answered = sum(bool(txt_strings(srv.query("_edgedns.app.example.lan", "TXT")))
                   for _ in range(handler_mod.DEBUG_RATE * 3))
    # The burst is DEBUG_RATE; the rest of the burst of queries gets the zone's answer.
    assert handler_mod.DEBUG_RATE <= answered < handler_mod.DEBUG_RATE * 3


def test_debug_txt_is_built_once_per_health_generation(edgedns_server):
    srv = edgedns_server(ZONE + """\
    pools:
      app:
        check: {type: none}
        members: [192.0.2.10, 192.0.2.11]
""")
    assert len(txt_strings(srv.query("_edgedns.app.example.lan", "TXT"))) == 2
    built = dict(srv.server.handler._debug_replies)
    assert len(txt_strings(srv.query("_edgedns.app.example.lan", "TXT"))) == 2
    assert all(srv.server.handler._debug_replies[k] is v for k, v in built.items())
