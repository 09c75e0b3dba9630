"""RFC 1035 §5 master files → records, with errors that start ``file:line:``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from dnslib import QTYPE

from edgedns.authority.zone import Record
from edgedns.dns import names, zonefile
from edgedns.dns.zonefile import ZoneFileError
from tests.support import EXAMPLES, as_dnslib

ORIGIN = names.from_text("site.lan.")


def parse(text: str, default_ttl: int = 300) -> list[Record]:
    return list(zonefile.parse(textwrap.dedent(text), ORIGIN, default_ttl, "site.zone"))


def summary(records: list[Record]) -> list[tuple[str, str, int, str]]:
    """(owner, type, ttl, rdata) in presentation form, for readable comparisons."""
    return [(names.to_text(r.owner), QTYPE.get(r.rtype), r.ttl, str(as_dnslib(r.rtype, r.rdata)))
            for r in records]


def test_relative_owner_is_completed_with_the_zone_origin() -> None:
    assert summary(parse("www A 192.0.2.1\n")) == [("www.site.lan.", "A", 300, "192.0.2.1")]


def test_absolute_owner_is_kept_as_written() -> None:
    (record,) = parse("www.site.lan. A 192.0.2.1\n")
    assert names.to_text(record.owner) == "www.site.lan."


def test_owner_names_are_lowercased() -> None:
    (record,) = parse("WWW.Site.LAN. A 192.0.2.1\n")
    assert names.to_text(record.owner) == "www.site.lan."


def test_at_sign_owner_is_the_origin() -> None:
    (record,) = parse("@ MX 10 mail\n")
    assert summary([record]) == [("site.lan.", "MX", 300, "10 mail.site.lan.")]


def test_relative_names_in_record_data_are_completed_with_the_origin() -> None:
    (record,) = parse("www CNAME web\n")
    assert str(as_dnslib(record.rtype, record.rdata)) == "web.site.lan."


def test_blank_owner_repeats_the_previous_owner() -> None:
    records = parse("""\
        www A 192.0.2.1
            AAAA 2001:db8::1
    """)
    assert [names.to_text(r.owner) for r in records] == ["www.site.lan.", "www.site.lan."]


def test_first_record_without_an_owner_is_an_error() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:2: the first record needs an owner name$"):
        parse("$TTL 60\n  A 192.0.2.1\n")


def test_origin_directive_changes_how_later_relative_names_complete() -> None:
    records = parse("""\
        a A 192.0.2.1
        $ORIGIN sub.site.lan.
        b A 192.0.2.2
        c CNAME b
    """)
    assert summary(records) == [
        ("a.site.lan.", "A", 300, "192.0.2.1"),
        ("b.sub.site.lan.", "A", 300, "192.0.2.2"),
        ("c.sub.site.lan.", "CNAME", 300, "b.sub.site.lan."),
    ]


def test_relative_origin_directive_is_relative_to_the_current_origin() -> None:
    (record,) = parse("$ORIGIN sub\nb A 192.0.2.2\n")
    assert names.to_text(record.owner) == "b.sub.site.lan."


def test_directives_are_case_insensitive() -> None:
    (record,) = parse("$origin sub.site.lan.\n$ttl 60\nb A 192.0.2.2\n")
    assert summary([record]) == [("b.sub.site.lan.", "A", 60, "192.0.2.2")]


def test_record_without_ttl_takes_the_default_before_any_ttl_directive() -> None:
    (record,) = parse("www A 192.0.2.1\n", default_ttl=123)
    assert record.ttl == 123


def test_ttl_directive_sets_the_ttl_of_later_records_without_one() -> None:
    records = parse("""\
        a A 192.0.2.1
        $TTL 1h
        b A 192.0.2.2
        c 60 A 192.0.2.3
        d A 192.0.2.4
    """)
    assert [r.ttl for r in records] == [300, 3600, 60, 3600]


@pytest.mark.parametrize("fields", ["60 IN A", "IN 60 A", "60 A", "IN A", "in 60 a"])
def test_ttl_and_class_may_come_in_either_order_or_be_left_out(fields: str) -> None:
    (record,) = parse(f"www {fields} 192.0.2.1\n")
    expected_ttl = 60 if "60" in fields else 300
    assert summary([record]) == [("www.site.lan.", "A", expected_ttl, "192.0.2.1")]


def test_ttl_with_units_is_accepted_in_a_record() -> None:
    (record,) = parse("www 1h30m A 192.0.2.1\n")
    assert record.ttl == 5400


def test_blank_owner_line_may_carry_ttl_and_class() -> None:
    records = parse("www A 192.0.2.1\n   60 IN AAAA ::1\n")
    assert summary(records)[1] == ("www.site.lan.", "AAAA", 60, "::1")


def test_class_other_than_in_is_rejected() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:1: class CH is not served; only IN$"):
        parse("www CH A 192.0.2.1\n")


def test_soa_spanning_lines_in_parentheses_with_comments_is_one_record() -> None:
    records = parse("""\
        @ IN SOA ns1 hostmaster (
                 7     ; serial
                 1h    ; refresh
                 10m   ; retry
                 1w    ; expire
                 30 )  ; minimum
          IN NS ns1
    """)
    soa, ns = records
    assert as_dnslib(soa.rtype, soa.rdata).times == (7, 3600, 600, 604800, 30)
    assert str(as_dnslib(soa.rtype, soa.rdata).rname) == "hostmaster.site.lan."
    assert ns.where == 7  # its line; Zone.build names the file in errors


def test_each_record_remembers_its_line() -> None:
    records = parse("; comment\na A 192.0.2.1\n\nb A 192.0.2.2\n")
    assert [r.where for r in records] == [2, 4]


def test_quoted_txt_strings_keep_their_spaces() -> None:
    (record,) = parse('@ TXT "v=spf1 -all" "second"\n')
    assert as_dnslib(record.rtype, record.rdata).data == [b"v=spf1 -all", b"second"]


def test_include_directive_is_rejected_with_file_and_line() -> None:
    with pytest.raises(
        ZoneFileError, match=r"^site.zone:2: directive \$INCLUDE is not supported"
    ):
        parse("www A 192.0.2.1\n$INCLUDE other.zone\n")


def test_generate_directive_is_rejected_naming_the_supported_ones() -> None:
    with pytest.raises(ZoneFileError, match=r"\$GENERATE is not supported \(use \$ORIGIN or \$TTL"):
        parse("$GENERATE 1-10 host$ A 192.0.2.$\n")


@pytest.mark.parametrize("line", ["$TTL\n", "$TTL 1 2\n", "$ORIGIN\n", "$ORIGIN a. b.\n"])
def test_directive_with_the_wrong_number_of_arguments_is_rejected(line: str) -> None:
    with pytest.raises(ZoneFileError, match=r"^site.zone:1: \$(TTL|ORIGIN) takes exactly one"):
        parse(line)


def test_bad_ttl_directive_is_an_error_with_file_and_line() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:1: 'soon' is not a TTL"):
        parse("$TTL soon\n")


def test_bad_origin_directive_is_an_error_with_file_and_line() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:1: 'a..b.' has an empty label$"):
        parse("$ORIGIN a..b.\n")


def test_bad_record_value_is_an_error_with_file_line_and_expected_syntax() -> None:
    with pytest.raises(ZoneFileError) as info:
        parse("a A 192.0.2.1\n\nmail MX mail 10\n")
    assert str(info.value) == (
        "site.zone:3: bad MX value 'mail 10': 'mail' is not a number; "
        "expected <preference 0-65535> <exchange name>"
    )


def test_bad_owner_name_is_an_error_with_file_and_line() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:2: 'a..b' has an empty label$"):
        parse("a A 192.0.2.1\na..b A 192.0.2.2\n")


def test_record_without_a_type_is_an_error() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:1: record has no type$"):
        parse("www 60 IN\n")


def test_unknown_type_is_an_error_listing_the_supported_types() -> None:
    with pytest.raises(ZoneFileError, match=r"^site.zone:1: unsupported record type 'HINFO'"):
        parse("www HINFO pc linux\n")


def test_tokenizer_error_carries_its_own_line_number() -> None:
    with pytest.raises(ZoneFileError, match=r"^site.zone:3: '\)' without a matching '\('$"):
        parse("a A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3 )\n")


def test_unclosed_parenthesis_reports_the_line_where_it_opened() -> None:
    with pytest.raises(ZoneFileError, match=r"^site.zone:2: '\(' without a matching '\)'$"):
        parse("a A 192.0.2.1\n@ SOA ns1 hostmaster ( 1 2\n 3 4 5\n")


def test_error_inside_a_multi_line_record_reports_the_line_where_it_starts() -> None:
    with pytest.raises(ZoneFileError, match="^site.zone:2: bad SOA value"):
        parse("a A 192.0.2.1\n@ SOA ns1 hostmaster (\n x 2 3 4 5 )\n")


def test_load_reads_the_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "site.zone"
    path.write_text("www A 192.0.2.1\nbad A nowhere\n")
    with pytest.raises(ZoneFileError, match=f"^{path}:2: bad A value 'nowhere'"):
        list(zonefile.load(path, ORIGIN, 300))


def test_load_returns_records_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "site.zone"
    path.write_text("www A 192.0.2.1\n")
    (record,) = zonefile.load(path, ORIGIN, 300)
    assert record.where == 1


def test_load_of_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        zonefile.load(tmp_path / "missing.zone", ORIGIN, 300)


def test_load_of_a_file_that_is_not_utf8_is_a_zone_file_error(tmp_path: Path) -> None:
    path = tmp_path / "site.zone"
    path.write_bytes(b"www A 192.0.2.1\n\xff\n")
    with pytest.raises(ZoneFileError, match=f"^{path}: not UTF-8 text"):
        zonefile.load(path, ORIGIN, 300)


def test_example_reverse_zone_loads() -> None:
    path = EXAMPLES / "reverse.zone"
    records = list(zonefile.load(path, names.from_text("0.0.127.in-addr.arpa."), 300))
    types = [QTYPE.get(r.rtype) for r in records]
    assert types == ["SOA", "NS", "PTR", "PTR", "PTR", "PTR", "PTR"]
    assert str(as_dnslib(records[2].rtype, records[2].rdata)) == "ns1.site.lan."
