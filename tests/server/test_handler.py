"""The query pipeline end to end: a real server queried over UDP and TCP (dnspython and raw
bytes), one protocol behaviour per test."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

TIMEOUT = 2.0

# Reply sizes (EDNS adds our 11-byte OPT): "big" is 674 bytes bare, 685 with EDNS, so over 512
# and under 1232; "huge" is over 1232 either way. "fits"/"over" are TXT records sized
# so the EDNS reply is exactly 1232 / 1233 bytes (12 header + 23 question + 12 RR header +
# rdata + 11 OPT; rdata = 4 × 256 + 1 + 149 or 150).
_TXT_FIT = " ".join(['"' + "x" * 255 + '"'] * 4 + ['"' + "y" * 149 + '"'])
_TXT_OVER = " ".join(['"' + "x" * 255 + '"'] * 4 + ['"' + "y" * 150 + '"'])
CONFIG = f"""
zones:
  example.test:
    records:
      www: {{A: 192.0.2.1}}
      big: {{A: [{", ".join(f"10.0.0.{i}" for i in range(1, 41))}]}}
      huge: {{A: [{", ".join(f"10.0.1.{i}" for i in range(1, 101))}]}}
      fits: {{TXT: '{_TXT_FIT}'}}
      over: {{TXT: '{_TXT_OVER}'}}
