"""The packet cache: finished replies remembered by their query, as PowerDNS's packet cache
does: by the exact query bytes (after the ID) or by the normalized question; and `Sibling`
replies, by the query bytes without the name's first label. `QueryHandler` keeps one of
each and decides what goes in.

An LRU bounded in bytes: each entry is charged its key, its reply and a fixed overhead.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

from edgedns.dns.names import Name
from edgedns.dns.wire import HEADER

if TYPE_CHECKING:
    from edgedns.admin.metrics import Labels
    from edgedns.authority.answers import Answers
    from edgedns.authority.zone import Zone

ENTRY_OVERHEAD = 400
"""Bytes of Python objects around one entry: the key and reply bytes objects, the value
tuple, the ordered dict's slot and link (about 400, measured with tracemalloc)."""
SIBLING_OVERHEAD = 200
"""Bytes a `Sibling` holds beyond a plain entry: its header bytes, parent name and labels
(650 bytes an entry in all with a 30-byte key, measured with tracemalloc)."""
TUPLE_KEY_OVERHEAD = 120
"""Bytes of a normalized key beyond its name: the tuple and its small ints."""
MAX_QUERY = 512
"""Longer queries are not remembered (no real question needs more)."""


class PacketCache:
    """A query key (its bytes after the ID, or a tuple starting with the lowercased name) →
    a value whose first item is the reply's bytes; LRU, at most `max_bytes` charged."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[Any, tuple[Any, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: Any) -> tuple[Any, ...] | None:
        """The value for `key`, now the most recently used (the query path inlines this:
        `entries.get` and `entries.move_to_end`, sparing a method call per query)."""
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key: Any, value: tuple[Any, ...]) -> None:
        """Remember `value` (its first item the reply) for `key`; queries over `MAX_QUERY`
        bytes are not remembered."""
        if key.__class__ is bytes and len(key) > MAX_QUERY:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= _charge(key, old)
        self.entries[key] = value
        self.bytes += _charge(key, value)
        while self.bytes > self.max_bytes and self.entries:
            evicted_key, evicted = self.entries.popitem(last=False)
            self.bytes -= _charge(evicted_key, evicted)


def _charge(key: Any, value: tuple[Any, ...]) -> int:
    key_bytes = len(key) if key.__class__ is bytes else len(key[0]) + TUPLE_KEY_OVERHEAD
    extra = SIBLING_OVERHEAD if value.__class__ is Sibling else 0
    return key_bytes + len(value[0]) + ENTRY_OVERHEAD + extra


def sibling_key(data: bytes) -> bytes:
    """The key of `Sibling` replies for the query `data`: its bytes after the ID with the
    first label's content cut out (its length byte stays); empty when the question does
    not start with a label (the root, a malformed name). Only a query that parsed well
    leaves an entry, and the cut bytes cannot change how the rest parses, so a key found
    means a well-formed query."""
    first = data[HEADER] if len(data) > HEADER else 0
    if not 0 < first < 64:
        return b""
    return data[2 : HEADER + 1] + data[HEADER + 1 + first :]


class Sibling(NamedTuple):
    """A reply that every name under one parent gets, but for the name itself, unless that
    name is in the zone: NXDOMAIN, a wildcard's answer, a referral, when the parent is where
    the name landed (`Reply.siblings`). Kept by the query's bytes with the first label's
    content cut out (the header after the ID, that label's length byte, the rest of the
    message), so a flood of random names under one parent costs a dict lookup and a check
    that the name is absent, not a parse and a lookup each. Equal bytes after the label
    mean the same parent, type, flags and OPT, and the same offsets in the reply."""

    tail: bytes
    """The reply after the question (first: `PacketCache` charges it)."""
    head: bytes
    """The reply's header after the ID."""
    question_end: int
    labels: Labels
    """The metric labels (`QueryStats.count`)."""
    pool: Name | None
    generation: int
    """The pool whose addresses the reply holds, and that pool's health generation then."""
    limit_name: bytes | None
    """The rate-limit name when it is not the question's (NXDOMAIN: the zone)."""
    zone: Zone
    parent: Name

    @classmethod
    def of(cls, reply: bytes, name: Name, question_end: int, labels: Labels,
           pool: Name | None, generation: int, limit_name: bytes | None,
           answers: Answers) -> Sibling | None:
        """The entry for `reply`, the answer to `name`, which landed on a shared kind; None
        when `name` itself is in the zone (a delegation's own name is a referral, but its
        siblings are not)."""
        zone = answers.catalog.zone_for(name)
        if zone is None or not _absent(name, zone, answers):
            return None
        return cls(reply[question_end:], reply[2:HEADER], question_end, labels, pool,
                   generation, limit_name, zone, name[1:])

    def reply_for(self, data: bytes, answers: Answers) -> bytes | None:
        """The reply to `data` (whose `sibling_key` found this), or None when this entry does
        not hold for its name: the name is in the zone (or is a zone), or the pool's health
        changed since."""
        pool = self.pool
        if pool is not None and answers.pools.generation[pool] != self.generation:
            return None
        name = (data[HEADER + 1 : HEADER + 1 + data[HEADER]].lower(), *self.parent)
        if not _absent(name, self.zone, answers):
            return None
        return data[:2] + self.head + data[HEADER : self.question_end] + self.tail


def _absent(name: Name, zone: Zone, answers: Answers) -> bool:
    """Whether `name` has no node, empty non-terminal, delegation or zone of its own: where
    it lands then depends on its parent alone (`Zone.locate`)."""
    return not (name in zone.nodes or name in zone.empty_non_terminals or name in zone.cuts
                or name in answers.catalog.zones)
