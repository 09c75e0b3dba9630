"""The forwarder's side of `edgedns.dns.wire`: checking and splitting upstream replies, building
upstream queries, relaying an upstream answer to the client who asked."""

from __future__ import annotations

import io
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from edgedns.dns import wire

SENT_ID = b"\xbe\xef"
QNAME = "www.example.test."
QUESTION = dns.name.from_text(QNAME).to_wire() + b"\x00\x01\x00\x01"  # A IN


def reply(qname: str = QNAME, *, ident: bytes = SENT_ID, edns: bool = False,
          rdtype: str = "A", addresses: int = 1) -> dns.message.Message:
    q = dns.message.make_query(qname, rdtype, use_edns=edns)
    q.id = int.from_bytes(ident, "big")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(
        qname, 300, "IN", rdtype, *[f"192.0.2.{i}" for i in range(1, addresses + 1)]))
    return r


def parse(data: bytes) -> wire.UpstreamReply:
    return wire.parse_upstream_reply(data, SENT_ID, QUESTION)


def test_reply_to_our_query_is_accepted():
    parsed = parse(reply().to_wire())
    msg = dns.message.from_wire(parsed.body)
    assert [rd.address for rd in msg.answer[0]] == ["192.0.2.1"]
    assert parsed.rcode == dns.rcode.NOERROR and not parsed.truncated
    assert parsed.cache_ttl == 300


def test_reply_with_another_id_is_rejected_as_unmatched():
    with pytest.raises(wire.Unmatched):
        parse(reply(ident=b"\xbe\xee").to_wire())


def test_a_reply_to_our_question_that_does_not_decode_is_bad_but_not_unmatched():
    data = answer_with(b"\xc0\x22", 1, b"\xc0\x00\x02\x01")  # an owner pointing at itself
    with pytest.raises(wire.BadReply) as info:
        parse(data)
    assert not isinstance(info.value, wire.Unmatched)


def test_reply_to_another_name_is_rejected():
    with pytest.raises(wire.BadReply):
        parse(reply("wwx.example.test.").to_wire())


def test_reply_to_a_longer_name_is_rejected():
    with pytest.raises(wire.BadReply):
        parse(reply("www.example.test.evil.").to_wire())


def test_reply_to_another_type_is_rejected():
    data = bytearray(reply().to_wire())
    qtype_at = 12 + len(QUESTION) - 4
    data[qtype_at : qtype_at + 2] = b"\x00\x1c"  # AAAA
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_reply_to_another_class_is_rejected():
    data = bytearray(reply().to_wire())
    qclass_at = 12 + len(QUESTION) - 2
    data[qclass_at : qclass_at + 2] = b"\x00\x03"  # CH
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_reply_with_the_question_name_in_another_case_is_accepted():
    parsed = parse(reply("WwW.ExAmPlE.TeSt.").to_wire())
    assert parsed.rcode == dns.rcode.NOERROR


def test_a_query_is_not_a_reply():
    q = dns.message.make_query(QNAME, "A", use_edns=False)
    q.id = int.from_bytes(SENT_ID, "big")
    with pytest.raises(wire.BadReply):
        parse(q.to_wire())


def test_reply_without_a_question_is_rejected():
    data = bytearray(reply().to_wire())
    data[4:6] = b"\x00\x00"
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_message_shorter_than_its_question_is_rejected():
    with pytest.raises(wire.BadReply):
        parse(reply().to_wire()[: 12 + len(QUESTION) - 1])


@pytest.mark.parametrize("cut", [1, 5, 10, 14])
def test_reply_cut_inside_its_last_record_is_rejected(cut):
    with pytest.raises(wire.BadReply):
        parse(reply().to_wire()[:-cut])


def test_reply_announcing_more_records_than_it_holds_is_rejected():
    data = bytearray(reply().to_wire())
    data[6:8] = b"\x00\x02"
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_record_with_a_garbage_owner_name_is_rejected():
    data = bytearray(reply().to_wire())
    data[12 + len(QUESTION)] = 0x50  # a label length above 63 and not a pointer
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def answer_with(owner: bytes, rtype: int, rdata: bytes) -> bytes:
    """Our reply header and question, then one answer record with these raw parts."""
    head = struct.pack("!HHHHHH", 0xBEEF, 0x8180, 1, 1, 0, 0) + QUESTION
    return head + owner + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata


