"""RFC 1035 §5 master files → records.

Supports ``$ORIGIN``, ``$TTL`` (RFC 2308), parentheses, comments, quoted strings, ``@``,
blank owners (repeat the previous owner), and the TTL and class fields in either order.
``$INCLUDE`` and ``$GENERATE`` are rejected: a zone's data lives in one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from edgedns.authority.zone import Record
from edgedns.dns import names, rdata
from edgedns.dns.presentation import PresentationError, logical_line


class ZoneFileError(ValueError):
    """A master file that does not parse; the message starts with ``file:line:``."""


def load(path: Path, origin: names.Name, default_ttl: int) -> Iterator[Record]:
    """Read the master file at `path` for the zone `origin`.

    Records without a TTL take ``$TTL`` when set, else `default_ttl`. The file is read at
    once (`OSError` when it cannot be, `ZoneFileError` when it is not UTF-8); its records
    are parsed as they are taken, raising `ZoneFileError` on the first bad one.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ZoneFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse(text, origin, default_ttl, str(path))


def parse(text: str, origin: names.Name, default_ttl: int, source: str) -> Iterator[Record]:
    """The records of master-file `text`, parsed as they are taken (a big zone is never
    held twice); `source` names it in errors. A record's `where` is its line number."""
    current_origin = origin
    ttl = default_ttl
    owner: names.Name | None = None
    lineno = 1
    types = rdata.TYPE_CODES
    try:
        for lineno, indented, fields in _lines(text):
            if len(fields) == 3 and fields[1] in types and not indented and (
                fields[0][0] != "$"
            ):
                # The common line of a big zone, "owner TYPE value", without the general
                # parse below.
                owner = names.from_text(fields[0], current_origin)
                code, data = rdata.parse(fields[1], fields[2:], current_origin)
                yield _new_record(Record, (owner, code, ttl, data, lineno))
                continue
            if fields[0].startswith("$") and not indented:
                current_origin, ttl = _directive(fields, current_origin, ttl)
                continue
            owner, record = _record(fields, indented, owner, current_origin, ttl, lineno)
            yield record
    except (PresentationError, rdata.RdataError, names.BadName) as exc:
        lineno = getattr(exc, "lineno", lineno) if isinstance(exc, PresentationError) else lineno
        raise ZoneFileError(f"{source}:{lineno}: {exc}") from None


def _lines(text: str) -> Iterator[tuple[int, bool, list[str]]]:
    """(line number, indented, fields) per logical line. Lines without quotes, parentheses,
    comments or escapes (nearly all of a big zone) are split by `str.split`; the others go
    through the full tokenizer (`edgedns.dns.presentation`)."""
    pos, lineno, n = 0, 1, len(text)
    find = text.find
    while pos < n:
        end = find("\n", pos)
        if end < 0:
            end = n
        line = text[pos:end]
        if not ('"' in line or "(" in line or ")" in line or ";" in line or "\\" in line):
            fields = line.split()
            if fields:
                yield lineno, line[0] in " \t", fields
            pos, lineno = end + 1, lineno + 1
            continue
        logical, pos, lineno_after = logical_line(text, pos, lineno)
        if logical is not None:
            yield logical.lineno, logical.indented, [token.text for token in logical.tokens]
        lineno = lineno_after


def _directive(fields: list[str], origin: names.Name, ttl: int) -> tuple[names.Name, int]:
    name = fields[0].upper()
    args = fields[1:]
    if name == "$ORIGIN" and len(args) == 1:
        return names.from_text(args[0], origin), ttl
    if name == "$TTL" and len(args) == 1:
        return origin, rdata.parse_ttl(args[0])
    if name in ("$ORIGIN", "$TTL"):
        raise rdata.RdataError(f"{name} takes exactly one argument")
    raise rdata.RdataError(f"directive {name} is not supported (use $ORIGIN or $TTL)")


def _record(
    fields: list[str], indented: bool, owner: names.Name | None, origin: names.Name, ttl: int,
    lineno: int,
) -> tuple[names.Name, Record]:
    at = 0
    if not indented:
        owner = names.from_text(fields[0], origin)
        at = 1
    if owner is None:
        raise rdata.RdataError("the first record needs an owner name")
    # TTL and class may come in either order before the type (RFC 1035 §5.1).
    for _ in range(2):
        if at >= len(fields):
            break
        head = fields[at]
        if head in rdata.TYPE_CODES:
            break
        if head.upper() == "IN":
            at += 1
        elif head[:1].isdigit():
            ttl = rdata.parse_ttl(head)
            at += 1
        elif head.upper() in ("CH", "HS", "CS"):
            raise rdata.RdataError(f"class {head.upper()} is not served; only IN")
        else:
            break  # the type
    if at >= len(fields):
        raise rdata.RdataError("record has no type")
    code, data = rdata.parse(fields[at], fields[at + 1 :], origin)
    return owner, _new_record(Record, (owner, code, ttl, data, lineno))


_new_record = tuple.__new__
"""`Record` without its keyword-handling __new__: a big zone makes a million of them."""
