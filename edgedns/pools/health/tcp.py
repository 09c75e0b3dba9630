"""TCP check: healthy when a connection to the target port completes within the timeout."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from edgedns.pools.health.checks import ProbeResult, Target, os_reason

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close with RST, so thousands of probes a second leave no TIME_WAIT."""


async def probe(target: Target) -> ProbeResult:
    """Connect to `target` and close at once; the scheduler bounds the time taken."""
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        start = time.monotonic()
        try:
            await asyncio.get_running_loop().sock_connect(sock, (target.address, target.port))
        except OSError as exc:
            return ProbeResult(False, os_reason(exc), time.monotonic() - start)
        return ProbeResult(True, "connected", time.monotonic() - start)
    finally:
        sock.close()
