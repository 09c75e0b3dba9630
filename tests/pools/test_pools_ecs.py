"""Policy hash keys on the EDNS Client Subnet when a query carries one (RFC 7871)."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.query

CONFIG = """
zones:
  site.lan:
    pools:
      sticky:
        policy: hash
        check: {type: none}
        members: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5]
"""


def ask(srv, subnet: str | None) -> tuple[str, dns.message.Message]:
    options = [dns.edns.ECSOption(subnet, 24)] if subnet else []
    query = dns.message.make_query("sticky.site.lan.", "A", use_edns=0, options=options)
    reply = dns.query.udp(query, srv.host, port=srv.port, timeout=2)
    return reply.answer[0][0].address, reply


def test_one_subnet_always_gets_the_same_member(edgedns_server) -> None:
    srv = edgedns_server(CONFIG)
    picks = {ask(srv, "198.51.100.0")[0] for _ in range(20)}
    assert len(picks) == 1


def test_different_subnets_spread_over_the_members(edgedns_server) -> None:
    srv = edgedns_server(CONFIG)
    picks = {ask(srv, f"10.{i}.{i * 7 % 256}.0")[0] for i in range(60)}
    assert len(picks) >= 4


def test_the_subnet_is_echoed_with_scope_equal_to_its_source_prefix(edgedns_server) -> None:
    srv = edgedns_server(CONFIG)
    _, reply = ask(srv, "203.0.113.0")
    (ecs,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    assert (ecs.address, ecs.srclen, ecs.scopelen) == ("203.0.113.0", 24, 24)


def test_without_ecs_the_client_address_decides_and_no_ecs_is_echoed(edgedns_server) -> None:
    srv = edgedns_server(CONFIG)
    picks = set()
    for _ in range(10):
        address, reply = ask(srv, None)
        picks.add(address)
        assert not [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    assert len(picks) == 1
