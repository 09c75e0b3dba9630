"""HTTP and HTTPS checks: GET a path, judge the status code and optionally the body.

The standard library has no asyncio HTTP client, and a check needs only one request per
connection, a status line and a bounded body, so this speaks that much HTTP/1.1 itself.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from edgedns.pools.health.checks import ProbeResult, Target, os_reason

MAX_BODY = 64 * 1024
"""Body bytes read for `expect_body`; a check never reads an unbounded response."""
MAX_HEADER = 16 * 1024


def tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def probe(target: Target, tls: ssl.SSLContext | None = None) -> ProbeResult:
    """GET `target.path`; healthy when the status is expected and the body matches."""
    start = time.monotonic()
    host = target.host or target.address
    try:
        reader, writer = await asyncio.open_connection(
            target.address, target.port, ssl=tls,
            server_hostname=host if tls is not None else None,
        )
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(False, _why(exc), time.monotonic() - start)
    try:
        authority = f"[{host}]" if ":" in host else host
        writer.write(
            f"GET {target.path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: edgedns-health\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER:
            return ProbeResult(False, "response header too large", time.monotonic() - start)
        status = _status(head)
        if status is None:
            return ProbeResult(False, "not an HTTP response", time.monotonic() - start)
        if status not in target.expect_status:
            return ProbeResult(False, f"status {status}", time.monotonic() - start)
        if target.expect_body is not None:
            body = await _read_body(reader)
            if target.expect_body.encode() not in body:
                return ProbeResult(False, f"status {status}, body lacks {target.expect_body!r}",
                                   time.monotonic() - start)
        return ProbeResult(True, f"status {status}", time.monotonic() - start)
    except asyncio.IncompleteReadError:
        return ProbeResult(False, "connection closed early", time.monotonic() - start)
    except asyncio.LimitOverrunError:
        return ProbeResult(False, "response header too large", time.monotonic() - start)
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(False, _why(exc), time.monotonic() - start)
    finally:
        writer.transport.abort()


def _status(head: bytes) -> int | None:
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


async def _read_body(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while len(body) < MAX_BODY:
        chunk = await reader.read(MAX_BODY - len(body))
        if not chunk:
            break
        body += chunk
    return body


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return os_reason(exc)
