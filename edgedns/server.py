"""Server lifecycle: build the answer table from a `Config`, bind listeners, run, shut down.

One asyncio event loop carries everything. `Server.start` binds every listen address on UDP
and TCP (the same port for both, also when the config asks for port 0) and starts the health
checks, `Server.run` serves until SIGINT/SIGTERM, and `Server.stop` closes it all down.

Health flows one way: probe results → `PoolSet.record` → changed pools → one
`AnswerTable.refresh` per event-loop turn, however many results arrived in it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket

from edgedns.answers import AnswerTable
from edgedns.cache import Cache
from edgedns.catalog import Catalog
from edgedns.config import Config, Endpoint
from edgedns.forward import Forwarder
from edgedns.handler import QueryHandler
from edgedns.health.checks import ProbeResult, Target
from edgedns.health.icmp import IcmpProber
from edgedns.health.scheduler import Scheduler
from edgedns.listeners import TcpConnections, UdpListener
from edgedns.names import Name
from edgedns.pools import PoolSet

log = logging.getLogger(__name__)

_BIND_ATTEMPTS = 20
"""Tries at finding a port free on both UDP and TCP when the config asks for port 0."""


def build_handler(config: Config, pools: PoolSet | None = None) -> QueryHandler:
    """The query pipeline for `config`, answering pools from `pools` (all members up when
    omitted, as before their first probes)."""
    catalog = Catalog({zone.origin: zone for zone in config.zones})
    forwarder = None
    if config.forward is not None:
        forwarder = Forwarder(config.forward, Cache(config.cache))
    return QueryHandler(AnswerTable(catalog, pools or PoolSet(config.pools)), forwarder)


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pools = PoolSet(config.pools)
        self.handler = build_handler(config, self.pools)
        self.scheduler = Scheduler(self._probe_result)
        self._icmp: IcmpProber | None = None
        self._unapplied: set[Name] = set()
        self.bound: list[Endpoint] = []
        """The addresses actually served, with real port numbers."""
        self._udp: list[UdpListener] = []
        self._tcp: list[asyncio.AbstractServer] = []
        self._connections = TcpConnections(
            self._respond, config.tcp.idle_timeout, config.tcp.max_connections
        )
        self._stopping = asyncio.Event()

    def _respond(self, data: bytes, tcp: bool, client: str) -> bytes | None:
        return self.handler.respond(data, tcp, client)

    def _probe_result(self, target: Target, result: ProbeResult) -> None:
        changed = self.pools.record(target, result)
        if changed:
            if not self._unapplied:
                asyncio.get_running_loop().call_soon(self._apply_health)
            self._unapplied |= changed

    def _apply_health(self) -> None:
        self.handler.answers.refresh(self._unapplied)
        self._unapplied.clear()

    async def start(self) -> None:
        """Open ICMP sockets (raising `IcmpUnavailable` with the fix when they cannot be),
        bind every listener (`OSError` when one cannot be bound), start probing."""
        loop = asyncio.get_running_loop()
        targets = self.pools.targets()
        icmp_versions = {ipaddress.ip_address(t.address).version
                         for t in targets if t.type == "icmp"}
        if icmp_versions:
            self._icmp = IcmpProber.open(icmp_versions)
        try:
            for endpoint in self.config.listen:
                await self._bind(loop, endpoint)
        except OSError:
            await self.stop()
            raise
        for udp in self._udp:
            udp.start(loop)
        if self._icmp is not None:
            self._icmp.start(loop)
        self.scheduler.set_targets(targets)
        self.scheduler.start(self._icmp)
        log.info("serving %d zones on %s", len(self.config.zones),
                 ", ".join(str(e) for e in self.bound))

    async def _bind(self, loop: asyncio.AbstractEventLoop, endpoint: Endpoint) -> None:
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        for _ in range(_BIND_ATTEMPTS):
            server = await loop.create_server(
                self._connections.protocol, endpoint.host, endpoint.port,
                family=family, reuse_address=True, backlog=128,
            )
            port = server.sockets[0].getsockname()[1]
            try:
                udp = UdpListener.bind(endpoint.host, port, self._respond)
            except OSError as exc:
                server.close()
                if endpoint.port == 0:
                    continue  # the kernel's TCP pick is taken on UDP; pick again
                raise OSError(exc.errno, f"cannot bind UDP {endpoint}: {exc.strerror}") from None
            self._tcp.append(server)
            self._udp.append(udp)
            self.bound.append(Endpoint(endpoint.host, port))
            return
        raise OSError(f"no port free on both UDP and TCP for {endpoint.host}")

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        await self.scheduler.stop()
        if self.handler.forwarder is not None:
            await self.handler.forwarder.close()
        if self._icmp is not None:
            self._icmp.close(loop)
            self._icmp = None
        for udp in self._udp:
            udp.close(loop)
        for server in self._tcp:
            server.close()
        self._connections.close_all()
        for server in self._tcp:
            await server.wait_closed()
        self._udp.clear()
        self._tcp.clear()

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM (or `request_stop`), then shut down cleanly."""
        loop = asyncio.get_running_loop()
        await self.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            log.info("shutting down")
            await self.stop()


def run(config: Config) -> None:
    """Run a server for `config` on uvloop when installed, else the stdlib loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(Server(config).run())
    else:
        uvloop.run(Server(config).run())
