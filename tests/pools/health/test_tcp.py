"""TCP check: healthy when a connection to the port completes; the OS's reason when not."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any

import pytest

from edgedns.pools.health import tcp
from edgedns.pools.health.checks import CheckSpec, ProbeResult, Target


def tcp_target(port: int, address: str = "127.0.0.1") -> Target:
    return Target.for_member(CheckSpec(type="tcp", port=port), address)


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released: refused until someone takes it)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def test_a_listening_port_is_healthy() -> None:
    async def main() -> None:
        accepted = asyncio.Event()

        def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set()
            writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            result = await asyncio.wait_for(tcp.probe(tcp_target(port)), 5)
            assert (result.ok, result.reason) == (True, "connected")
            assert result.rtt is not None and 0 <= result.rtt < 5
            await asyncio.wait_for(accepted.wait(), 5)

    asyncio.run(main())


def uvloop_run(coro: Coroutine[Any, Any, ProbeResult]) -> ProbeResult:
    return pytest.importorskip("uvloop").run(coro)


@pytest.mark.parametrize("run", [asyncio.run, uvloop_run], ids=["asyncio", "uvloop"])
def test_a_refused_connection_is_unhealthy_with_the_os_reason_on_either_loop(run) -> None:
    result = run(asyncio.wait_for(tcp.probe(tcp_target(free_port())), 5))
    assert (result.ok, result.reason) == (False, "Connection refused")
    assert result.rtt is not None


def test_the_probe_connects_to_the_target_address_not_another_loopback_address() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.2", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            assert (await asyncio.wait_for(tcp.probe(tcp_target(port, "127.0.0.2")), 5)).ok
            other = await asyncio.wait_for(tcp.probe(tcp_target(port, "127.0.0.3")), 5)
            assert not other.ok

    asyncio.run(main())


def test_the_probe_does_not_leave_the_connection_open() -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()  # EOF or reset once the prober hangs up
            except ConnectionResetError:
                pass
            closed.set()
            writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            assert (await asyncio.wait_for(tcp.probe(tcp_target(port)), 5)).ok
            await asyncio.wait_for(closed.wait(), 5)

    asyncio.run(main())