@pytest.mark.parametrize(("owner", "why"), [
    (b"\xc0\x0c", None),  # points back at the question name: fine
    (b"\x01a\xc0\x0c", None),
    (b"\xc0\x22", "points at itself"),  # offset 34 is the owner itself
    (b"\x01a\xc0\x22", "points at its own first label"),
    (b"\xc0\x40", "points forward, past itself"),
])
def test_owner_names_must_point_back(owner: bytes, why: str | None):
    data = answer_with(owner, 1, b"\xc0\x00\x02\x01")
    assert len(data[: 12 + len(QUESTION)]) == 34
    if why is None:
        assert parse(data).rcode == dns.rcode.NOERROR
    else:
        with pytest.raises(wire.BadReply, match="point"):
            parse(data)


def test_a_pointer_chain_that_loops_between_two_names_is_rejected():
    # The owner points at the question name, fine; the CNAME target's two pointers point
    # back and forth at each other.
    rdata_at = 34 + 2 + 10
    loop = struct.pack("!H", 0xC000 | (rdata_at + 2)) + struct.pack("!H", 0xC000 | rdata_at)
    with pytest.raises(wire.BadReply):
        parse(answer_with(b"\xc0\x0c", 5, loop))


@pytest.mark.parametrize(("rtype", "rdata"), [
    (5, b"\x03www\xc0\x40"),  # CNAME: a forward pointer
    (15, b"\x00\x0a\xc0\x40"),  # MX: the exchange after the preference
    (6, b"\xc0\x0c\xc0\x40" + bytes(20)),  # SOA: the second name
    (33, bytes(6) + b"\xc0\x40"),  # SRV: the target after priority, weight and port
    (2, b"\x03www"),  # NS: a name that runs past its record data
])
def test_names_inside_record_data_are_checked_too(rtype: int, rdata: bytes):
    with pytest.raises(wire.BadReply):
        parse(answer_with(b"\xc0\x0c", rtype, rdata))


def test_a_name_over_255_bytes_is_rejected():
    long_name = b"\x3f" + b"a" * 63
    with pytest.raises(wire.BadReply, match="255"):
        parse(answer_with(b"\xc0\x0c", 5, long_name * 4 + b"\x00"))


def test_record_with_rdata_running_past_the_end_is_rejected():
    data = bytearray(reply().to_wire())
    data[-6:-4] = b"\x00\x05"  # RDLENGTH 5 for 4 bytes of address
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_record_after_the_opt_is_rejected():
    r = reply(edns=True)
    data = bytearray(r.to_wire())  # ... A, then the OPT last in additional
    extra = dns.rrset.from_text("ns1.example.test.", 300, "IN", "A", "192.0.2.53")
    out = io.BytesIO()
    extra.to_wire(out)
    data += out.getvalue()
    data[10:12] = b"\x00\x02"
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_opt_outside_the_additional_section_is_rejected():
    data = bytearray(reply().to_wire())
    data += b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # an OPT ...
    data[6:8] = b"\x00\x02"  # ... counted as a second answer
    with pytest.raises(wire.BadReply):
        parse(bytes(data))


def test_opt_is_stripped_and_arcount_lowered():
    r = reply(edns=True)
    r.additional.append(dns.rrset.from_text("ns1.example.test.", 300, "IN", "A", "192.0.2.53"))
    data = r.to_wire()
    assert data[10:12] == b"\x00\x02"
    parsed = parse(data)
    assert parsed.body[10:12] == b"\x00\x01"
    msg = dns.message.from_wire(parsed.body)
    assert msg.edns == -1 and msg.opt is None
    assert [str(rrset.name) for rrset in msg.additional] == ["ns1.example.test."]
    assert len(parsed.ttl_offsets) == 2  # the answer and the additional A, not the OPT


def test_reply_is_made_relayable_id_zeroed_rd_cleared_ra_set():
    r = reply()
    r.flags = dns.flags.QR | dns.flags.RD | dns.flags.AA  # upstream without RA
    parsed = parse(r.to_wire())
    assert parsed.body[:2] == b"\x00\x00"
    flags = dns.message.from_wire(parsed.body).flags
    assert flags & dns.flags.RA
    assert not flags & dns.flags.RD
    assert flags & dns.flags.AA  # everything else passes through


def test_ttl_offsets_point_at_every_records_ttl():
    r = reply(addresses=2)
    r.authority.append(dns.rrset.from_text("example.test.", 60, "IN", "NS", "ns1.example.test."))
    parsed = parse(r.to_wire())
    assert [struct.unpack_from("!I", parsed.body, o)[0] for o in parsed.ttl_offsets] == [
        300, 300, 60]
    assert parsed.cache_ttl == 60


