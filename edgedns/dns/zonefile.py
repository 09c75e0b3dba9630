"""RFC 1035 §5 master files → records.

Supports ``$ORIGIN``, ``$TTL`` (RFC 2308), parentheses, comments, quoted strings, ``@``,
blank owners (repeat the previous owner), and the TTL and class fields in either order.
``$INCLUDE`` and ``$GENERATE`` are rejected: a zone's data lives in one file.
"""

from __future__ import annotations

from pathlib import Path

from edgedns.authority.zone import Record
from edgedns.dns import names, rdata
from edgedns.dns.presentation import Line, PresentationError, lines


class ZoneFileError(ValueError):
    """A master file that does not parse; the message starts with ``file:line:``."""


def load(path: Path, origin: names.Name, default_ttl: int) -> list[Record]:
    """Read the master file at `path` for the zone `origin`.

    Records without a TTL take ``$TTL`` when set, else `default_ttl`.
    Raises `ZoneFileError` (and `OSError` when the file cannot be read).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ZoneFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse(text, origin, default_ttl, str(path))


def parse(text: str, origin: names.Name, default_ttl: int, source: str) -> list[Record]:
    """Parse master-file `text`; `source` names it in errors."""
    records: list[Record] = []
    current_origin = origin
    ttl = default_ttl
    owner: names.Name | None = None
    lineno = 1
    try:
        for line in lines(text):
            lineno = line.lineno
            first = line.tokens[0].text
            if first.startswith("$") and not line.indented:
                current_origin, ttl = _directive(line, current_origin, ttl)
                continue
            owner, record = _record(line, owner, current_origin, ttl, f"{source}:{lineno}")
            records.append(record)
    except (PresentationError, rdata.RdataError, names.BadName) as exc:
        lineno = getattr(exc, "lineno", 1) if isinstance(exc, PresentationError) else lineno
        raise ZoneFileError(f"{source}:{lineno}: {exc}") from None
    return records


def _directive(line: Line, origin: names.Name, ttl: int) -> tuple[names.Name, int]:
    name = line.tokens[0].text.upper()
    args = [t.text for t in line.tokens[1:]]
    if name == "$ORIGIN" and len(args) == 1:
        return names.from_text(args[0], origin), ttl
    if name == "$TTL" and len(args) == 1:
        return origin, rdata.parse_ttl(args[0])
    if name in ("$ORIGIN", "$TTL"):
        raise rdata.RdataError(f"{name} takes exactly one argument")
    raise rdata.RdataError(f"directive {name} is not supported (use $ORIGIN or $TTL)")


def _record(
    line: Line, owner: names.Name | None, origin: names.Name, ttl: int, where: str
) -> tuple[names.Name, Record]:
    fields = [t for t in line.tokens]
    if not line.indented:
        owner = names.from_text(fields.pop(0).text, origin)
    if owner is None:
        raise rdata.RdataError("the first record needs an owner name")
    # TTL and class may come in either order before the type (RFC 1035 §5.1).
    for _ in range(2):
        if not fields:
            break
        head = fields[0].text
        if head.upper() == "IN":
            fields.pop(0)
        elif head[:1].isdigit():
            ttl = rdata.parse_ttl(fields.pop(0).text)
        elif head.upper() in ("CH", "HS", "CS"):
            raise rdata.RdataError(f"class {head.upper()} is not served; only IN")
    if not fields:
        raise rdata.RdataError("record has no type")
    rtype = fields.pop(0).text.upper()
    code, rd = rdata.parse(rtype, fields, origin)
    return owner, Record(owner, code, ttl, rd, where)
