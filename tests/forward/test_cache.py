"""The forwarder's response cache, with a fake clock: how long answers live, what TTLs clients
see, negative caching (RFC 2308), serve-stale (RFC 8767) and the LRU bound.

Upstream replies are built with dnspython and run through `wire.parse_upstream_reply`, as the
forwarder does, so the cache sees exactly what it sees in production.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from edgedns.dns import wire
from edgedns.forward.cache import STALE_TTL, Cache, CacheSettings, Key

SENT_ID = b"\x12\x34"
SOA = "ns1.example.test. hostmaster.example.test. 1 3600 600 86400 {minimum}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def question(qname: str, rdtype: str = "A") -> bytes:
    wire_name = dns.name.from_text(qname).to_wire().lower()
    return wire_name + dns.rdatatype.from_text(rdtype).to_bytes(2, "big") + b"\x00\x01"


def key(qname: str, rdtype: str = "A", do: bool = False, cd: bool = False) -> Key:
    return dns.name.from_text(qname).to_wire().lower(), dns.rdatatype.from_text(rdtype), do, cd


def upstream_reply(
    qname: str = "www.example.test.",
    rdtype: str = "A",
    *,
    answer: list[tuple[str, int, str, str]] = (),
    authority: list[tuple[str, int, str, str]] = (),
    rcode: int = dns.rcode.NOERROR,
    truncated: bool = False,
) -> wire.UpstreamReply:
    """An upstream's reply (records as (owner, ttl, type, rdata)), parsed like the forwarder."""
    q = dns.message.make_query(qname, rdtype, use_edns=True)
    q.id = int.from_bytes(SENT_ID, "big")
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if truncated:
        r.flags |= dns.flags.TC
    for section, records in ((r.answer, answer), (r.authority, authority)):
        for owner, ttl, rtype, text in records:
            section.append(dns.rrset.from_text(owner, ttl, "IN", rtype, text))
    return wire.parse_upstream_reply(r.to_wire(), SENT_ID, question(qname, rdtype))


def served(body: bytes) -> dns.message.Message:
    return dns.message.from_wire(body)


def ttls(body: bytes) -> dict[str, int]:
    """Served TTL per RRset, keyed "section owner type"."""
    msg = served(body)
    out = {}
    for label, section in (("an", msg.answer), ("ns", msg.authority), ("ar", msg.additional)):
        for rrset in section:
            out[f"{label} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"] = rrset.ttl
    return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_cache(clock: FakeClock, **settings) -> Cache:
    return Cache(CacheSettings(**settings), clock)


POSITIVE = dict(
    answer=[("www.example.test.", 300, "A", "192.0.2.1")],
    authority=[("example.test.", 60, "NS", "ns1.example.test.")],
)


def test_positive_answer_lives_for_its_smallest_record_ttl(clock):
    cache = make_cache(clock)
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))
    clock.now += 59.9
    assert cache.get(key("www.example.test.")) is not None
    clock.now += 0.1
    assert cache.get(key("www.example.test.")) is None


def test_served_ttls_count_down_by_whole_seconds_of_age(clock):
    cache = make_cache(clock)
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))
    assert ttls(cache.get(key("www.example.test."))) == {
        "an www.example.test. A": 300, "ns example.test. NS": 60}
    clock.now += 10.7
    assert ttls(cache.get(key("www.example.test."))) == {
        "an www.example.test. A": 290, "ns example.test. NS": 50}


def test_served_answer_keeps_its_records_and_header(clock):
    cache = make_cache(clock)
    reply = upstream_reply(**POSITIVE)
    cache.put(key("www.example.test."), reply)
    clock.now += 5
    msg = served(cache.get(key("www.example.test.")))
    assert [rd.address for rd in msg.answer[0]] == ["192.0.2.1"]
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.RA and not msg.flags & dns.flags.RD


def test_min_ttl_keeps_a_short_lived_answer_longer_and_serves_its_ttls_raised(clock):
    cache = make_cache(clock, min_ttl=60)
    cache.put(key("www.example.test."),
              upstream_reply(answer=[("www.example.test.", 5, "A", "192.0.2.1")]))
    clock.now += 30
    body = cache.get(key("www.example.test."))
    assert body is not None
    assert ttls(body) == {"an www.example.test. A": 30}
    clock.now += 30
    assert cache.get(key("www.example.test.")) is None


