"""The handler remembers finished replies by exact query bytes (as PowerDNS's packet cache
does), only for replies that depend on nothing else, and stops serving them once the pool
whose addresses they hold changes."""

from __future__ import annotations

import random
import socket
import time

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from edgedns import config as config_mod
from edgedns.pools.health.checks import ProbeResult
from edgedns.pools.pool import PoolSet
from edgedns.server import packets
from edgedns.server.lifecycle import build_handler

CONFIG = """
zones:
  site.lan:
    records:
      www: {A: 192.0.2.1}
    pools:
      web:
        check: {type: tcp, port: 80}
        members: [192.0.2.10, 192.0.2.11]
      spread:
        policy: round_robin
        check: {type: none}
        members: [192.0.2.20, 192.0.2.21]
"""


def make(tmp_path, text: str = CONFIG):
    path = tmp_path / "edgedns.yaml"
    path.write_text(text)
    cfg = config_mod.load(path)
    pools = PoolSet(cfg.pools)
    return build_handler(cfg, pools), pools


def ask(handler, name: str, qid: int = 1, client: str = "127.0.0.1") -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0)
    query.id = qid
    return dns.message.from_wire(handler.respond(query.to_wire(), False, client))


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
                  for rr in rrset)


def test_a_repeated_query_gets_the_same_reply_under_its_own_id(tmp_path) -> None:
    handler, _ = make(tmp_path)
    first, second = ask(handler, "www.site.lan", 1), ask(handler, "www.site.lan", 2)
    assert (first.id, second.id) == (1, 2)
    assert addresses(first) == addresses(second) == ["192.0.2.1"]
    exact, normal, _ = handler._packets[False]
    assert (len(exact), len(normal)) == (1, 1)


def test_a_health_change_forgets_remembered_pool_replies(tmp_path) -> None:
    handler, pools = make(tmp_path)
    assert addresses(ask(handler, "web.site.lan")) == ["192.0.2.10", "192.0.2.11"]
    target = next(t for t in pools.targets() if t.address == "192.0.2.10")
    pools.record(target, ProbeResult(False, "connection refused"))
    assert addresses(ask(handler, "web.site.lan")) == ["192.0.2.11"]


def test_replies_that_vary_per_query_are_never_remembered(tmp_path) -> None:
    handler, _ = make(tmp_path)
    seen = {addresses(ask(handler, "spread.site.lan", qid))[0] for qid in range(4)}
    assert seen == {"192.0.2.20", "192.0.2.21"}
    assert [len(cache) for cache in handler._packets[False]] == [0, 0, 0]


def test_the_cache_is_bounded_in_bytes_and_keeps_what_is_used(tmp_path) -> None:
    handler, _ = make(tmp_path, CONFIG + "packet_cache: {max_bytes: 12KiB}\n")
    cache = handler._packets[False][0]  # each transport and kind of key gets a sixth
    for i in range(200):
        ask(handler, f"n{i}.site.lan")
        ask(handler, "www.site.lan")  # asked again and again: never the one evicted
        assert cache.bytes <= 2 * 1024
    assert 0 < len(cache) < 200
    assert cache.get(make_key("www.site.lan")) is not None


def test_case_ids_and_cookies_hit_the_normalized_cache(tmp_path) -> None:
    handler, _ = make(tmp_path)
    exact, normal, _ = handler._packets[False]
    ask(handler, "www.site.lan")
    for qid, (name, cookie) in enumerate([("WWW.Site.LAN", b"1" * 8), ("wWw.sItE.lAn", b"2" * 8),
                                          ("www.site.lan", b"3" * 8)]):
        query = dns.message.make_query(name, "A", use_edns=0,
                                       options=[dns.edns.GenericOption(10, cookie)])
        query.id = 100 + qid
        query.flags &= ~dns.flags.RD
        reply = dns.message.from_wire(handler.respond(query.to_wire(), False, "127.0.0.1"))
        assert reply.id == 100 + qid
        assert reply.question[0].name.to_text() == name + "."  # the asker's case
        assert not reply.flags & dns.flags.RD  # the asker's RD
        assert addresses(reply) == ["192.0.2.1"]
    assert len(normal) == 1  # one question, whatever the case, ID, RD or cookie
    assert len(exact) == 1  # the first query only: answers found normalized add nothing


def test_cd_and_the_size_limit_are_part_of_the_normalized_key(tmp_path) -> None:
    handler, _ = make(tmp_path)
    _, normal, _ = handler._packets[False]
    for payload in (1232, 600, 1232):
        for cd in (False, True):
            query = dns.message.make_query("www.site.lan", "A", use_edns=0, payload=payload)
            if cd:
                query.flags |= dns.flags.CD
            reply = dns.message.from_wire(handler.respond(query.to_wire(), False, "127.0.0.1"))
            assert bool(reply.flags & dns.flags.CD) is cd
    assert len(normal) == 4


