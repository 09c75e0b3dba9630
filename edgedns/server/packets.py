"""The packet cache: finished replies remembered by the exact bytes of the query (after its
ID), as PowerDNS's packet cache does, so a repeated query costs a dict lookup.

Only replies that depend on nothing but those bytes go in (`QueryHandler` decides). The cache
is an LRU bounded in bytes: each entry is charged its key, its reply and a fixed overhead.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

ENTRY_OVERHEAD = 400
"""Bytes of Python objects around one entry: the key and reply bytes objects, the value
tuple, the ordered dict's slot and link (about 400, measured with tracemalloc)."""
MAX_QUERY = 512
"""Longer queries are not remembered (no real question needs more)."""


class PacketCache:
    """Query bytes (after the ID) → a value whose first item is the reply bytes after the ID;
    LRU, at most `max_bytes` charged."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[Any, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> tuple[Any, ...] | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: bytes, value: tuple[Any, ...]) -> None:
        """Remember `value` (its first item the reply tail) for `key`; queries over
        `MAX_QUERY` bytes are not remembered."""
        if len(key) > MAX_QUERY:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _charge(key, old)
        self._entries[key] = value
        self.bytes += _charge(key, value)
        while self.bytes > self.max_bytes and self._entries:
            evicted_key, evicted = self._entries.popitem(last=False)
            self.bytes -= _charge(evicted_key, evicted)


def _charge(key: bytes, value: tuple[Any, ...]) -> int:
    return len(key) + len(value[0]) + ENTRY_OVERHEAD
