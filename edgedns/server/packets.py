"""The packet cache: finished replies remembered by their query, as PowerDNS's packet cache
does: by the exact query bytes (after the ID) or by the normalized question (`QueryHandler`
keeps one of each and decides what goes in).

An LRU bounded in bytes: each entry is charged its key, its reply and a fixed overhead.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

ENTRY_OVERHEAD = 400
"""Bytes of Python objects around one entry: the key and reply bytes objects, the value
tuple, the ordered dict's slot and link (about 400, measured with tracemalloc)."""
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
    return key_bytes + len(value[0]) + ENTRY_OVERHEAD