def make_key(name: str) -> bytes:
    query = dns.message.make_query(name, "A", use_edns=0)
    return query.to_wire()[2:]


def test_long_queries_are_not_remembered() -> None:
    cache = packets.PacketCache(1 << 20)
    cache.put(bytes(packets.MAX_QUERY + 1), (b"reply",))
    cache.put(bytes(packets.MAX_QUERY), (b"reply",))
    assert len(cache) == 1


def _send_from(source: str, srv, wire_query: bytes) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.sendto(wire_query, (srv.host, srv.port))
        return dns.message.from_wire(sock.recv(4096))


def test_remembered_forwarded_replies_still_obey_the_acl_and_the_ttl_clock(
    edgedns_server,
) -> None:
    upstream = edgedns_server("zones: {far.test: {records: {www: {A: 192.0.2.7, ttl: 60}}}}")
    forwarder = edgedns_server(f"""
    zones: {{site.lan: {{}}}}
    forward: {{upstreams: ["127.0.0.1:{upstream.port}"], allow: [127.0.0.1/32]}}
    """)
    query = dns.message.make_query("www.far.test", "A", use_edns=0).to_wire()
    first = _send_from("127.0.0.1", forwarder, query)
    again = _send_from("127.0.0.1", forwarder, query)
    assert addresses(first) == addresses(again) == ["192.0.2.7"]
    outsider = _send_from("127.0.0.99", forwarder, query)
    assert outsider.rcode() == dns.rcode.REFUSED
    time.sleep(2.1)
    later = _send_from("127.0.0.1", forwarder, query)
    assert later.answer[0].ttl <= first.answer[0].ttl - 2


SIBLINGS = """
zones:
  site.lan:
    records:
      www: {A: 192.0.2.1}
      a.deep: {A: 192.0.2.2}
      "*.wild": {A: 192.0.2.3}
      "*.into": {CNAME: web}
      sub: {NS: ns.sub}
      ns.sub: {A: 192.0.2.4}
    pools:
      web:
        check: {type: tcp, port: 80}
        members: [192.0.2.10, 192.0.2.11]
  kid.site.lan:
    records:
      www: {A: 192.0.2.5}
"""

SIBLING_QUESTIONS = [
    # (name, type): random names first, then names beside them that the zone holds
    ("qz1.site.lan", "A"), ("qz2.site.lan", "A"), ("QZ3.Site.LAN", "A"), ("qz4.site.lan", "TXT"),
    ("www.site.lan", "A"), ("WWW.site.lan", "A"), ("deep.site.lan", "A"), ("sub.site.lan", "A"),
    ("kid.site.lan", "A"), ("ns.sub.site.lan", "A"), ("x.sub.site.lan", "A"),
    ("y.sub.site.lan", "A"), ("r1.wild.site.lan", "A"), ("R2.WILD.site.lan", "A"),
    ("r3.wild.site.lan", "AAAA"), ("*.wild.site.lan", "A"), ("r4.into.site.lan", "A"),
    ("r5.into.site.lan", "A"), ("b.deep.site.lan", "A"), ("a.deep.site.lan", "A"),
    ("zz.web.site.lan", "TXT"), ("zy.web.site.lan", "TXT"), ("qz5.kid.site.lan", "A"),
    ("www.kid.site.lan", "A"),
]


def wire_query(name: str, rdtype: str, qid: int, **options) -> bytes:
    query = dns.message.make_query(name, rdtype, **options)
    query.id = qid
    return query.to_wire()


def test_random_names_under_one_parent_share_one_remembered_reply(tmp_path) -> None:
    handler, _ = make(tmp_path, SIBLINGS)
    for i in range(50):
        reply = dns.message.from_wire(handler.respond(
            wire_query(f"Rand{i}.site.lan", "A", i, use_edns=0), False, "127.0.0.1"))
        assert reply.id == i and reply.rcode() == dns.rcode.NXDOMAIN
        assert reply.question[0].name.to_text() == f"Rand{i}.site.lan."  # as asked
        assert reply.authority[0].rdtype == dns.rdatatype.SOA
    exact, normal, siblings = handler._packets[False]
    assert (len(exact), len(normal), len(siblings)) == (0, 0, 2)  # 5- and 6-letter labels


def test_random_parents_add_no_remembered_reply(tmp_path) -> None:
    handler, _ = make(tmp_path, SIBLINGS)
    for i in range(50):
        reply = dns.message.from_wire(handler.respond(
            wire_query(f"r{i}.p{i}.site.lan", "A", i, use_edns=0), False, "127.0.0.1"))
        assert reply.rcode() == dns.rcode.NXDOMAIN
    assert [len(cache) for cache in handler._packets[False]] == [0, 0, 0]


