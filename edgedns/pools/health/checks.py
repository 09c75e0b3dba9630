"""What a health check is: its spec (from config), its target, and a probe's result."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

CHECK_TYPES = ("icmp", "tcp", "http", "https", "none")


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A check as configured (``defaults.check`` merged with pool and member overrides)."""

    type: str = "icmp"
    interval: float = 0.5
    """Seconds between the starts of two probes of one target."""
    timeout: float = 0.1
    """Seconds a probe may take before it counts as failed."""
    fall: int = 5
    """Consecutive failures that take an up member down."""
    rise: int = 2
    """Consecutive successes that bring a down member up."""
    retry_interval: float = 0.1
    """Seconds between probe starts while a change is being confirmed (after a failure of an
    up member, or a success of a down one), so `fall` failures confirm a dead host within a
    fraction of a second while one lost packet is forgiven (HAProxy's `fastinter`)."""
    port: int | None = None
    """tcp/http/https: the port probed (http 80 and https 443 when unset)."""
    address: str | None = None
    """Probe this address instead of the member's own (the answer still gives the member's)."""
    path: str = "/"
    """http/https: the path requested with GET."""
    expect_status: tuple[int, ...] = tuple(range(200, 400))
    """http/https: status codes that count as healthy."""
    expect_body: str | None = None
    """http/https: a substring the first 64 KiB of the body must contain."""
    host: str | None = None
    """http/https: the Host header (and TLS server name); the target address when unset."""
    verify_tls: bool = False
    """https: verify the server certificate against the system's CAs (and `host`)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to probe. Members whose checks agree on every field share one probe."""

    type: str
    address: str
    port: int | None
    path: str
    expect_status: tuple[int, ...]
    expect_body: str | None
    host: str | None
    verify_tls: bool
    interval: float
    timeout: float
    fall: int
    rise: int
    retry_interval: float
    _hash: int = field(init=False, repr=False, compare=False)
    """Computed once: targets key the scheduler's and the pools' tables, hashed per probe,
    and `expect_status` alone holds 200 codes by default."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((
            self.type, self.address, self.port, self.path, self.expect_status,
            self.expect_body, self.host, self.verify_tls, self.interval, self.timeout,
            self.fall, self.rise, self.retry_interval)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def for_member(cls, spec: CheckSpec, member_address: str) -> Target:
        port = spec.port
        if port is None and spec.type in ("http", "https"):
            port = 80 if spec.type == "http" else 443
        return cls(
            spec.type, spec.address or member_address, port, spec.path, spec.expect_status,
            spec.expect_body, spec.host, spec.verify_tls, spec.interval, spec.timeout,
            spec.fall, spec.rise, spec.retry_interval,
        )

    def __str__(self) -> str:
        if self.type == "icmp" or self.port is None:
            return f"{self.type} {self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        path = self.path if self.type in ("http", "https") else ""
        return f"{self.type} {host}:{self.port}{path}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    reason: str
    """Why, in a few words: "echo reply", "connection refused", "status 503", "timeout"."""
    rtt: float | None = None
    """Seconds from sending to the verdict, when the target answered at all."""


def os_reason(exc: OSError) -> str:
    """The OS's words for a socket error ("Connection refused"), alike on every event loop:
    the stdlib loop words a refused connect "Connect call failed ('127.0.0.1', 80)"."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__
