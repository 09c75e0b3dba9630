"""Response cache for forwarded answers: TTLs count down, negatives per RFC 2308, stale per
RFC 8767, bounded by an LRU.

Entries keep the upstream reply as bytes (its OPT removed, ID and RD cleared) with the offsets
of every TTL field, so a hit costs a dict lookup and, at most once a second per entry,
rewriting the TTLs; then the same `wire.patch` as an authoritative answer.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from edgedns.dns import wire

STALE_TTL = 30
"""TTL of an answer served stale (RFC 8767 §4)."""

Key = tuple[bytes, int, bool, bool]
"""(lowercased wire-form name, type, DO bit, CD bit)."""


@dataclass(frozen=True, slots=True)
class CacheSettings:
    size: int = 10_000
    """Entries kept at most; the least recently used go first."""
    max_bytes: int = 64 << 20
    """Bytes the cached answers may take (see `Cache.charge`); the least recently used go
    first."""
    min_ttl: int = 0
    """Seconds an answer is kept at least, whatever its TTLs say."""
    max_ttl: int = 86_400
    """Seconds an answer is kept at most."""
    serve_stale: int = 3_600
    """Seconds past expiry an answer may still be served when no upstream answers; 0: never."""


class _Entry:
    __slots__ = ("body", "ttl_offsets", "ttls", "stored", "lifetime", "rendered_age", "rendered")

    def __init__(self, reply: wire.UpstreamReply, lifetime: int, now: float,
                 settings: CacheSettings) -> None:
        self.ttl_offsets = reply.ttl_offsets
        # Served TTLs obey the same bounds as how long we keep the answer, so no client is
        # told to keep it longer than we do (as Unbound and CoreDNS do).
        self.ttls = tuple(
            min(max(wire.ttl_at(reply.body, o), settings.min_ttl), settings.max_ttl)
            for o in reply.ttl_offsets
        )
        body = bytearray(reply.body)
        for offset, ttl in zip(self.ttl_offsets, self.ttls, strict=True):
            struct.pack_into("!I", body, offset, ttl)
        self.body = bytes(body)
        self.stored = now
        self.lifetime = lifetime
        self.rendered_age = 0
        self.rendered = self.body

    def at_age(self, age: int) -> bytes:
        """The body with every TTL lowered by `age` seconds (never below 0)."""
        if age != self.rendered_age:
            body = bytearray(self.body)
            for offset, ttl in zip(self.ttl_offsets, self.ttls, strict=True):
                struct.pack_into("!I", body, offset, max(ttl - age, 0))
            self.rendered, self.rendered_age = bytes(body), age
        return self.rendered

    def stale(self) -> bytes:
        body = bytearray(self.body)
        for offset in self.ttl_offsets:
            struct.pack_into("!I", body, offset, STALE_TTL)
        return bytes(body)


class Cache:
    def __init__(self, settings: CacheSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.stale_served = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> bytes | None:
        """A fresh answer's body with TTLs counted down, or None."""
        fresh = self.get_fresh(key)
        return fresh[0] if fresh is not None else None

    def get_fresh(self, key: Key) -> tuple[bytes, float] | None:
        """A fresh answer's body with TTLs counted down, and how many seconds that exact
        body stays right (until its TTLs next tick down, or it expires); or None."""
        entry = self._entries.get(key)
        if entry is not None:
            elapsed = self.clock() - entry.stored
            age = int(elapsed)
            if age < entry.lifetime:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.at_age(age), age + 1 - elapsed
        self.misses += 1
        return None

    def get_stale(self, key: Key) -> bytes | None:
        """An expired answer still within `serve_stale`, its TTLs set to 30 s, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = self.clock() - entry.stored
        if age > entry.lifetime + self.settings.serve_stale:
            return None
        self.stale_served += 1
        return entry.stale()

    def put(self, key: Key, reply: wire.UpstreamReply) -> None:
        """Keep `reply` for as long as its TTLs (or its SOA, when negative) allow."""
        ttl = reply.cache_ttl
        if ttl is None:
            return
        lifetime = min(max(ttl, self.settings.min_ttl), self.settings.max_ttl)
        if lifetime <= 0 and not self.settings.serve_stale:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= charge(key, old)
        entry = self._entries[key] = _Entry(reply, lifetime, self.clock(), self.settings)
        self.bytes += charge(key, entry)
        while self._entries and (len(self._entries) > self.settings.size
                                 or self.bytes > self.settings.max_bytes):
            evicted_key, evicted = self._entries.popitem(last=False)
            self.bytes -= charge(evicted_key, evicted)


ENTRY_OVERHEAD = 600
"""Bytes of Python objects around one cached answer (key, entry, tuples of offsets and TTLs,
the ordered dict's slot and link)."""


def charge(key: Key, entry: _Entry) -> int:
    """What one cached answer counts against `max_bytes`: its body twice (as stored and as
    last served, with TTLs counted down), its name, its offsets and a fixed overhead."""
    return 2 * len(entry.body) + len(key[0]) + 16 * len(entry.ttl_offsets) + ENTRY_OVERHEAD
