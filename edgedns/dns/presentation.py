"""The RFC 1035 §5.1 presentation syntax: tokens, quoting, escapes, comments, parentheses.

Shared by master files (`edgedns.dns.zonefile`) and the record values written in YAML
(`edgedns.config`), so both accept exactly the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

SHOWN_MAX = 100
"""Characters of a bad value an error message repeats; the rest is elided."""


def shown(value: object) -> str:
    """`value` as error messages quote it: its repr, cut to about `SHOWN_MAX` characters."""
    text = repr(value)
    if len(text) <= SHOWN_MAX:
        return text
    return f"{text[:SHOWN_MAX]}… ({len(text)} characters)"


def brief(text: str) -> str:
    """`text` (a message that may repeat a bad value) cut to about `SHOWN_MAX` characters."""
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "…"


class PresentationError(ValueError):
    """Text that does not tokenize; `lineno` counts from 1 within the parsed text."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    """The token as written, quotes removed, backslash escapes kept (see `unescape`)."""
    quoted: bool


@dataclass(frozen=True, slots=True)
class Line:
    """One logical line: parentheses may have joined several physical lines."""

    lineno: int
    indented: bool
    """True when the line starts with blank space, i.e. it has no owner field."""
    tokens: list[Token]


def lines(text: str) -> Iterator[Line]:
    """Split master-file text into logical lines of tokens, dropping comments."""
    pos, lineno = 0, 1
    while pos < len(text):
        line, pos, lineno = logical_line(text, pos, lineno)
        if line is not None:
            yield line


def logical_line(text: str, pos: int, lineno: int) -> tuple[Line | None, int, int]:
    """Tokenize the logical line starting at `pos` (the start of physical line `lineno`):
    (the line, or None when it holds no tokens; where the next one starts; its number)."""
    tokens: list[Token] = []
    depth = 0
    start_lineno = lineno
    indented = text[pos : pos + 1] in (" ", "\t")
    i = pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            lineno += 1
            i += 1
            if depth == 0:
                break
        elif c in " \t\r":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            if depth == 0:
                raise PresentationError("')' without a matching '('", lineno)
            depth -= 1
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\n":
                    raise PresentationError("unterminated quoted string", lineno)
                j += _escape_width(text, j)
            if j >= n:
                raise PresentationError("unterminated quoted string", lineno)
            tokens.append(Token(text[i + 1 : j], True))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                j += _escape_width(text, j)
            tokens.append(Token(text[i:j], False))
            i = j
    if depth:
        raise PresentationError("'(' without a matching ')'", start_lineno)
    return (Line(start_lineno, indented, tokens) if tokens else None), i, lineno


def _escape_width(text: str, i: int) -> int:
    """Characters taken by ``text[i]``: 2 for a backslash and the character it escapes.

    A backslash never escapes a line break, so line numbers stay right; `unescape` then
    reports it as a lone backslash.
    """
    return 2 if text[i] == "\\" and text[i + 1 : i + 2] not in ("", "\n") else 1


def split(text: str) -> list[Token]:
    """Tokenize a single record value (as written in YAML)."""
    if "\n" in text.strip():
        raise PresentationError("a record value must be one line")
    out = [token for line in lines(text) for token in line.tokens]
    return out


def unescape(text: str) -> bytes:
    """Decode ``\\DDD`` (decimal octet) and ``\\X`` (literal X) escapes into octets."""
    raw = text.encode("utf-8")
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        digits = raw[i + 1 : i + 4]
        if len(digits) == 3 and digits.isdigit():
            value = int(digits)
            if value > 255:
                raise PresentationError(f"escape \\{digits.decode()} is over 255")
            out.append(value)
            i += 4
        elif i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
        else:
            raise PresentationError("text ends in a lone backslash")
    return bytes(out)
