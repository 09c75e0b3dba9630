"""Differential tests: edgedns and NSD serve the same zone files and must answer alike.

For every query in the corpus, both servers' replies must have the same rcode, header flags,
EDNS presence, payload size and flags, question, and answer/authority/additional sections
(compared as sets of RRsets: order within a section is free). NSD is Debian's `nsd`, started
here on an ephemeral loopback port; the tests skip when it is not installed.

Deliberate differences are not in the corpus: NOTIFY and other non-QUERY opcodes (edgedns
answers NOTIMP, NSD REFUSED) and QCLASS ANY (edgedns REFUSED, NSD answers as IN).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import pytest

from tests.conftest import RunningServer
from tests.support import DATA, daemon, free_port, nsd_server

ZONES = {"rules.lan.": "rules.zone", "child.rules.lan.": "child.zone"}

pytestmark = pytest.mark.skipif(
    daemon("nsd") is None, reason="reference server NSD not installed (apt-get install nsd)"
)


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """NSD serving tests/data's zones on 127.0.0.1; yields its port."""
    work = tmp_path_factory.mktemp("nsd")
    for name in ZONES.values():
        shutil.copy(DATA / name, work / name)
    with nsd_server(work, ZONES, free_port()) as port:
        yield port


@pytest.fixture(scope="module")
def edgedns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    from edgedns import config as config_mod

    work = tmp_path_factory.mktemp("edgedns")
    for name in ZONES.values():
        shutil.copy(DATA / name, work / name)
    zones = "".join(f"  {apex}: {{file: {f}}}\n" for apex, f in ZONES.items())
    path = work / "edgedns.yaml"
    path.write_text("zones:\n" + zones)
    server = RunningServer(config_mod.load(path, ("127.0.0.1:0",)))
    yield server
    server.stop()


QUESTIONS = [
    # positive answers: AA, zone NS in authority, addresses in additional
    ("host.rules.lan.", "A"), ("host.rules.lan.", "AAAA"), ("host.rules.lan.", "TXT"),
    ("host.rules.lan.", "CAA"), ("rules.lan.", "MX"), ("rules.lan.", "NS"), ("rules.lan.", "SOA"),
    ("rules.lan.", "TXT"), ("ptr.rules.lan.", "PTR"), ("srv.rules.lan.", "SRV"),
    ("_mqtt._tcp.rules.lan.", "SRV"), ("ns1.rules.lan.", "A"),
    # negative answers: NXDOMAIN vs NODATA, SOA TTL = min(TTL, minimum)
    ("nope.rules.lan.", "A"), ("host.rules.lan.", "MX"), ("rules.lan.", "DNSKEY"),
    ("deep.nope.rules.lan.", "AAAA"), ("host.rules.lan.", 0), ("host.rules.lan.", "MAILA"),
    # empty non-terminals
    ("ent.rules.lan.", "A"), ("c.ent.rules.lan.", "TXT"), ("zz.c.ent.rules.lan.", "A"),
    # CNAME chains inside and across our zones, out of them, dangling, looping
    ("alias.rules.lan.", "A"), ("alias.rules.lan.", "CNAME"), ("chain1.rules.lan.", "A"),
    ("chain1.rules.lan.", "AAAA"), ("chain1.rules.lan.", "CNAME"), ("dangling.rules.lan.", "A"),
    ("outside.rules.lan.", "A"), ("tochild.rules.lan.", "A"), ("loop1.rules.lan.", "A"),
    ("back.child.rules.lan.", "A"), ("alias.rules.lan.", "MX"),
    # wildcards (RFC 4592): synthesis, NODATA, exact names win, ENTs block, wildcard CNAME
    ("foo.wild.rules.lan.", "A"), ("foo.wild.rules.lan.", "TXT"), ("foo.wild.rules.lan.", "MX"),
    ("a.b.wild.rules.lan.", "A"), ("sub.wild.rules.lan.", "A"), ("sub.wild.rules.lan.", "TXT"),
    ("x.sub.wild.rules.lan.", "A"), ("*.wild.rules.lan.", "A"), ("foo.cwild.rules.lan.", "A"),
    ("foo.cwild.rules.lan.", "CNAME"), ("foo.blocked.rules.lan.", "A"),
    ("y.blocked.rules.lan.", "A"), ("z.y.blocked.rules.lan.", "A"),
    # delegations: referral with glue, AA clear; DS answered by the parent
    ("deleg.rules.lan.", "A"), ("deleg.rules.lan.", "NS"), ("deleg.rules.lan.", "DS"),
    ("www.deleg.rules.lan.", "A"), ("ns.deleg.rules.lan.", "A"),
    # a child zone we also serve answers from its own data
    ("child.rules.lan.", "NS"), ("child.rules.lan.", "SOA"), ("www.child.rules.lan.", "A"),
    ("nx.child.rules.lan.", "A"),
    # RFC 8482 ANY: one RRset
    ("rules.lan.", "ANY"), ("host.rules.lan.", "ANY"), ("alias.rules.lan.", "ANY"),
    ("nope.rules.lan.", "ANY"), ("ent.rules.lan.", "ANY"),
    # not ours, not IN, not offered
    ("example.com.", "A"), ("lan.", "SOA"), ("rules.lan.", "AXFR"), ("rules.lan.", "IXFR"),
    # large answers: truncation depends on transport and EDNS size
    ("big.rules.lan.", "TXT"),
]