def test_max_ttl_caps_the_ttls_served(clock):
    cache = make_cache(clock, max_ttl=60)
    cache.put(key("www.example.test."),
              upstream_reply(answer=[("www.example.test.", 86400, "A", "192.0.2.1")]))
    body = cache.get(key("www.example.test."))
    assert ttls(body) == {"an www.example.test. A": 60}


def test_a_ttl_with_the_top_bit_set_counts_as_zero(clock):
    cache = make_cache(clock, min_ttl=0, serve_stale=0)
    reply = upstream_reply(answer=[("www.example.test.", 2**31, "A", "192.0.2.1")])
    assert reply.cache_ttl == 0
    cache.put(key("www.example.test."), reply)
    assert cache.get(key("www.example.test.")) is None


def test_max_ttl_expires_a_long_lived_answer_sooner(clock):
    cache = make_cache(clock, max_ttl=60)
    cache.put(key("www.example.test."),
              upstream_reply(answer=[("www.example.test.", 86400, "A", "192.0.2.1")]))
    clock.now += 59
    assert cache.get(key("www.example.test.")) is not None
    clock.now += 1
    assert cache.get(key("www.example.test.")) is None


@pytest.mark.parametrize(
    ("soa_ttl", "minimum", "lifetime"),
    [(30, 600, 30), (3600, 60, 60)],
    ids=["soa-ttl-smaller", "soa-minimum-smaller"],
)
def test_nxdomain_is_cached_for_the_smaller_of_soa_ttl_and_soa_minimum(
    clock, soa_ttl, minimum, lifetime
):
    cache = make_cache(clock)
    cache.put(key("nope.example.test."), upstream_reply(
        "nope.example.test.", rcode=dns.rcode.NXDOMAIN,
        authority=[("example.test.", soa_ttl, "SOA", SOA.format(minimum=minimum))]))
    clock.now += lifetime - 1
    body = cache.get(key("nope.example.test."))
    assert body is not None and served(body).rcode() == dns.rcode.NXDOMAIN
    clock.now += 1
    assert cache.get(key("nope.example.test.")) is None


def test_nodata_is_cached_for_the_smaller_of_soa_ttl_and_soa_minimum(clock):
    cache = make_cache(clock)
    cache.put(key("www.example.test.", "AAAA"), upstream_reply(
        "www.example.test.", "AAAA",
        authority=[("example.test.", 3600, "SOA", SOA.format(minimum=120))]))
    clock.now += 119
    body = cache.get(key("www.example.test.", "AAAA"))
    assert body is not None
    msg = served(body)
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    clock.now += 1
    assert cache.get(key("www.example.test.", "AAAA")) is None


def test_negative_answer_without_soa_is_not_cached(clock):
    cache = make_cache(clock)
    cache.put(key("nope.example.test."),
              upstream_reply("nope.example.test.", rcode=dns.rcode.NXDOMAIN))
    cache.put(key("www.example.test."), upstream_reply(
        authority=[("example.test.", 3600, "NS", "ns1.example.test.")]))  # a referral
    assert len(cache) == 0
    assert cache.get(key("nope.example.test.")) is None


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR])
def test_error_replies_are_not_cached(clock, rcode):
    cache = make_cache(clock, min_ttl=60)
    cache.put(key("www.example.test."), upstream_reply(
        rcode=rcode, authority=[("example.test.", 3600, "SOA", SOA.format(minimum=60))]))
    assert len(cache) == 0


def test_truncated_reply_is_not_cached(clock):
    cache = make_cache(clock)
    cache.put(key("www.example.test."), upstream_reply(
        truncated=True, answer=[("www.example.test.", 300, "A", "192.0.2.1")]))
    assert len(cache) == 0


def test_zero_ttl_answer_is_not_cached_when_serve_stale_is_off(clock):
    cache = make_cache(clock, serve_stale=0)
    cache.put(key("www.example.test."),
              upstream_reply(answer=[("www.example.test.", 0, "A", "192.0.2.1")]))
    assert len(cache) == 0


