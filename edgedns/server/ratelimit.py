"""Rate limits on the query path: a token bucket, and response-rate limiting (RRL) for UDP,
both cheap enough to consult per query."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field

from edgedns.dns import wire

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class TokenBucket:
    """Allows `rate` events per second on average and bursts of up to `burst`."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Spend one token if there is one (refilled for the time since the last call)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Response-rate limiting (RRL), as NSD and Knot do it, for UDP replies."""

    responses_per_second: int = 200
    """Replies per second one client prefix gets for one name and kind of reply."""
    slip: int = 2
    """Of the replies over the rate, every `slip`-th goes out truncated (TC=1: a real client
    retries over TCP, which cannot be spoofed) and the rest are dropped; 0 drops them all."""
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                   ipaddress.ip_network("::1/128"))
    """Clients never limited: loopback, whose sources cannot be spoofed from the network."""


MAX_BUCKETS = 100_000
"""Buckets kept at most (about 200 bytes each); the least recently used go first."""
_NOERROR, _NXDOMAIN = 0, 3


class ResponseRateLimit:
    """Decides per UDP reply: send it, send it truncated (slip), or drop it.

    A bucket is (client prefix, kind of reply, name): the question's name for answers,
    NODATA and errors, the zone for NXDOMAIN, so a flood of random names in one zone shares
    one bucket. Replies within `responses_per_second` (a burst of one second's worth) are
    never touched; a bucket over the rate stays limited until its sender slows down."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self.rate = float(settings.responses_per_second)
        self._buckets: OrderedDict[tuple, list[float]] = OrderedDict()
        self.prefixes: dict[str, bytes | None] = {}
        """Client address → its prefix (None: exempt); cleared when it grows large. The
        handler reads it to skip exempt clients without a call."""
        self._over = 0
        self.dropped = 0
        self.slipped = 0

    def limit(self, client: str, reply: bytes, name: bytes, question_end: int,
              now: float) -> bytes | None:
        """`reply`, its truncated form, or None (drop)."""
        prefix = self.prefixes.get(client, b"")
        if prefix == b"":
            prefix = self._prefix(client)
        if prefix is None:
            return reply
        rcode = reply[3] & 0x0F
        kind = rcode if rcode != _NOERROR else (0 if reply[6] or reply[7] else 1)
        key = (prefix, kind, name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self.rate, now]
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self.rate, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1:
            bucket[0] -= 1
            return reply
        # Limited replies count too (as BIND and NSD count them), up to a second's worth of
        # debt: a source that stays over the rate stays limited, instead of getting the rate
        # through in full every second.
        bucket[0] = max(bucket[0] - 1, -self.rate)
        self._over += 1
        slip = self.settings.slip
        if slip and self._over % slip == 0:
            self.slipped += 1
            return wire.truncated_keeping_opt(reply, question_end)
        self.dropped += 1
        return None

    def _prefix(self, client: str) -> bytes | None:
        if len(self.prefixes) >= 10_000:
            self.prefixes.clear()  # spoofed sources: recomputing costs a parse, no more
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            prefix = None
        else:
            if any(address in network for network in self.settings.exempt):
                prefix = None
            else:
                bits = (self.settings.ipv4_prefix if address.version == 4
                        else self.settings.ipv6_prefix)
                network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
                prefix = network.network_address.packed
        self.prefixes[client] = prefix
        return prefix

