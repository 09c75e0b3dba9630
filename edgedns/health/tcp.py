"""TCP check: healthy when a connection to the target port completes within the timeout."""

from __future__ import annotations

import asyncio
import time

from edgedns.health.checks import ProbeResult, Target, os_reason


async def probe(target: Target) -> ProbeResult:
    """Connect to `target` and close at once; the scheduler bounds the time taken."""
    start = time.monotonic()
    try:
        _, writer = await asyncio.open_connection(target.address, target.port)
    except OSError as exc:
        return ProbeResult(False, os_reason(exc), time.monotonic() - start)
    rtt = time.monotonic() - start
    writer.transport.abort()  # no FIN handshake to wait for: the verdict is in
    return ProbeResult(True, "connected", rtt)
