"""Record values in presentation form → dnslib rdata, and TTLs."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RD

from edgedns.dns import names, rdata
from edgedns.dns.presentation import split
from edgedns.dns.rdata import RdataError, parse_ttl
from tests.support import as_dnslib

ORIGIN = names.from_text("site.lan.")


def parse(rtype: str, value: str) -> tuple[int, RD]:
    """(type code, the data as dnslib decodes our wire form)."""
    code, data = rdata.parse(rtype, [token.text for token in split(value)], ORIGIN)
    return code, as_dnslib(code, data)


def wire(rtype: str, value: str) -> bytes:
    """The data as served: uncompressed wire bytes."""
    return rdata.to_wire(rdata.parse(rtype, [token.text for token in split(value)], ORIGIN)[1])


# --- each supported type parses -------------------------------------------------------------


def test_a_parses_an_ipv4_address() -> None:
    code, rd = parse("A", "192.0.2.1")
    assert code == QTYPE.A
    assert str(rd) == "192.0.2.1"


def test_aaaa_parses_an_ipv6_address() -> None:
    code, rd = parse("AAAA", "2001:db8::1")
    assert code == QTYPE.AAAA
    assert str(rd) == "2001:db8::1"


def test_ns_target_relative_to_origin_is_completed() -> None:
    code, rd = parse("NS", "ns1")
    assert code == QTYPE.NS
    assert str(rd) == "ns1.site.lan."


def test_cname_absolute_target_is_kept_as_written() -> None:
    code, rd = parse("CNAME", "web.other.")
    assert code == QTYPE.CNAME
    assert str(rd) == "web.other."


def test_ptr_at_sign_is_the_origin() -> None:
    code, rd = parse("PTR", "@")
    assert code == QTYPE.PTR
    assert str(rd) == "site.lan."


def test_names_in_values_are_lowercased() -> None:
    _, rd = parse("CNAME", "WEB.Other.")
    assert str(rd) == "web.other."


def test_mx_parses_preference_and_exchange() -> None:
    code, rd = parse("MX", "10 mail")
    assert code == QTYPE.MX
    assert (rd.preference, str(rd.label)) == (10, "mail.site.lan.")


def test_txt_quoted_and_unquoted_strings_are_separate_strings() -> None:
    code, rd = parse("TXT", '"a b" c')
    assert code == QTYPE.TXT
    assert rd.data == [b"a b", b"c"]


def test_txt_escapes_are_decoded_to_octets() -> None:
    _, rd = parse("TXT", r'"say \"hi\" \255"')
    assert rd.data == [b'say "hi" \xff']


def test_txt_accepts_a_string_of_exactly_255_octets() -> None:
    _, rd = parse("TXT", "x" * 255)
    assert rd.data == [b"x" * 255]


def test_srv_parses_priority_weight_port_and_target() -> None:
    code, rd = parse("SRV", "0 5 1883 broker")
    assert code == QTYPE.SRV
    assert (rd.priority, rd.weight, rd.port, str(rd.target)) == (0, 5, 1883, "broker.site.lan.")


def test_soa_parses_names_serial_and_timers_with_ttl_units() -> None:
    code, rd = parse("SOA", "ns1 hostmaster 2024010101 1h 10m 1d 30")
    assert code == QTYPE.SOA
    assert str(rd.mname) == "ns1.site.lan."
    assert str(rd.rname) == "hostmaster.site.lan."
    assert rd.times == (2024010101, 3600, 600, 86400, 30)


def test_caa_parses_flags_tag_and_value() -> None:
    code, rd = parse("CAA", '0 issue "ca.site.lan"')
    assert code == QTYPE.CAA
    assert (rd.flags, rd.tag, rd.value) == (0, "issue", "ca.site.lan")


def test_caa_value_with_non_ascii_text_is_served_as_its_utf8_octets() -> None:
    assert wire("CAA", '0 iodef "mailto:é@site.lan"') == (
        b"\x00\x05iodef" + "mailto:é@site.lan".encode())


def test_caa_value_escapes_are_served_as_the_octets_they_name() -> None:
    assert wire("CAA", r'0 iodef "caf\195\169"') == b"\x00\x05iodefcaf\xc3\xa9"


def test_record_type_is_case_insensitive() -> None:
    code, _ = parse("mx", "10 mail")
    assert code == QTYPE.MX


# --- bad values name the expected syntax ------------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "value", "problem"),
    [
        ("A", "192.0.2", "is not an IPv4 address (four decimal octets"),
        ("A", "2001:db8::1", "is not an IPv4 address"),
        ("A", "192.0.02.1", "no leading zeros"),
        ("A", "192.0.2.256", "four decimal octets 0-255"),
        ("AAAA", "192.0.2.1", "not a valid address"),
        ("MX", "mail 10", "'mail' is not a number"),
        ("SRV", "0 5 http broker", "'http' is not a number"),
        ("SOA", "ns1 hostmaster one 1 1 1 1", "'one' is not a number"),
        ("SOA", "ns1 hostmaster 1 1x 1 1 1", "'1x' is not a TTL"),
        ("CAA", "0 is-sue x", "tag 'is-sue' must be letters and digits"),
        ("CNAME", "a..b", "empty label"),
        ("NS", "ns\\.1", "escapes in names are not supported"),
        ("CNAME", "wëb", "not ASCII"),
        ("TXT", "", "at least one string needed"),
        ("MX", "²² mail", "'²²' is not a number"),
    ],
)
def test_bad_value_gives_rdata_error_naming_the_value_problem_and_expected_syntax(
    rtype: str, value: str, problem: str
) -> None:
    with pytest.raises(RdataError) as info:
        parse(rtype, value)
    message = str(info.value)
    assert message.startswith(f"bad {rtype} value {value!r}: ")
    assert problem in message
    assert message.endswith(f"; expected {rdata.SYNTAX[rtype]}")


def test_label_longer_than_63_octets_is_rejected() -> None:
    with pytest.raises(RdataError, match="longer than 63 octets"):
        parse("CNAME", "x" * 64)


def test_txt_string_over_255_octets_is_rejected_with_advice_to_split() -> None:
    with pytest.raises(RdataError, match="at most 255 octets; split it into several"):
        parse("TXT", "x" * 256)


def test_txt_length_limit_counts_octets_after_unescaping() -> None:
    _, rd = parse("TXT", "\\255" * 255)
    assert rd.data == [b"\xff" * 255]


def test_bad_escape_in_txt_is_an_rdata_error() -> None:
    with pytest.raises(RdataError, match=r"escape \\300 is over 255; expected <text>"):
        parse("TXT", r"\300")


def test_caa_value_is_any_octets_as_rfc_8659_allows() -> None:
    assert wire("CAA", r'0 issue "\255"') == b"\x00\x05issue\xff"


def test_unsupported_type_lists_the_supported_ones() -> None:
    with pytest.raises(RdataError, match=r"unsupported record type 'HINFO' \(supported: A, AAAA,"):
        parse("HINFO", "pc linux")


# --- range errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "value", "limit"),
    [
        ("MX", "65536 mail", "65536 is over 65535"),
        ("SRV", "0 0 65536 broker", "65536 is over 65535"),
        ("CAA", "256 issue x", "256 is over 255"),
        ("SOA", "ns1 hostmaster 4294967296 1 1 1 1", "4294967296 is over 4294967295"),
    ],
)
def test_number_above_its_field_width_is_a_range_error(rtype: str, value: str, limit: str) -> None:
    with pytest.raises(RdataError, match=limit):
        parse(rtype, value)


@pytest.mark.parametrize(
    ("rtype", "value"),
    [("MX", "65535 mail"), ("CAA", "255 issue x"), ("SOA", "a b 4294967295 1 1 1 1")],
)
def test_number_at_the_top_of_its_field_width_is_accepted(rtype: str, value: str) -> None:
    parse(rtype, value)


def test_negative_number_is_not_a_number() -> None:
    with pytest.raises(RdataError, match="'-1' is not a number"):
        parse("MX", "-1 mail")


# --- trailing garbage and missing fields ------------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "value", "arity"),
    [
        ("A", "192.0.2.1 192.0.2.2", "1 field needed, 2 given"),
        ("AAAA", "::1 extra", "1 field needed, 2 given"),
        ("NS", "ns1 ns2", "1 field needed, 2 given"),
        ("CNAME", "web extra", "1 field needed, 2 given"),
        ("PTR", "a b", "1 field needed, 2 given"),
        ("MX", "10 mail extra", "2 fields needed, 3 given"),
        ("SRV", "0 5 1883 broker extra", "4 fields needed, 5 given"),
        ("SOA", "a b 1 2 3 4 5 6", "7 fields needed, 8 given"),
        ("CAA", '0 issue "x" extra', "3 fields needed, 4 given"),
    ],
)
def test_trailing_garbage_is_rejected(rtype: str, value: str, arity: str) -> None:
    with pytest.raises(RdataError, match=arity):
        parse(rtype, value)


def test_missing_field_is_rejected() -> None:
    with pytest.raises(RdataError, match="2 fields needed, 1 given"):
        parse("MX", "10")


def test_parse_takes_token_text_so_quoting_does_not_matter_for_numbers() -> None:
    assert rdata.parse("MX", [t.text for t in split('"10" mail')], ORIGIN) == rdata.parse(
        "MX", ["10", "mail"], ORIGIN)


# --- TTLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("300", 300),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1W2D3H4M5S", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("2147483647", 2**31 - 1),
    ],
)
def test_ttl_accepts_seconds_and_bind_units(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30m", "-5", "1.5h", "30s ", "1hh"])
def test_ttl_that_is_not_seconds_or_units_is_rejected_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(RdataError, match=r"is not a TTL \(seconds, or units like 1h30m\)"):
        parse_ttl(text)


def test_ttl_over_2_to_the_31_minus_1_is_a_range_error() -> None:
    with pytest.raises(RdataError, match="TTL 2147483648 is over 2147483647"):
        parse_ttl("2147483648")


def test_ttl_range_applies_to_the_total_of_all_units() -> None:
    with pytest.raises(RdataError, match="is over 2147483647"):
        parse_ttl("3551w")
