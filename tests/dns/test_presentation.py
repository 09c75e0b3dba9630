"""The RFC 1035 §5.1 tokenizer shared by master files and YAML record values."""

from __future__ import annotations

import pytest

from edgedns.dns.presentation import Line, PresentationError, Token, lines, split, unescape


def texts(line: Line) -> list[str]:
    return [token.text for token in line.tokens]


def test_blank_space_separates_tokens_and_each_physical_line_is_a_logical_line() -> None:
    result = list(lines("www  A\t192.0.2.1\nmail A 192.0.2.2\n"))
    assert [texts(line) for line in result] == [
        ["www", "A", "192.0.2.1"],
        ["mail", "A", "192.0.2.2"],
    ]
    assert [line.lineno for line in result] == [1, 2]


def test_comment_runs_to_end_of_line_and_is_dropped() -> None:
    (line,) = lines("www A 192.0.2.1 ; the web server\n")
    assert texts(line) == ["www", "A", "192.0.2.1"]


def test_lines_holding_only_blanks_or_comments_yield_nothing_but_still_count() -> None:
    result = list(lines("; header\n\n   \nwww A 192.0.2.1\n"))
    assert len(result) == 1
    assert result[0].lineno == 4


def test_line_starting_with_blank_space_is_marked_indented() -> None:
    first, second = lines("www A 192.0.2.1\n  AAAA ::1\n")
    assert not first.indented
    assert second.indented


def test_quoted_string_is_one_token_keeping_spaces_and_semicolons() -> None:
    (line,) = lines('@ TXT "hello world; not a comment"\n')
    assert line.tokens[-1] == Token("hello world; not a comment", True)


def test_unquoted_token_is_marked_not_quoted() -> None:
    (line,) = lines("www\n")
    assert line.tokens == [Token("www", False)]


def test_empty_quoted_string_is_an_empty_token() -> None:
    (line,) = lines('@ TXT ""\n')
    assert line.tokens[-1] == Token("", True)


def test_escaped_quote_does_not_end_a_quoted_string_and_the_escape_is_kept() -> None:
    (line,) = lines(r'@ TXT "say \"hi\""' + "\n")
    assert line.tokens[-1] == Token(r"say \"hi\"", True)


def test_escaped_blank_and_semicolon_stay_inside_an_unquoted_token() -> None:
    (line,) = lines(r"a\ b c\;d" + "\n")
    assert texts(line) == [r"a\ b", r"c\;d"]


def test_parentheses_join_physical_lines_into_one_logical_line() -> None:
    text = "@ SOA ns1 host (\n  1 ; serial\n  3600\n  600 86400 30 )\nwww A 192.0.2.1\n"
    soa, www = lines(text)
    assert texts(soa) == ["@", "SOA", "ns1", "host", "1", "3600", "600", "86400", "30"]
    assert soa.lineno == 1
    assert www.lineno == 5


def test_close_parenthesis_without_open_is_an_error_with_its_line_number() -> None:
    with pytest.raises(PresentationError, match=r"'\)' without a matching '\('") as info:
        list(lines("www A 192.0.2.1\nmail A 192.0.2.2 )\n"))
    assert info.value.lineno == 2


def test_unclosed_parenthesis_is_an_error_at_the_line_where_it_opened() -> None:
    with pytest.raises(PresentationError, match=r"'\(' without a matching '\)'") as info:
        list(lines("www A 192.0.2.1\n@ SOA ns1 host (\n 1 2\n 3 4 5\n"))
    assert info.value.lineno == 2


def test_quoted_string_cannot_span_lines() -> None:
    with pytest.raises(PresentationError, match="unterminated quoted string") as info:
        list(lines('a A 192.0.2.1\n@ TXT "open\nclose"\n'))
    assert info.value.lineno == 2


def test_quoted_string_without_closing_quote_at_end_of_text_is_an_error() -> None:
    with pytest.raises(PresentationError, match="unterminated quoted string"):
        list(lines('@ TXT "open'))


def test_backslash_does_not_escape_a_line_break_so_later_line_numbers_stay_right() -> None:
    result = list(lines("a\\\nb\nc\n"))
    assert [(line.lineno, texts(line)) for line in result] == [(1, ["a\\"]), (2, ["b"]), (3, ["c"])]


def test_backslash_before_line_break_inside_quotes_is_an_unterminated_string() -> None:
    with pytest.raises(PresentationError, match="unterminated quoted string") as info:
        list(lines('a\n@ TXT "x\\\ny"\n'))
    assert info.value.lineno == 2


def test_carriage_returns_are_blank_space() -> None:
    (line,) = lines("www A 192.0.2.1\r\n")
    assert texts(line) == ["www", "A", "192.0.2.1"]


def test_last_line_without_newline_is_still_yielded() -> None:
    (line,) = lines("www A 192.0.2.1")
    assert texts(line) == ["www", "A", "192.0.2.1"]


def test_split_returns_the_tokens_of_one_record_value() -> None:
    assert split('10 "a b" c') == [Token("10", False), Token("a b", True), Token("c", False)]


def test_split_drops_a_trailing_comment() -> None:
    assert [t.text for t in split("10 mail ; backup")] == ["10", "mail"]


def test_split_rejects_a_value_spanning_several_lines() -> None:
    with pytest.raises(PresentationError, match="must be one line"):
        split("10\nmail")


def test_split_accepts_surrounding_newlines() -> None:
    assert [t.text for t in split("\n10 mail\n")] == ["10", "mail"]


def test_unescape_decodes_decimal_escapes_to_octets() -> None:
    assert unescape(r"\065\000\255") == b"A\x00\xff"


def test_unescape_takes_the_character_after_a_backslash_literally() -> None:
    assert unescape(r"a\"b\\c\;") == b'a"b\\c;'


def test_unescape_leaves_text_without_backslashes_as_utf8() -> None:
    assert unescape("café") == "café".encode()


def test_unescape_rejects_a_decimal_escape_over_255() -> None:
    with pytest.raises(PresentationError, match=r"escape \\256 is over 255"):
        unescape(r"\256")


def test_unescape_rejects_a_lone_trailing_backslash() -> None:
    with pytest.raises(PresentationError, match="lone backslash"):
        unescape("abc\\")
