"""Unit tests of `edgedns.dns.wire`: parsing queries, error replies, patching answers, size limits.

Queries are built byte by byte here (not with a DNS library) so each test controls exactly
the flaw it is about.
"""

from __future__ import annotations

import struct

import pytest

from edgedns.dns import wire

QNAME = b"\x03www\x07example\x04test\x00"
QUESTION = QNAME + struct.pack("!HH", 1, 1)  # A, IN


def header(
    *,
    qid: int = 0x1234,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def opt(
    *,
    size: int = 1232,
    ext_rcode: int = 0,
    version: int = 0,
    do: bool = False,
    options: bytes = b"",
    owner: bytes = b"\x00",
) -> bytes:
    flags = 0x8000 if do else 0
    return owner + struct.pack("!HHBBHH", 41, size, ext_rcode, version, flags, len(options)) + (
        options
    )


def option(code: int, payload: bytes) -> bytes:
    return struct.pack("!HH", code, len(payload)) + payload


def a_record(owner: bytes = b"\xc0\x0c") -> bytes:
    return owner + struct.pack("!HHIH", 1, 1, 60, 4) + bytes((192, 0, 2, 1))


def query(*, flags: int = 0x0100, question: bytes = QUESTION, additional: bytes = b"",
          ar: int = 0, qid: int = 0x1234) -> bytes:
    return header(qid=qid, flags=flags, ar=ar) + question + additional


def rejected(data: bytes) -> wire.Reject:
    with pytest.raises(wire.Reject) as info:
        wire.parse_query(data)
    return info.value


# --- parse_query: well-formed queries -------------------------------------------------------


def test_plain_query_parses_name_type_class_and_no_edns() -> None:
    q = wire.parse_query(query())
    assert (q.qname, q.qtype, q.qclass) == (QNAME, 1, 1)
    assert q.name_end == wire.HEADER + len(QNAME)
    assert (q.edns, q.udp_size) == (wire.NO_EDNS, 512)


def test_query_name_is_lowercased_for_lookup_but_data_kept_as_sent() -> None:
    mixed = b"\x03WwW\x07ExAmPlE\x04TEST\x00" + struct.pack("!HH", 28, 1)
    data = query(question=mixed)
    q = wire.parse_query(data)
    assert q.qname == QNAME
    assert q.qtype == 28
    assert q.data == data


def test_query_with_opt_is_edns_with_advertised_udp_size() -> None:
    q = wire.parse_query(query(additional=opt(size=4096), ar=1))
    assert (q.edns, q.udp_size) == (wire.EDNS, 4096)


def test_query_with_do_bit_is_edns_do() -> None:
    q = wire.parse_query(query(additional=opt(do=True), ar=1))
    assert q.edns == wire.EDNS_DO


def test_advertised_udp_size_below_512_counts_as_512() -> None:
    q = wire.parse_query(query(additional=opt(size=100), ar=1))
    assert (q.edns, q.udp_size) == (wire.EDNS, 512)


def test_opt_after_other_additional_records_is_found() -> None:
    q = wire.parse_query(query(additional=a_record() + opt(size=2048, do=True), ar=2))
    assert (q.edns, q.udp_size) == (wire.EDNS_DO, 2048)


def test_well_formed_edns_options_are_accepted() -> None:
    options = option(10, b"\x01" * 8) + option(65001, b"") + option(12, b"\x00" * 20)
    q = wire.parse_query(query(additional=opt(options=options), ar=1))
    assert q.edns == wire.EDNS


def test_name_of_exactly_255_octets_is_accepted() -> None:
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"
    assert len(name) == 255
    q = wire.parse_query(query(question=name + b"\x00\x01\x00\x01"))
    assert q.qname == name


def test_root_name_query_parses() -> None:
    q = wire.parse_query(query(question=b"\x00\x00\x02\x00\x01"))
    assert (q.qname, q.qtype) == (b"\x00", 2)


def test_trailing_bytes_after_question_are_ignored_without_record_counts() -> None:
    q = wire.parse_query(query() + b"\xff\xfe")
    assert q.edns == wire.NO_EDNS


# --- parse_query: no reply at all -----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 11])
def test_message_shorter_than_a_header_is_dropped(size: int) -> None:
    with pytest.raises(wire.Drop):
        wire.parse_query(query()[:size])


def test_response_with_qr_set_is_dropped() -> None:
    with pytest.raises(wire.Drop):
        wire.parse_query(query(flags=0x8100))


# --- parse_query: FORMERR -------------------------------------------------------------------


@pytest.mark.parametrize("qdcount", [0, 2, 256])
def test_question_count_other_than_one_is_formerr(qdcount: int) -> None:
    data = struct.pack("!HHHHHH", 1, 0, qdcount, 0, 0, 0) + QUESTION * 2
    reject = rejected(data)
    assert reject.rcode == wire.FORMERR
    assert reject.question_end == wire.HEADER


def test_compression_pointer_in_question_is_formerr() -> None:
    reject = rejected(query(question=b"\x03www\xc0\x0c\x00\x01\x00\x01"))
    assert reject.rcode == wire.FORMERR


@pytest.mark.parametrize("first", [0x40, 0x80])
def test_extended_label_types_in_question_are_formerr(first: int) -> None:
    assert rejected(query(question=bytes((first,)) + b"\x00" * 8)).rcode == wire.FORMERR


def test_label_longer_than_63_octets_is_formerr() -> None:
    # 64 is not a valid length byte: neither a label (≤ 63) nor a pointer (0b11......).
    reject = rejected(query(question=b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"))
    assert reject.rcode == wire.FORMERR


def test_name_longer_than_255_octets_is_formerr() -> None:
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3e" + b"b" * 62 + b"\x00"
    assert len(name) == 256
    assert rejected(query(question=name + b"\x00\x01\x00\x01")).rcode == wire.FORMERR


@pytest.mark.parametrize("cut", [1, 4, len(QNAME) - 1, len(QNAME), len(QUESTION) - 1])
def test_truncated_question_is_formerr(cut: int) -> None:
    reject = rejected(query(question=QUESTION[:cut]))
    assert reject.rcode == wire.FORMERR
    assert reject.question_end == wire.HEADER


def test_two_opt_records_are_formerr() -> None:
    reject = rejected(query(additional=opt() + opt(), ar=2))
    assert reject.rcode == wire.FORMERR
    assert reject.edns == wire.NO_EDNS


def test_two_opt_records_are_formerr_even_when_the_first_has_a_bad_version() -> None:
    assert rejected(query(additional=opt(version=1) + opt(), ar=2)).rcode == wire.FORMERR


def test_opt_with_non_root_owner_is_formerr() -> None:
    reject = rejected(query(additional=opt(owner=b"\x01x\x00"), ar=1))
    assert reject.rcode == wire.FORMERR


def test_opt_in_answer_section_is_formerr() -> None:
    data = header(an=1) + QUESTION + opt()
    assert rejected(data).rcode == wire.FORMERR


def test_opt_in_authority_section_is_formerr() -> None:
    data = header(ns=1) + QUESTION + opt()
    assert rejected(data).rcode == wire.FORMERR


@pytest.mark.parametrize(
    "options",
    [
        b"\x00",  # shorter than an option header
        b"\x00\x0a\x00",  # option header cut short
        b"\x00\x0a\x00\x08" + b"\x01" * 4,  # option length runs past the OPT rdata
        option(10, b"\x01" * 8) + b"\x00\x0c\x00\x05",  # second option runs past the end
    ],
)
def test_malformed_opt_options_are_formerr(options: bytes) -> None:
    assert rejected(query(additional=opt(options=options), ar=1)).rcode == wire.FORMERR


def test_opt_rdata_longer_than_the_message_is_formerr() -> None:
    data = query(additional=opt(options=option(10, b"\x01" * 8)), ar=1)
    assert rejected(data[:-3]).rcode == wire.FORMERR


@pytest.mark.parametrize("cut", range(1, 11))
def test_lone_opt_cut_short_is_formerr(cut: int) -> None:
    record = opt(size=4096, do=True)
    assert rejected(query(additional=record[:cut], ar=1)).rcode == wire.FORMERR


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 11])
def test_lone_opt_followed_by_stray_bytes_still_parses(extra: bytes) -> None:
    q = wire.parse_query(query(additional=opt(size=4096, do=True) + extra, ar=1))
    assert (q.edns, q.udp_size) == (wire.EDNS_DO, 4096)


def test_additional_count_beyond_the_records_present_is_formerr() -> None:
    assert rejected(query(additional=opt(), ar=2)).rcode == wire.FORMERR


def test_formerr_in_records_still_echoes_the_parsed_question() -> None:
    reject = rejected(query(additional=opt() + opt(), ar=2))
    assert reject.question_end == wire.HEADER + len(QUESTION)


# --- parse_query: NOTIMP and BADVERS --------------------------------------------------------


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_non_zero_opcode_is_notimp(opcode: int) -> None:
    reject = rejected(query(flags=opcode << 11 | 0x0100))
    assert reject.rcode == wire.NOTIMP


def test_edns_version_1_is_badvers_and_keeps_the_do_trait() -> None:
    reject = rejected(query(additional=opt(version=1, do=True), ar=1))
    assert reject.rcode == wire.BADVERS
    assert reject.edns == wire.EDNS_DO


def test_badvers_reply_puts_extended_rcode_in_opt_and_zero_in_header() -> None:
    reply = wire.error_reply(rejected(query(additional=opt(version=1), ar=1)))
    assert reply[3] & 0x0F == 0  # low 4 bits of 16
    assert struct.unpack("!HHHH", reply[4:12]) == (1, 0, 0, 1)
    rr = reply[wire.HEADER + len(QUESTION) :]
    owner, rtype, size, ext_rcode, version, flags, rdlen = struct.unpack("!BHHBBHH", rr)
    assert (owner, rtype, size) == (0, 41, wire.MAX_UDP)
    assert (ext_rcode, version, rdlen) == (1, 0, 0)  # 16 >> 4 == 1; we speak version 0


# --- error_reply ----------------------------------------------------------------------------


def test_error_reply_echoes_id_opcode_rd_and_question() -> None:
    data = query(qid=0xBEEF, flags=0x0100)
    reply = wire.error_reply(wire.Reject(wire.REFUSED, data, wire.HEADER + len(QUESTION), 0))
    assert reply[:2] == b"\xbe\xef"
    assert reply[2] == 0x80 | 0x01  # QR, opcode 0, RD
    assert reply[3] & 0x0F == wire.REFUSED
    assert struct.unpack("!HHHH", reply[4:12]) == (1, 0, 0, 0)
    assert reply[wire.HEADER :] == QUESTION


def test_notimp_reply_keeps_the_opcode_and_echoes_no_flags() -> None:
    # opcode 2 with RD, AA, TC, and CD, AD and Z in the second byte (genreport's opcodeflg)
    data = query(flags=2 << 11 | 0x0100 | 0x0400 | 0x0200 | 0x0010 | 0x0020 | 0x0040)
    reply = wire.error_reply(rejected(data))
    assert reply[2] == 0x80 | 2 << 3  # QR and the opcode; no RD, AA or TC
    assert reply[3] == wire.NOTIMP  # no RA, Z, AD or CD


def test_error_reply_to_a_query_echoes_rd_and_cd_only() -> None:
    data = query(flags=0x0100 | 0x0400 | 0x0200 | 0x0010 | 0x0020 | 0x0040)
    reply = wire.error_reply(wire.Reject(wire.REFUSED, data, wire.HEADER + len(QUESTION), 0))
    assert reply[2] == 0x80 | 0x01
    assert reply[3] == 0x10 | wire.REFUSED


def test_error_reply_without_a_parsed_question_has_qdcount_zero() -> None:
    data = struct.pack("!HHHHHH", 7, 0, 2, 0, 0, 0) + QUESTION * 2
    reply = wire.error_reply(rejected(data))
    assert reply == struct.pack("!HHHHHH", 7, 0x8000 | wire.FORMERR, 0, 0, 0, 0)


def test_error_reply_to_an_edns_query_carries_our_opt_and_echoes_do() -> None:
    data = query(additional=opt(do=True), ar=1)
    reply = wire.error_reply(wire.Reject(wire.REFUSED, data, wire.HEADER + len(QUESTION),
                                         wire.EDNS_DO))
    assert reply[10:12] == b"\x00\x01"
    assert reply.endswith(wire.opt_record(wire.EDNS_DO))
    assert struct.unpack_from("!H", reply, len(reply) - 4)[0] == 0x8000


def test_opt_record_advertises_1232_and_sets_do_only_when_asked() -> None:
    assert wire.opt_record(wire.EDNS) == b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    assert wire.opt_record(wire.EDNS_DO) == b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"


# --- with_opt / truncated -------------------------------------------------------------------


def test_with_opt_appends_opt_and_raises_arcount() -> None:
    message = header(flags=0x8400, ar=1) + QUESTION + a_record()
    out = wire.with_opt(message, wire.EDNS)
    assert out[10:12] == b"\x00\x02"
    assert out == message[:10] + b"\x00\x02" + message[12:] + wire.opt_record(wire.EDNS)
    assert wire.with_opt(message, wire.NO_EDNS) == message


def test_truncated_keeps_header_and_question_with_tc_and_no_records() -> None:
    message = struct.pack("!HHHHHH", 0, 0x8400, 1, 1, 0, 0) + QUESTION + a_record()
    out = wire.truncated(message, wire.HEADER + len(QUESTION))
    assert out == struct.pack("!HHHHHH", 0, 0x8600, 1, 0, 0, 0) + QUESTION


def test_truncated_keeping_opt_keeps_the_opt_with_its_options() -> None:
    opt = wire.opt_record(wire.EDNS_DO)
    opt = opt[:-2] + b"\x00\x06" + b"\x00\x0a\x00\x02\xab\xcd"  # one 2-byte option
    message = struct.pack("!HHHHHH", 0, 0x8400, 1, 1, 0, 1) + QUESTION + a_record() + opt
    out = wire.truncated_keeping_opt(message, wire.HEADER + len(QUESTION))
    assert out == struct.pack("!HHHHHH", 0, 0x8600, 1, 0, 0, 1) + QUESTION + opt


def test_truncated_keeping_opt_without_an_opt_is_truncated() -> None:
    message = struct.pack("!HHHHHH", 0, 0x8400, 1, 1, 0, 1) + QUESTION + a_record() * 2
    question_end = wire.HEADER + len(QUESTION)
    assert wire.truncated_keeping_opt(message, question_end) == wire.truncated(message,
                                                                                question_end)


# --- patch ----------------------------------------------------------------------------------


def packed_answer() -> bytes:
    """An answer as `answers` packs it: ID 0, QR+AA, RD clear, lowercase question."""
    return struct.pack("!HHHHHH", 0, 0x8400, 1, 1, 0, 0) + QUESTION + a_record()


def test_patch_takes_id_and_question_case_from_the_query() -> None:
    mixed = b"\x03wWw\x07EXAMPLE\x04tEsT\x00\x00\x01\x00\x01"
    q = wire.parse_query(query(qid=0xCAFE, question=mixed, flags=0))
    out = wire.patch(packed_answer(), q)
    assert out[:2] == b"\xca\xfe"
    assert out[wire.HEADER : wire.HEADER + len(mixed)] == mixed
    assert out[wire.HEADER + len(mixed) :] == a_record()
    assert out[2:4] == b"\x84\x00"  # RD and CD were not set: none echoed


def test_patch_echoes_rd_and_cd_bits() -> None:
    q = wire.parse_query(query(flags=0x0110))  # RD, CD
    out = wire.patch(packed_answer(), q)
    assert out[2] == 0x84 | 0x01
    assert out[3] == 0x10


def test_patch_does_not_copy_other_query_flags() -> None:
    q = wire.parse_query(query(flags=0x0100 | 0x0020))  # RD, AD
    out = wire.patch(packed_answer(), q)
    assert out[3] == 0x00


# --- limit ----------------------------------------------------------------------------------


def parsed(additional: bytes = b"", ar: int = 0) -> wire.Query:
    return wire.parse_query(query(additional=additional, ar=ar))


def test_limit_without_edns_over_udp_is_512() -> None:
    assert wire.limit(parsed(), tcp=False) == 512


@pytest.mark.parametrize(("advertised", "expected"), [(512, 512), (800, 800), (1232, 1232),
                                                       (1400, 1232), (4096, 1232),
                                                       (65535, 1232), (100, 512)])
def test_limit_with_edns_over_udp_is_min_of_advertised_and_1232(
    advertised: int, expected: int
) -> None:
    assert wire.limit(parsed(opt(size=advertised), 1), tcp=False) == expected


@pytest.mark.parametrize("additional", [b"", opt(size=512)])
def test_limit_over_tcp_is_65535(additional: bytes) -> None:
    assert wire.limit(parsed(additional, 1 if additional else 0), tcp=True) == 65535


def ecs_option(family: int, source: int, address: bytes, scope: int = 0) -> bytes:
    body = struct.pack("!HBB", family, source, scope) + address
    return struct.pack("!HH", 8, len(body)) + body


def test_client_subnet_is_read_from_the_opt_and_echoed_with_full_scope() -> None:
    options = struct.pack("!HH", 10, 8) + b"cookie!!" + ecs_option(1, 24, bytes((192, 0, 2)))
    query = wire.parse_query(header(ar=1) + QUESTION + opt(options=options))
    key, echo = wire.client_subnet(query)
    assert key == b"\x00\x01\x18" + bytes((192, 0, 2))
    assert echo == ecs_option(1, 24, bytes((192, 0, 2)), scope=24)


def test_client_subnet_is_none_without_ecs_or_with_a_malformed_one() -> None:
    plain = wire.parse_query(header(ar=1) + QUESTION + opt())
    assert wire.client_subnet(plain) is None
    too_long = ecs_option(1, 8, bytes((10, 0)))  # 2 address bytes for an 8-bit prefix
    bad = wire.parse_query(header(ar=1) + QUESTION + opt(options=too_long))
    assert wire.client_subnet(bad) is None
    unknown_family = ecs_option(3, 8, bytes((10,)))
    bad = wire.parse_query(header(ar=1) + QUESTION + opt(options=unknown_family))
    assert wire.client_subnet(bad) is None


def test_add_option_puts_the_option_into_the_trailing_opt() -> None:
    reply = header(flags=0x8400, ar=1) + QUESTION + wire.opt_record(wire.EDNS)
    option = ecs_option(1, 24, bytes((192, 0, 2)), scope=24)
    patched = wire.add_option(reply, option)
    assert patched[: len(reply) - 2] == reply[:-2]
    assert struct.unpack("!H", patched[len(reply) - 2 : len(reply)])[0] == len(option)
    assert patched.endswith(option)
