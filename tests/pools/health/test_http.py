"""HTTP check: GET a path over a real loopback connection, judge status and body."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from edgedns.pools.health import http
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target
from edgedns.pools.health.scheduler import Scheduler

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def response(status: str = "200 OK", body: bytes = b"", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}"
            "Connection: close\r\n\r\n").encode() + body


def answering(payload: bytes) -> Reply:
    """A handler that reads the request head, then sends `payload` and closes."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(payload)
        await writer.drain()
        writer.close()

    return reply


def probe(reply: Reply, **check: Any) -> tuple[ProbeResult, list[bytes]]:
    """Run `reply` as an HTTP server on 127.0.0.1 and probe it once; (result, request heads)."""
    requests: list[bytes] = []

    async def main() -> ProbeResult:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            original = reader.readuntil

            async def recording(separator: bytes = b"\n") -> bytes:
                data = await original(separator)
                requests.append(data)
                return data

            reader.readuntil = recording  # type: ignore[method-assign]
            try:
                await reply(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the prober hung up first

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            target = Target.for_member(CheckSpec(type="http", port=port, **check), "127.0.0.1")
            return await asyncio.wait_for(http.probe(target), 5)

    return asyncio.run(main()), requests


def test_an_expected_status_is_healthy() -> None:
    result, _ = probe(answering(response("200 OK")))
    assert (result.ok, result.reason) == (True, "status 200")
    assert result.rtt is not None and result.rtt >= 0


def test_a_redirect_is_healthy_by_default() -> None:
    assert probe(answering(response("302 Found")))[0].ok


def test_a_status_outside_expect_status_is_unhealthy() -> None:
    result, _ = probe(answering(response("503 Service Unavailable")))
    assert (result.ok, result.reason) == (False, "status 503")


def test_expect_status_replaces_the_default_range() -> None:
    assert probe(answering(response("204 No Content")), expect_status=(204,))[0].ok
    result, _ = probe(answering(response("200 OK")), expect_status=(204,))
    assert (result.ok, result.reason) == (False, "status 200")


def test_the_request_is_a_get_of_the_path_with_the_host_header() -> None:
    _, requests = probe(answering(response()), path="/healthz?full=1", host="app.site.lan")
    lines = requests[0].decode().split("\r\n")
    assert lines[0] == "GET /healthz?full=1 HTTP/1.1"
    assert "Host: app.site.lan" in lines
    assert "Connection: close" in lines


def test_the_host_header_defaults_to_the_target_address() -> None:
    _, requests = probe(answering(response()))
    assert "Host: 127.0.0.1" in requests[0].decode().split("\r\n")


def test_expect_body_present_in_the_body_is_healthy() -> None:
    result, _ = probe(answering(response(body=b'{"state": "ready"}')), expect_body="ready")
    assert (result.ok, result.reason) == (True, "status 200")


def test_expect_body_absent_from_the_body_is_unhealthy() -> None:
    result, _ = probe(answering(response(body=b'{"state": "starting"}')), expect_body="ready")
    assert (result.ok, result.reason) == (False, "status 200, body lacks 'ready'")


def test_expect_body_is_looked_for_in_the_first_64k_of_the_body_only() -> None:
    late = b"x" * http.MAX_BODY + b"ready"
    assert not probe(answering(response(body=late)), expect_body="ready")[0].ok
    early = b"x" * (http.MAX_BODY - 5) + b"ready" + b"x" * 1000
    assert probe(answering(response(body=early)), expect_body="ready")[0].ok


def test_expect_body_is_not_judged_when_the_status_is_wrong() -> None:
    result, _ = probe(answering(response("500 Oops", body=b"ready")), expect_body="ready")
    assert (result.ok, result.reason) == (False, "status 500")


def test_a_response_header_over_16k_is_unhealthy() -> None:
    big = response(headers=f"X-Padding: {'p' * http.MAX_HEADER}\r\n")
    result, _ = probe(answering(big))
    assert (result.ok, result.reason) == (False, "response header too large")


def test_a_response_header_beyond_the_read_buffer_is_unhealthy() -> None:
    huge = response(headers=f"X-Padding: {'p' * 200_000}\r\n")
    result, _ = probe(answering(huge))
    assert (result.ok, result.reason) == (False, "response header too large")


def test_garbage_instead_of_http_is_unhealthy() -> None:
    result, _ = probe(answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    assert (result.ok, result.reason) == (False, "not an HTTP response")


def test_a_non_numeric_status_is_not_http() -> None:
    result, _ = probe(answering(b"HTTP/1.1 OK fine\r\n\r\n"))
    assert (result.ok, result.reason) == (False, "not an HTTP response")


def test_a_connection_closed_before_the_header_ends_is_unhealthy() -> None:
    result, _ = probe(answering(b"HTTP/1.1 200 OK\r\nContent-"))
    assert (result.ok, result.reason) == (False, "connection closed early")


def test_a_refused_connection_is_unhealthy() -> None:
    async def main() -> ProbeResult:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        target = Target.for_member(CheckSpec(type="http", port=port), "127.0.0.1")
        return await asyncio.wait_for(http.probe(target), 5)

    result = asyncio.run(main())
    assert (result.ok, result.reason) == (False, "Connection refused")


def test_https_to_a_plain_http_server_is_an_unhealthy_tls_failure() -> None:
    async def main() -> ProbeResult:
        async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(response())  # no TLS: the client's handshake gets HTTP back
            await writer.drain()
            await reader.read()

        server = await asyncio.start_server(plain, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            target = Target.for_member(CheckSpec(type="https", port=port), "127.0.0.1")
            return await asyncio.wait_for(http.probe(target, http.tls_context(False)), 5)

    result = asyncio.run(main())
    assert not result.ok
    assert result.reason.startswith("TLS: ")


@pytest.mark.parametrize("verify", [False, True])
def test_tls_context_verifies_certificates_only_when_asked(verify) -> None:
    import ssl

    context = http.tls_context(verify)
    assert (context.verify_mode == ssl.CERT_REQUIRED) is verify
    assert context.check_hostname is verify


def test_a_server_that_never_answers_is_cut_by_the_scheduler_timeout() -> None:
    async def main() -> list[ProbeResult]:
        hung = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            try:
                await reader.read()  # never answers; returns when the prober gives up
            except ConnectionError:
                pass
            hung.set()
            writer.close()

        results: list[ProbeResult] = []
        got = asyncio.Event()
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            spec = CheckSpec(type="http", port=port, interval=5.0, timeout=0.2)
            scheduler = Scheduler(lambda _t, r: (results.append(r), got.set()))
            scheduler.set_targets([Target.for_member(spec, "127.0.0.1")])
            scheduler.start(None)
            try:
                await asyncio.wait_for(got.wait(), 5)
                await asyncio.wait_for(hung.wait(), 5)  # and the connection was dropped
            finally:
                await scheduler.stop()
        return results

    results = asyncio.run(main())
    assert results == [ProbeResult(False, "timeout after 200ms")]