def test_truncated_reply_is_flagged_and_not_cacheable():
    r = reply()
    r.flags |= dns.flags.TC
    parsed = parse(r.to_wire())
    assert parsed.truncated and parsed.cache_ttl is None


def test_make_query_asks_recursively_with_our_id_and_question():
    msg = dns.message.from_wire(wire.make_query(SENT_ID, QUESTION, wire.NO_EDNS, False))
    assert msg.id == int.from_bytes(SENT_ID, "big")
    assert msg.flags == dns.flags.RD
    assert msg.edns == -1
    assert (str(msg.question[0].name), msg.question[0].rdtype) == (QNAME, dns.rdatatype.A)
    assert not msg.answer and not msg.authority and not msg.additional


def test_make_query_with_edns_advertises_our_payload_size():
    msg = dns.message.from_wire(wire.make_query(SENT_ID, QUESTION, wire.EDNS, False))
    assert msg.edns == 0 and msg.payload == wire.MAX_UDP == 1232
    assert not msg.ednsflags & dns.flags.DO


def test_make_query_echoes_do_and_cd():
    msg = dns.message.from_wire(wire.make_query(SENT_ID, QUESTION, wire.EDNS_DO, True))
    assert msg.ednsflags & dns.flags.DO
    assert msg.flags & dns.flags.CD


def client_query(qname: str, qid: int, edns: bool, payload: int = 1232) -> wire.Query:
    q = dns.message.make_query(qname, "A", use_edns=0 if edns else False, payload=payload)
    q.id = qid
    return wire.parse_query(q.to_wire())


def test_relay_gives_the_client_its_id_rd_and_question_case():
    body = parse(reply().to_wire()).body
    query = client_query("WWW.Example.TEST.", 0x4321, edns=False)
    msg = dns.message.from_wire(wire.relay(body, query, tcp=False))
    assert msg.id == 0x4321
    assert msg.flags & dns.flags.RD and msg.flags & dns.flags.RA
    assert msg.question[0].name.to_text() == "WWW.Example.TEST."
    assert [rd.address for rd in msg.answer[0]] == ["192.0.2.1"]


def test_relay_adds_our_opt_for_an_edns_client():
    body = parse(reply().to_wire()).body
    msg = dns.message.from_wire(wire.relay(body, client_query(QNAME, 7, edns=True), tcp=False))
    assert msg.edns == 0 and msg.payload == 1232


def test_relay_truncates_to_the_tc_stub_above_512_bytes_without_edns():
    body = parse(reply(addresses=40).to_wire()).body
    assert len(body) > 512
    query = client_query("Www.Example.Test.", 0x1111, edns=False)
    data = wire.relay(body, query, tcp=False)
    msg = dns.message.from_wire(data)
    assert msg.flags & dns.flags.TC
    assert msg.id == 0x1111 and msg.question[0].name.to_text() == "Www.Example.Test."
    assert not msg.answer and not msg.authority and not msg.additional
    assert len(data) == 12 + len(QUESTION)


def test_relay_truncates_above_the_edns_clients_payload_size():
    body = parse(reply(addresses=40).to_wire()).body  # 12+22+40*16 = 674 bytes
    small = dns.message.from_wire(wire.relay(body, client_query(QNAME, 1, True, 600), False))
    large = dns.message.from_wire(wire.relay(body, client_query(QNAME, 1, True, 1232), False))
    assert small.flags & dns.flags.TC and small.edns == 0 and not small.answer
    assert not large.flags & dns.flags.TC and len(large.answer[0]) == 40


def test_relay_never_truncates_over_tcp():
    body = parse(reply(addresses=200).to_wire()).body
    msg = dns.message.from_wire(wire.relay(body, client_query(QNAME, 1, False), tcp=True))
    assert not msg.flags & dns.flags.TC and len(msg.answer[0]) == 200


def test_servfail_has_ra_and_the_clients_question():
    query = client_query("Www.Example.Test.", 0x2222, edns=True)
    msg = dns.message.from_wire(wire.servfail(query))
    assert msg.rcode() == dns.rcode.SERVFAIL
    assert msg.flags & dns.flags.RA and msg.flags & dns.flags.QR
    assert msg.id == 0x2222 and msg.question[0].name.to_text() == "Www.Example.Test."
    assert msg.edns == 0
