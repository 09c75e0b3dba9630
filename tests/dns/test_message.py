"""Packing replies: the bytes `pack_reply` writes read back, with dnspython, as the records
given; names are compressed where RFC 3597 allows; the reduced and stub forms are what a
client may be sent when the full reply does not fit."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest

from edgedns.dns import names
from edgedns.dns.message import pack_reply

WWW = names.from_text("www.site.lan.")
APEX = names.from_text("site.lan.")
NS1 = names.from_text("ns1.site.lan.")
OTHER = names.from_text("srv.other.lan.")
A, NS, CNAME, MX, SRV, TXT = 1, 2, 5, 15, 33, 16


def a(*octets: int) -> tuple[bytes]:
    return (bytes(octets),)


def read(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire)


def test_a_positive_reply_reads_back_as_the_records_given() -> None:
    packed = pack_reply(WWW, A, answer=[(WWW, A, 300, (a(192, 0, 2, 1), a(192, 0, 2, 2)))],
                        authority=[(APEX, NS, 300, ((NS1,),))],
                        additional=[(NS1, A, 300, (a(192, 0, 2, 53),))])
    reply = read(packed.full)
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RD
    assert reply.question[0].to_text() == "www.site.lan. IN A"
    assert sorted(rr.address for rr in reply.answer[0]) == ["192.0.2.1", "192.0.2.2"]
    assert reply.answer[0].ttl == 300
    assert reply.authority[0][0].target.to_text() == "ns1.site.lan."
    assert reply.additional[0][0].address == "192.0.2.53"


def test_owner_names_are_compressed_against_the_question() -> None:
    packed = pack_reply(WWW, A, answer=[(WWW, A, 300, (a(192, 0, 2, 1),))],
                        authority=[], additional=[])
    question_end = 12 + len(names.to_wire(WWW)) + 4
    assert packed.full[question_end:question_end + 2] == b"\xc0\x0c"


def test_names_in_ns_mx_and_cname_data_are_compressed() -> None:
    mx = pack_reply(APEX, MX, answer=[(APEX, MX, 300, ((b"\x00\x0a", NS1),))],
                    authority=[], additional=[])
    # ns1.site.lan. inside the MX is 'ns1' plus a pointer to site.lan. in the question.
    assert b"\x03ns1\xc0\x0c" in mx.full
    assert read(mx.full).answer[0][0].exchange.to_text() == "ns1.site.lan."


def test_names_in_srv_data_are_written_whole() -> None:
    packed = pack_reply(WWW, SRV, answer=[(WWW, SRV, 60, ((b"\x00\x01\x00\x05\x07\x5b", APEX),))],
                        authority=[], additional=[])
    assert names.to_wire(APEX) in packed.full[12 + len(names.to_wire(WWW)) + 4:]
    assert read(packed.full).answer[0][0].target.to_text() == "site.lan."


def test_a_negative_reply_carries_its_rcode_and_authority() -> None:
    soa = (NS1, names.from_text("hostmaster.site.lan."), bytes(20))
    packed = pack_reply(WWW, A, rcode=3, answer=[], authority=[(APEX, 6, 30, (soa,))],
                        additional=[])
    reply = read(packed.full)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0][0].mname.to_text() == "ns1.site.lan."
    assert packed.reduced is packed.full  # a negative answer's SOA is never optional


def test_the_reduced_form_drops_optional_authority_and_additional() -> None:
    packed = pack_reply(WWW, A, answer=[(WWW, A, 300, (a(192, 0, 2, 1),))],
                        authority=[(APEX, NS, 300, ((NS1,),))],
                        additional=[(NS1, A, 300, (a(192, 0, 2, 53),))],
                        optional_authority=True)
    reduced = read(packed.reduced)
    assert [len(s) for s in (reduced.answer, reduced.authority, reduced.additional)] == [1, 0, 0]
    assert len(packed.reduced) < len(packed.full)


def test_the_reduced_form_of_a_referral_keeps_the_glue_it_needs() -> None:
    cut = names.from_text("child.site.lan.")
    inside, outside = names.from_text("ns.child.site.lan."), OTHER
    packed = pack_reply(WWW, A, authoritative=False,
                        answer=[], authority=[(cut, NS, 300, ((inside,), (outside,)))],
                        additional=[(inside, A, 300, (a(192, 0, 2, 7),)),
                                    (outside, A, 300, (a(192, 0, 2, 8),))],
                        required_additional=1)
    reduced = read(packed.reduced)
    assert len(reduced.authority[0]) == 2
    assert [rrset.name.to_text() for rrset in reduced.additional] == ["ns.child.site.lan."]
    assert not reduced.flags & dns.flags.AA


def test_the_stub_is_the_question_with_tc_set() -> None:
    packed = pack_reply(WWW, TXT, answer=[(WWW, TXT, 300, ((b"\x03abc",),))],
                        authority=[], additional=[])
    stub = read(packed.stub)
    assert stub.flags & dns.flags.TC
    assert stub.question[0].to_text() == "www.site.lan. IN TXT"
    assert not stub.answer and not stub.authority and not stub.additional


def test_compression_never_points_past_the_reach_of_a_pointer() -> None:
    # 300 TXT records of 255 bytes push names beyond offset 0x3FFF: later names are written
    # whole rather than pointed at from past the 14-bit limit.
    big = tuple((b"\xfe" + b"x" * 254,) for _ in range(300))
    names_after = [(names.from_text(f"n{i}.site.lan."), A, 60, (a(192, 0, 2, i),))
                   for i in range(3)]
    packed = pack_reply(WWW, TXT, answer=[(WWW, TXT, 60, big)], authority=[],
                        additional=names_after)
    reply = read(packed.full)
    assert len(packed.full) > 0x4000
    assert [r.name.to_text() for r in reply.additional] == [f"n{i}.site.lan." for i in range(3)]


def test_optional_authority_beside_required_glue_is_refused() -> None:
    with pytest.raises(ValueError):
        pack_reply(WWW, A, answer=[], authority=[(APEX, NS, 300, ((NS1,),))],
                   additional=[(NS1, A, 300, (a(192, 0, 2, 53),))],
                   optional_authority=True, required_additional=1)