VARIANTS = {
    "udp": {"use_edns": False},
    "udp-edns": {"use_edns": 0},
    "udp-do": {"use_edns": 0, "want_dnssec": True},
    "udp-edns600": {"use_edns": 0, "payload": 600},
    "tcp": {"use_edns": 0, "tcp": True},
}


def _fingerprint(reply: dns.message.Message) -> tuple:
    sections = tuple(
        sorted(rrset.to_text() for rrset in section)
        for section in (reply.answer, reply.authority, reply.additional)
    )
    return (
        dns.rcode.to_text(reply.rcode()),
        dns.flags.to_text(reply.flags),
        reply.edns,
        reply.payload if reply.edns >= 0 else None,
        dns.flags.edns_to_text(reply.ednsflags),
        [q.to_text() for q in reply.question],
        sections,
    )


def _ask(port: int, qname: str, rdtype, variant: dict) -> dns.message.Message:
    options = dict(variant)
    tcp = options.pop("tcp", False)
    query = dns.message.make_query(qname, rdtype, **options)
    query.flags &= ~dns.flags.RD
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=port, timeout=3)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("qname", "rdtype"), QUESTIONS, ids=lambda v: str(v))
def test_edgedns_answers_like_nsd(nsd: int, edgedns: RunningServer, qname, rdtype, variant):
    expected = _fingerprint(_ask(nsd, qname, rdtype, VARIANTS[variant]))
    actual = _fingerprint(_ask(edgedns.port, qname, rdtype, VARIANTS[variant]))
    assert actual == expected


@pytest.mark.parametrize("qname", ["HoSt.RuLeS.LaN.", "FOO.wild.rules.lan.", "Alias.Rules.Lan."])
def test_mixed_case_question_is_echoed_like_nsd(nsd: int, edgedns: RunningServer, qname: str):
    expected = _ask(nsd, qname, "A", VARIANTS["udp-edns"])
    actual = _ask(edgedns.port, qname, "A", VARIANTS["udp-edns"])
    assert actual.question[0].name.to_text() == qname
    assert _fingerprint(actual) == _fingerprint(expected)


SAME_LENGTH = ["abcdef", "ab.cde", "a.b.cd", "A.bC.D"]
"""Labels of one wire length (7 octets) but different shapes and case: names edgedns answers
from one shared reply per anchor must each still get NSD's answer."""
SHAPES = ["wild.rules.lan.", "cwild.rules.lan.", "rules.lan.", "nope.rules.lan.",
          "deleg.rules.lan.", "blocked.rules.lan.", "child.rules.lan.", "sub.wild.rules.lan."]


@pytest.mark.parametrize("rdtype", ["A", "TXT", "MX"])
@pytest.mark.parametrize("suffix", SHAPES)
def test_names_sharing_a_reply_each_get_nsds_answer(
    nsd: int, edgedns: RunningServer, suffix: str, rdtype: str
):
    for prefix in SAME_LENGTH:
        qname = f"{prefix}.{suffix}"
        expected = _fingerprint(_ask(nsd, qname, rdtype, VARIANTS["udp-edns"]))
        actual = _fingerprint(_ask(edgedns.port, qname, rdtype, VARIANTS["udp-edns"]))
        assert actual == expected, qname


@pytest.mark.parametrize("order", [0, 1])
def test_a_shared_reply_never_points_into_another_names_labels(
    nsd: int, edgedns: RunningServer, order: int
):
    # NXDOMAIN under ns1 and directly under the apex share one reply (same length, same
    # zone). Packed for the first, "ns1.rules.lan." in the SOA could point at the first's
    # own "ns1" label, which the second name does not have at that offset.
    names = ["abc.ns1.rules.lan.", "abcdefg.rules.lan.", "a.b.ns1.rules.lan."]
    for qname in names[order:] + names[:order]:
        for rdtype in ("A", "SOA"):
            expected = _fingerprint(_ask(nsd, qname, rdtype, VARIANTS["udp-edns"]))
            actual = _fingerprint(_ask(edgedns.port, qname, rdtype, VARIANTS["udp-edns"]))
            assert actual == expected, qname
