"""Replies built on demand: nothing is packed before it is asked for, the cache of finished
replies stays within its byte bound whatever names clients ask, and a health change costs a
generation bump, after which dependent replies are rebuilt when next asked."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from edgedns import config as config_mod
from edgedns.authority.answers import Answers, PoolReply, Reply
from edgedns.authority.catalog import Catalog
from edgedns.dns import names
from edgedns.pools.health.checks import ProbeResult
from edgedns.pools.pool import PoolSet

CONFIG = """
zones:
  site.lan:
    records:
      www: {A: 192.0.2.1}
      "*.dep": {CNAME: web}
      "*.wild": {A: 192.0.2.9}
    pools:
      web:
        check: {type: tcp, port: 80, fall: 1, rise: 1}
        members: [192.0.2.10, 192.0.2.11]
      spread:
        policy: round_robin
        check: {type: none}
        members: [%s]
"""
SPREAD = ", ".join(f"198.18.0.{i}" for i in range(1, 101))
DOWN = ProbeResult(False, "connection refused")
UP = ProbeResult(True, "connected")


@pytest.fixture
def made(tmp_path: Path) -> tuple[Answers, PoolSet]:
    return make(tmp_path)


def make(tmp_path: Path, max_bytes: int = 32 << 20) -> tuple[Answers, PoolSet]:
    path = tmp_path / "edgedns.yaml"
    path.write_text(textwrap.dedent(CONFIG % SPREAD))
    cfg = config_mod.load(path)
    pools = PoolSet(cfg.pools)
    catalog = Catalog({zone.origin: zone for zone in cfg.zones})
    return Answers(catalog, pools, max_bytes), pools


def key(text: str) -> bytes:
    return names.to_wire(names.from_text(text))


def addresses(answers: Answers, text: str) -> list[str]:
    entry = answers.lookup(key(text), 1)
    packed = entry.pick(b"127.0.0.1") if isinstance(entry, PoolReply) else entry.packed
    reply = dns.message.from_wire(packed.full)
    return sorted(rr.address for rrset in reply.answer for rr in rrset if rrset.rdtype == 1)


def flip(pools: PoolSet, address: str, result: ProbeResult) -> None:
    target = next(t for t in pools.targets() if t.address == address)
    pools.record(target, result)


def test_nothing_is_packed_before_it_is_asked_for(made) -> None:
    answers, _ = made
    assert len(answers.cache) == 0
    assert addresses(answers, "www.site.lan.") == ["192.0.2.1"]
    assert len(answers.cache) == 1


def test_names_outside_every_zone_have_no_reply(made) -> None:
    answers, _ = made
    assert answers.lookup(key("www.elsewhere."), 1) is None
    assert len(answers.cache) == 0


def test_random_names_never_grow_the_cache_past_its_byte_bound(tmp_path) -> None:
    answers, _ = make(tmp_path, max_bytes=64 * 1024)
    rng = random.Random(8)
    for _ in range(5_000):
        for suffix in ("site.lan.", "wild.site.lan.", "dep.site.lan."):
            answers.lookup(key(f"x{rng.getrandbits(48):x}.{suffix}"), 1)
        assert answers.cache.bytes <= 64 * 1024
    assert 0 < len(answers.cache) < 1_000


def test_a_health_change_touches_no_dependent_reply_until_it_is_asked_again(made) -> None:
    answers, pools = made
    asked = [f"n{i}.dep.site.lan." for i in range(2_000)]
    before = {name: answers.lookup(key(name), 1) for name in asked}
    cached = len(answers.cache)
    flip(pools, "192.0.2.10", DOWN)
    # The flip packed nothing: the cache holds what it held...
    assert len(answers.cache) == cached
    assert all(not answers.is_current(entry) for entry in before.values())
    # ...and a reply is rebuilt, with the new addresses, the first time it is asked again.
    assert addresses(answers, asked[7]) == ["192.0.2.11"]
    assert answers.lookup(key(asked[7]), 1) is not before[asked[7]]


def test_names_synthesized_alike_share_one_reply(made) -> None:
    answers, _ = made
    first = answers.lookup(key("aaaa.wild.site.lan."), 1)
    assert answers.lookup(key("bbbb.wild.site.lan."), 1) is first  # same length: same bytes
    deeper = answers.lookup(key("b.cc.wild.site.lan."), 1)  # same length, the parent absent
    question = len(key("aaaa.wild.site.lan.")) + 4
    assert deeper.packed.full[question + 12:] == first.packed.full[question + 12:]
    assert answers.lookup(key("d.ee.wild.site.lan."), 1) is deeper
    assert answers.lookup(key("ccccc.wild.site.lan."), 1) is not first
    assert first.shared and deeper.shared and len(answers.cache) == 3
    assert first.siblings and not deeper.siblings  # what names under its parent get


def test_a_shared_reply_compresses_only_against_what_its_names_share(made) -> None:
    answers, _ = made
    entry = answers.lookup(key("ns1x.wild.site.lan."), 1)
    for other in ("abcd.wild.site.lan.", "a.bc.wild.site.lan."):
        question = names.to_wire(names.from_text(other))
        reply = entry.packed.full[:12] + question + entry.packed.full[12 + len(question):]
        parsed = dns.message.from_wire(reply)
        assert parsed.answer[0].name.to_text() == other
        assert [rr.address for rr in parsed.answer[0]] == ["192.0.2.9"]


def test_random_nxdomain_names_add_no_cache_entry_per_name(made) -> None:
    answers, _ = made
    rng = random.Random(3)
    for _ in range(2_000):
        entry = answers.lookup(key(f"{rng.getrandbits(40):010x}.site.lan."), 1)
        assert dns.message.from_wire(entry.packed.full).rcode() == dns.rcode.NXDOMAIN
    assert len(answers.cache) == 1


def test_a_wildcard_cname_into_a_pool_follows_health_both_ways(made) -> None:
    answers, pools = made
    assert addresses(answers, "a.dep.site.lan.") == ["192.0.2.10", "192.0.2.11"]
    flip(pools, "192.0.2.11", DOWN)
    assert addresses(answers, "a.dep.site.lan.") == ["192.0.2.10"]
    flip(pools, "192.0.2.11", UP)
    assert addresses(answers, "a.dep.site.lan.") == ["192.0.2.10", "192.0.2.11"]


def test_static_replies_do_not_depend_on_any_pool(made) -> None:
    answers, _ = made
    entry = answers.lookup(key("x.wild.site.lan."), 1)
    assert isinstance(entry, Reply) and entry.pool is None


def test_a_rotating_pool_packs_only_the_variants_picked(made) -> None:
    answers, _ = made
    entry = answers.lookup(key("spread.site.lan."), 1)
    assert isinstance(entry, PoolReply)
    assert len(entry.selection.variants) == 100
    seen = {addresses(answers, "spread.site.lan.")[0] for _ in range(3)}
    assert len(seen) == 3 and len(entry.variants) == 3


def test_an_all_down_servfail_pool_reply_follows_the_pool(tmp_path) -> None:
    path = tmp_path / "edgedns.yaml"
    path.write_text(textwrap.dedent("""
        zones:
          site.lan:
            pools:
              web:
                when_all_down: servfail
                check: {type: tcp, port: 80, fall: 1, rise: 1}
                members: [192.0.2.10]
    """))
    cfg = config_mod.load(path)
    pools = PoolSet(cfg.pools)
    answers = Answers(Catalog({z.origin: z for z in cfg.zones}), pools)
    flip(pools, "192.0.2.10", DOWN)
    entry = answers.lookup(key("web.site.lan."), 1)
    assert dns.message.from_wire(entry.packed.full).rcode() == dns.rcode.SERVFAIL
    flip(pools, "192.0.2.10", UP)
    assert addresses(answers, "web.site.lan.") == ["192.0.2.10"]