"""


@pytest.fixture
def srv(edgedns_server):
    return edgedns_server(CONFIG)


@pytest.fixture(params=[False, True], ids=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param


def exchange(srv, data: bytes, tcp: bool, timeout: float = TIMEOUT) -> bytes | None:
    """Send raw `data` as one message; the raw reply, or None when none came in `timeout`."""
    if tcp:
        with socket.create_connection((srv.host, srv.port), timeout=timeout) as sock:
            sock.sendall(len(data).to_bytes(2, "big") + data)
            try:
                size = int.from_bytes(recv_exact(sock, 2), "big")
                return recv_exact(sock, size)
            except (TimeoutError, EOFError):
                return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, (srv.host, srv.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def recv_exact(sock: socket.socket, size: int) -> bytes:
    out = b""
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def raw_query(qid: int = 0x4242, flags: int = 0x0100, qdcount: int = 1) -> bytes:
    question = b"\x03www\x07example\x04test\x00\x00\x01\x00\x01"
    return struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, 0) + question * max(qdcount, 1)


def reply_to(srv, data: bytes, tcp: bool) -> dns.message.Message:
    raw = exchange(srv, data, tcp)
    assert raw is not None, "no reply"
    return dns.message.from_wire(raw)


def question_bytes(message: bytes) -> bytes:
    """The question section of a one-question message with an uncompressed name."""
    end = 12
    while message[end]:
        end += message[end] + 1
    return message[12 : end + 5]


# --- header and question checks -------------------------------------------------------------


def test_plain_a_query_is_answered_authoritatively(srv, tcp) -> None:
    r = srv.query("www.example.test", "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.1"]


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY,
                                    dns.opcode.UPDATE, 6, 15])
def test_non_query_opcode_gets_notimp_with_no_flags_echoed(srv, tcp, opcode: int) -> None:
    flags = opcode << 11 | dns.flags.RD | dns.flags.CD | dns.flags.AD
    r = reply_to(srv, raw_query(flags=flags), tcp)
    assert r.rcode() == dns.rcode.NOTIMP
    assert r.opcode() == opcode
    assert r.id == 0x4242
    assert r.flags & 0x07F0 == 0  # no AA, TC, RD, RA, Z, AD or CD


@pytest.mark.parametrize("qdcount", [0, 2])
def test_question_count_other_than_one_gets_formerr(srv, tcp, qdcount: int) -> None:
    r = reply_to(srv, raw_query(qdcount=qdcount), tcp)
    assert r.rcode() == dns.rcode.FORMERR
    assert r.id == 0x4242


def test_a_response_gets_no_reply_over_udp(srv) -> None:
    assert exchange(srv, raw_query(flags=0x8100), tcp=False, timeout=0.5) is None
    assert reply_to(srv, raw_query(), tcp=False).rcode() == dns.rcode.NOERROR


def test_a_response_gets_no_reply_over_tcp(srv) -> None:
    # Pipelined behind a response, the first reply on the stream must be to the real query.
    with socket.create_connection((srv.host, srv.port), timeout=TIMEOUT) as sock:
        for data in (raw_query(qid=1, flags=0x8100), raw_query(qid=2)):
            sock.sendall(len(data).to_bytes(2, "big") + data)
        size = int.from_bytes(recv_exact(sock, 2), "big")
        assert dns.message.from_wire(recv_exact(sock, size)).id == 2


# --- EDNS -----------------------------------------------------------------------------------


def test_edns_version_1_gets_badvers_with_opt(srv, tcp) -> None:
    q = dns.message.make_query("www.example.test", "A", use_edns=1)
    raw = exchange(srv, q.to_wire(), tcp)
    assert raw is not None
    r = dns.message.from_wire(raw)
    assert r.rcode() == dns.rcode.BADVERS
    assert raw[3] & 0x0F == 0  # the low bits of 16; the high bits ride in the OPT
    assert r.edns == 0  # our OPT says which version we speak
    assert not r.answer


def test_two_opt_records_get_formerr(srv, tcp) -> None:
    data = dns.message.make_query("www.example.test", "A", use_edns=0).to_wire()
    opt = data[-11:]
    assert opt[:3] == b"\x00\x00\x29"
    doubled = data[:10] + b"\x00\x02" + data[12:] + opt
    r = reply_to(srv, doubled, tcp)
    assert r.rcode() == dns.rcode.FORMERR


def test_unknown_edns_options_are_ignored(srv, tcp) -> None:
    options = [dns.edns.GenericOption(65001, b"\x01\x02\x03"), dns.edns.GenericOption(65534, b"")]
    r = srv.query("www.example.test", "A", tcp=tcp, use_edns=0, options=options)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.answer
    assert not r.options  # nothing unknown is echoed back


def test_do_bit_is_echoed(srv, tcp) -> None:
    r = srv.query("www.example.test", "A", tcp=tcp, use_edns=0, want_dnssec=True)
    assert r.ednsflags & dns.flags.DO


def test_do_bit_is_not_set_when_not_asked(srv, tcp) -> None:
    r = srv.query("www.example.test", "A", tcp=tcp, use_edns=0)
    assert r.edns == 0
    assert not r.ednsflags & dns.flags.DO


def test_our_opt_advertises_1232(srv, tcp) -> None:
    r = srv.query("www.example.test", "A", tcp=tcp, use_edns=0, payload=4096)
    assert r.payload == 1232


def test_no_opt_in_reply_to_a_query_without_one(srv, tcp) -> None:
    r = srv.query("www.example.test", "A", tcp=tcp)
    assert r.edns == -1


# --- question echo --------------------------------------------------------------------------


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT"])
def test_mixed_case_question_comes_back_byte_for_byte(srv, tcp, rdtype: str) -> None:
    q = dns.message.make_query("wWw.ExAmPlE.tEsT", rdtype, use_edns=False)
    data = q.to_wire()
    raw = exchange(srv, data, tcp)
    assert raw is not None
    assert question_bytes(raw) == question_bytes(data)
    assert b"wWw" in question_bytes(raw)


def test_mixed_case_question_comes_back_in_refused_replies_too(srv, tcp) -> None:
    data = dns.message.make_query("NoT.oUrS.iNvAlId", "A", use_edns=0).to_wire()
    raw = exchange(srv, data, tcp)
    assert raw is not None
    assert question_bytes(raw) == question_bytes(data)


# --- refused --------------------------------------------------------------------------------


def test_chaos_class_is_refused(srv, tcp) -> None:
    r = srv.query("version.bind", "TXT", tcp=tcp, rdclass=dns.rdataclass.CH)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.answer


def test_chaos_class_for_a_served_name_is_refused(srv, tcp) -> None:
    r = srv.query("www.example.test", "A", tcp=tcp, rdclass=dns.rdataclass.CH)
    assert r.rcode() == dns.rcode.REFUSED


def test_axfr_over_tcp_is_refused(srv) -> None:
    q = dns.message.make_query("example.test", "AXFR", use_edns=False)
    r = reply_to(srv, q.to_wire(), tcp=True)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.answer


def test_axfr_over_udp_is_notimp(srv) -> None:
    # AXFR is TCP-only (RFC 5936 §4.2); over UDP it is not implemented rather than refused.
    q = dns.message.make_query("example.test", "AXFR", use_edns=False)
    r = reply_to(srv, q.to_wire(), tcp=False)
    assert r.rcode() == dns.rcode.NOTIMP
    assert not r.answer


def test_ixfr_is_refused(srv, tcp) -> None:
    q = dns.message.make_query("example.test", "IXFR", use_edns=False)
    r = reply_to(srv, q.to_wire(), tcp)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.answer


@pytest.mark.parametrize("name", ["example.com", "test", ".", "example.test.evil"])
def test_names_outside_every_zone_are_refused(srv, tcp, name: str) -> None:
    r = srv.query(name, "A", tcp=tcp)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.answer
    assert not r.flags & dns.flags.AA


# --- truncation -----------------------------------------------------------------------------


def test_answer_over_512_without_edns_over_udp_is_truncated_with_no_records(srv) -> None:
    r = srv.query("big.example.test", "A")
    assert r.flags & dns.flags.TC
    assert not r.answer and not r.authority and not r.additional
    assert r.question[0].name == dns.name.from_text("big.example.test")


def test_answer_over_512_without_edns_over_tcp_is_complete(srv) -> None:
    r = srv.query("big.example.test", "A", tcp=True)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 40


def test_answer_over_1232_over_tcp_is_complete(srv) -> None:
    r = srv.query("huge.example.test", "A", tcp=True, use_edns=0)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 100


def test_answer_over_512_fits_with_edns_4096_over_udp(srv) -> None:
    r = srv.query("big.example.test", "A", use_edns=0, payload=4096)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 40


def test_answer_of_exactly_1232_bytes_fits_with_edns_4096(srv) -> None:
    q = dns.message.make_query("fits.example.test", "TXT", use_edns=0, payload=4096)
    raw = exchange(srv, q.to_wire(), tcp=False)
    assert raw is not None and len(raw) == 1232
    assert not dns.message.from_wire(raw).flags & dns.flags.TC


def test_answer_of_1233_bytes_is_truncated_even_with_edns_4096(srv) -> None:
    q = dns.message.make_query("over.example.test", "TXT", use_edns=0, payload=4096)
    r = reply_to(srv, q.to_wire(), tcp=False)
    assert r.flags & dns.flags.TC
    assert not r.answer
    assert r.edns == 0  # the stub still carries our OPT


def test_answer_over_1232_is_truncated_with_edns_4096_over_udp(srv) -> None:
    r = srv.query("huge.example.test", "A", use_edns=0, payload=4096)
    assert r.flags & dns.flags.TC
    assert not r.answer


def test_advertised_size_below_the_answer_truncates(srv) -> None:
    r = srv.query("big.example.test", "A", use_edns=0, payload=600)
    assert r.flags & dns.flags.TC
    assert not r.answer