def test_zero_ttl_answer_is_kept_only_for_serving_stale(clock):
    cache = make_cache(clock, serve_stale=60)
    cache.put(key("www.example.test."),
              upstream_reply(answer=[("www.example.test.", 0, "A", "192.0.2.1")]))
    assert cache.get(key("www.example.test.")) is None
    assert cache.get_stale(key("www.example.test.")) is not None


def test_expired_answer_is_served_stale_with_ttl_30_within_the_window(clock):
    cache = make_cache(clock, serve_stale=100)
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))  # lifetime 60
    clock.now += 61
    assert cache.get(key("www.example.test.")) is None
    body = cache.get_stale(key("www.example.test."))
    assert body is not None
    assert set(ttls(body).values()) == {STALE_TTL} == {30}
    assert [rd.address for rd in served(body).answer[0]] == ["192.0.2.1"]
    assert cache.stale_served == 1


def test_stale_answer_is_gone_once_the_window_has_passed(clock):
    cache = make_cache(clock, serve_stale=100)
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))  # lifetime 60
    clock.now += 160
    assert cache.get_stale(key("www.example.test.")) is not None
    clock.now += 0.5
    assert cache.get_stale(key("www.example.test.")) is None


def test_serve_stale_zero_serves_nothing_after_expiry(clock):
    cache = make_cache(clock, serve_stale=0)
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))
    clock.now += 61
    assert cache.get_stale(key("www.example.test.")) is None


def test_unknown_key_has_nothing_stale(clock):
    assert make_cache(clock).get_stale(key("www.example.test.")) is None


def test_size_bound_evicts_the_least_recently_used_entry(clock):
    cache = make_cache(clock, size=2)
    a, b, c = (f"{n}.example.test." for n in "abc")
    for name in (a, b):
        cache.put(key(name), upstream_reply(name, answer=[(name, 300, "A", "192.0.2.1")]))
    assert cache.get(key(a)) is not None  # a is now more recently used than b
    cache.put(key(c), upstream_reply(c, answer=[(c, 300, "A", "192.0.2.3")]))
    assert len(cache) == 2
    assert cache.get(key(b)) is None
    assert cache.get(key(a)) is not None and cache.get(key(c)) is not None


def test_byte_bound_evicts_the_least_recently_used_answers(clock):
    cache = make_cache(clock, max_bytes=20_000)
    big = f'"{"x" * 250}"'  # about 400 bytes an answer, charged with its overhead
    names = [f"n{i}.example.test." for i in range(100)]
    for name in names:
        cache.put(key(name, "TXT"), upstream_reply(name, "TXT", answer=[(name, 300, "TXT", big)]))
        assert cache.bytes <= 20_000
    assert 0 < len(cache) < 100
    assert cache.get(key(names[-1], "TXT")) is not None  # the newest stays
    assert cache.get(key(names[0], "TXT")) is None  # the oldest went first


def test_storing_a_key_again_replaces_it_without_evicting_others(clock):
    cache = make_cache(clock, size=2)
    name, other = "www.example.test.", "other.example.test."
    cache.put(key(other), upstream_reply(other, answer=[(other, 300, "A", "192.0.2.9")]))
    cache.put(key(name), upstream_reply(answer=[(name, 300, "A", "192.0.2.1")]))
    clock.now += 100
    cache.put(key(name), upstream_reply(answer=[(name, 300, "A", "192.0.2.2")]))
    assert len(cache) == 2
    assert ttls(cache.get(key(name))) == {"an www.example.test. A": 300}
    assert [rd.address for rd in served(cache.get(key(name))).answer[0]] == ["192.0.2.2"]
    assert cache.get(key(other)) is not None


def test_entries_are_distinct_per_type_do_bit_and_cd_bit(clock):
    cache = make_cache(clock)
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))
    assert cache.get(key("www.example.test.", "AAAA")) is None
    assert cache.get(key("www.example.test.", do=True)) is None
    assert cache.get(key("www.example.test.", cd=True)) is None
    assert cache.get(key("www.example.test.")) is not None


def test_hits_and_misses_are_counted(clock):
    cache = make_cache(clock)
    cache.get(key("www.example.test."))
    cache.put(key("www.example.test."), upstream_reply(**POSITIVE))
    cache.get(key("www.example.test."))
    cache.get(key("www.example.test."))
    assert (cache.hits, cache.misses) == (2, 1)