def test_sibling_replies_are_byte_for_byte_what_a_fresh_server_says(tmp_path) -> None:
    """Whatever was asked before, every reply equals a cold handler's: names the zone holds,
    empty non-terminals, delegations, child zones and wildcards are never answered from a
    random sibling's reply."""
    path = tmp_path / "edgedns.yaml"
    path.write_text(SIBLINGS)
    cfg = config_mod.load(path)
    warm = build_handler(cfg, PoolSet(cfg.pools))
    flavours = [{"use_edns": 0}, {"use_edns": 0, "payload": 512}, {"use_edns": False},
                {"use_edns": 0, "want_dnssec": True}]
    qid = 0
    for _ in range(2):
        for name, rdtype in SIBLING_QUESTIONS:
            for flavour in flavours:
                for tcp in (False, True):
                    qid += 1
                    query = wire_query(name, rdtype, qid, **flavour)
                    cold = build_handler(cfg, PoolSet(cfg.pools))
                    assert warm.respond(query, tcp, "127.0.0.1") == cold.respond(
                        query, tcp, "127.0.0.1"), (name, rdtype, flavour, tcp)
    assert all(len(transport[2]) > 0 for transport in warm._packets)


def test_a_sibling_reply_into_a_pool_follows_its_health(tmp_path) -> None:
    handler, pools = make(tmp_path, SIBLINGS)
    assert addresses(ask(handler, "r1.into.site.lan")) == ["192.0.2.10", "192.0.2.11"]
    assert addresses(ask(handler, "r2.into.site.lan")) == ["192.0.2.10", "192.0.2.11"]
    target = next(t for t in pools.targets() if t.address == "192.0.2.10")
    pools.record(target, ProbeResult(False, "connection refused"))
    assert addresses(ask(handler, "r3.into.site.lan")) == ["192.0.2.11"]


def test_sibling_replies_to_limited_clients_are_rate_limited_per_zone(tmp_path) -> None:
    handler, _ = make(tmp_path, SIBLINGS + "rate_limit: {responses_per_second: 5, slip: 0}\n")
    answered = sum(
        handler.respond(wire_query(f"r{i}.site.lan", "A", i, use_edns=0), False, "192.0.2.99")
        is not None for i in range(40))
    assert answered == 5  # one bucket for the zone's NXDOMAINs, random names or not


def test_the_debug_label_is_never_answered_as_a_sibling(tmp_path) -> None:
    handler, _ = make(tmp_path, SIBLINGS)
    for i in range(3):
        reply = handler.respond(wire_query(f"zz{i}.web.site.lan", "TXT", i), False, "127.0.0.1")
        assert dns.message.from_wire(reply).rcode() == dns.rcode.NXDOMAIN
    for name in ("_edgedns.web.site.lan", "_EDGEDNS.web.site.lan"):
        reply = dns.message.from_wire(handler.respond(wire_query(name, "TXT", 9), False,
                                                      "127.0.0.1"))
        assert [rr.to_text().split()[0] for rrset in reply.answer for rr in rrset] == [
            '"192.0.2.10', '"192.0.2.11']


def test_mangled_queries_get_what_a_fresh_server_says_after_siblings_are_remembered(
    tmp_path,
) -> None:
    """Sibling replies are found by bytes before anything is parsed: a query changed
    anywhere (cut short, lengths broken, records added) must still get a cold handler's
    reply, or none."""
    path = tmp_path / "edgedns.yaml"
    path.write_text(SIBLINGS)
    cfg = config_mod.load(path)
    warm = build_handler(cfg, PoolSet(cfg.pools))
    bases = [wire_query(name, "A", 7, use_edns=0) for name in
             ("ab.site.lan", "cd.site.lan", "xy.wild.site.lan", "zz.into.site.lan")]
    for base in bases:
        warm.respond(base, False, "127.0.0.1")
    rng = random.Random(8)
    for _ in range(3000):
        mangled = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            action = rng.randrange(3) if len(mangled) > 3 else 2
            if action == 0:
                mangled[rng.randrange(2, len(mangled))] = rng.randrange(256)
            elif action == 1:
                del mangled[rng.randrange(2, len(mangled)):]
            else:
                mangled[12:12] = bytes((rng.randrange(1, 70),))
        query = bytes(mangled)
        cold = build_handler(cfg, PoolSet(cfg.pools))
        assert warm.respond(query, False, "127.0.0.1") == cold.respond(
            query, False, "127.0.0.1"), query.hex()
