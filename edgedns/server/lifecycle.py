"""Server lifecycle: build the query pipeline from a `Config`, bind, run, reload, shut down.

One asyncio event loop carries everything: DNS over UDP and TCP, health probes, upstream
queries and the admin endpoint. `Server.start` binds every listen address on UDP and TCP (the
same port for both, also when the config asks for port 0), `Server.run` serves until
SIGINT/SIGTERM, reloading on SIGHUP and when the config's files change.

Health flows one way: probe results → `PoolSet.record`, which bumps the generation of the
pools a changed member belongs to; replies holding their addresses rebuild when next asked.

A reload builds and validates everything new first (config, answers, sockets for new listen
addresses) and only then swaps it in, in one step between two queries; anything that fails
leaves the old config serving. Health of unchanged check targets carries over.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import pwd
import signal
import socket
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgedns import config as config_mod
from edgedns import heap
from edgedns.admin import status as status_mod
from edgedns.admin.http import AdminServer
from edgedns.admin.metrics import QueryStats
from edgedns.authority.answers import Answers
from edgedns.authority.catalog import Catalog
from edgedns.config import Config, Endpoint
from edgedns.config.documents import Documents, Memo
from edgedns.config.reader import parse_address
from edgedns.dns import names
from edgedns.dns.names import Name
from edgedns.etcd import registry
from edgedns.etcd import source as etcd_source
from edgedns.forward.cache import Cache
from edgedns.forward.forwarder import Forwarder
from edgedns.pools.drain import DrainStore, default_state_dir
from edgedns.pools.health.checks import ProbeResult, Target
from edgedns.pools.health.icmp import IcmpProber, IcmpUnavailable
from edgedns.pools.health.scheduler import Scheduler
from edgedns.pools.history import History
from edgedns.pools.pool import PoolSet
from edgedns.server import hooks, limits, privileges, sockopts, systemd
from edgedns.server.control import UNREAD, Coalescer, FileWatch, Signature
from edgedns.server.handler import QueryHandler
from edgedns.server.hooks import Hooks
from edgedns.server.listeners import TcpConnections, UdpListener
from edgedns.server.virtual import VirtualRouters, check_address
from edgedns.supervisor import Supervisor
from edgedns.vip.link import LinkError
from edgedns.vip.router import State

log = logging.getLogger(__name__)
summary = logging.getLogger("edgedns.summary")
"""Start-up, reload and shutdown lines: shown at every --log-level (see `cli.serve`)."""

_WATCH = "config-watch"
_ETCD = "etcd-watch"
_REGISTRY = "etcd-registry"
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
While the worker thread builds a reload, the event loop thread waits this long for the GIL
each time a query wakes it: at 5 ms, a steady 5,000 qps of first-use answers saw p99
latencies of 40-70 ms through a SIGHUP storm (`bench/stall.py reload`); the worker merely
takes a little longer. Without a second thread busy nothing waits, and this costs nothing."""
_BIND_ATTEMPTS = 20
"""Tries at finding a port free on both UDP and TCP when the config asks for port 0."""


def build_handler(
    config: Config,
    pools: PoolSet | None = None,
    stats: QueryStats | None = None,
    cache: Cache | None = None,
) -> QueryHandler:
    """The query pipeline for `config`: pools answered from `pools` (all members up when
    omitted, as before their first probes), forwarding through `cache` when given."""
    catalog = Catalog({zone.origin: zone for zone in config.zones})
    forwarder = None
    if config.forward is not None:
        forwarder = Forwarder(config.forward, cache or Cache(config.cache))
    answers = Answers(catalog, pools or PoolSet(config.pools))
    return QueryHandler(answers, forwarder, stats, config.query_log, config.debug_allow,
                        config.packet_cache_bytes, config.rate_limit)


@dataclass(slots=True)
class ReloadLog:
    successes: int = 0
    failures: int = 0
    last_error: str | None = None
    """Why the last reload was refused; None when it was applied (or none was tried)."""
    last_at: float | None = None


@dataclass(slots=True)
class _Listener:
    udp: UdpListener
    tcp: asyncio.AbstractServer
    bound: Endpoint


class Server:
    def __init__(self, config: Config, listen_override: tuple[str, ...] = (),
                 admin_override: str | None = None, memo: Memo | None = None) -> None:
        self.config = config
        self.listen_override = listen_override
        """Kept across reloads: ``serve --listen`` wins over the file's `listen`."""
        self.admin_override = admin_override
        """Kept across reloads: ``serve --admin`` wins over the file's `admin.listen`."""
        self.started = time.monotonic()
        self.stats = QueryStats()
        self.reloads = ReloadLog()
        self.pools = PoolSet(config.pools)
        self.drains = DrainStore.load(config.state_dir or default_state_dir())
        """Members drained by an operator, kept across reloads and restarts."""
        self.hooks = Hooks(config.notify)
        self.history = History()
        """What health did lately (a day per target, the last changes): for the page."""
        self._pools_down: set[Name] = set()
        """Pools with no healthy member, as last told to the hooks."""
        self._apply_drains(self.pools)
        self.handler = build_handler(config, self.pools, self.stats)
        self.supervisor = Supervisor()
        """Restarts the background tasks (health scheduler, config watcher) if they die."""
        self.scheduler = Scheduler(self._probe_result, supervisor=self.supervisor)
        self.icmp = IcmpProber()
        """Its sockets open as the config first needs each IP version; kept across reloads."""
        self._listeners: dict[Endpoint, _Listener] = {}
        self.connections = TcpConnections(
            self.handler.respond, config.tcp.idle_timeout, config.tcp.max_connections,
            config.tcp.max_per_client
        )
        """Every listener's TCP connections (their caps and counts)."""
        self._admin: AdminServer | None = None
        self.admin_port: int | None = None
        self._stopping = asyncio.Event()
        self._reloads = Coalescer(self._reload_told)
        self.systemd = systemd.Notifier()
        """Readiness, reloads and stopping told to systemd (Type=notify); a no-op elsewhere."""
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="edgedns-reload")
        """Where reloads load and prepare the new config, off the event loop."""
        self._files = FileWatch()
        self._files.known(FileWatch.snapshot(config.files))
        self._retiring: set[asyncio.Task[None]] = set()
        self.open_files = -1
        """The open-files limit `run` raised to; -1 when unknown (no caps shrink then)."""
        self.vrrp: VirtualRouters | None = None
        """The virtual addresses (`vrrp`), once started."""
        self.etcd = etcd_source.Follow()
        """How following etcd goes (with `source: {etcd: ...}`)."""
        self._etcd_latest: Documents | None = None
        """The newest documents the watch delivered (what the next reload loads)."""
        self.fleet: list[dict] = []
        """The nodes in the etcd registry, as last read (`edgedns.etcd.registry`)."""
        self.fleet_revision = 0
        """The revision the documents last changed at, as the registry read it."""
        self._memo = memo or Memo()
        """What reloads from etcd documents reuse (`config.load`): what loaded `config`,
        then each reload's (used on the reload worker only)."""

    @property
    def bound(self) -> list[Endpoint]:
        """The addresses actually served, with real port numbers."""
        return [listener.bound for listener in self._listeners.values()]

    def ready(self) -> bool:
        """Zones are loaded (they are, once constructed), every member has a verdict, and
        the health engine is not stalled."""
        return self.pools.all_probed() and self.scheduler.stalled() is None

    def _probe_result(self, target: Target, result: ProbeResult) -> bool:
        pools = self.pools
        if self.vrrp is not None and target in self.vrrp.tracks:
            return self.vrrp.record(target, result, time.time())
        changed = pools.record(target, result)
        health = pools.health.get(target)
        if health is not None:
            self.history.record(target, result, health.up, bool(changed),
                                [names.to_text(n) for n in changed])
        if changed:
            self._pools_changed(target, result, changed)
        return pools.settling(target)

    def _pools_changed(self, target: Target, result: ProbeResult, changed: set) -> None:
        """Hook events for a member's change of state and for pools it empties or refills;
        the virtual routers told when every pool is down."""
        pools = self.pools
        up = pools.health[target].up
        for name in sorted(changed):
            pool = pools.pools[name]
            if self.hooks.settings is not None:
                for member in pool.members:
                    if member.target == target:
                        self.hooks.emit("member_up" if up else "member_down",
                                        pool=names.to_text(name), member=member.address,
                                        check=str(target), reason=result.reason)
            healthy = sum(1 for m in pool.members if pools.is_up(m))
            was_down = name in self._pools_down
            if (healthy == 0) != was_down:
                if healthy == 0:
                    self._pools_down.add(name)
                else:
                    self._pools_down.discard(name)
                self.hooks.emit("pool_down" if healthy == 0 else "pool_up",
                                pool=names.to_text(name), healthy=healthy,
                                members=len(pool.members))
        if self.vrrp is not None:  # O(1): a flip must not cost a walk over every pool
            self.vrrp.set_pools_down(0 < len(pools.pools) == len(self._pools_down))

    async def start(self) -> None:
        """Open ICMP sockets (raising `IcmpUnavailable` with the fix when they cannot be),
        bind every listener and the admin endpoint (`OSError` when one cannot be bound),
        start probing and watching the config's files."""
        loop = asyncio.get_running_loop()
        self.icmp.ensure(_icmp_versions(self.pools))
        try:
            for endpoint in self.config.listen:
                self._listeners[endpoint] = await self._bind(loop, endpoint)
            await self._start_admin(self.config)
        except OSError:
            await self.stop()
            raise
        for listener in self._listeners.values():
            listener.udp.start(loop)
        self.scheduler.set_targets(self._targets(self.pools))
        self._share_descriptors()
        self.scheduler.start(self.icmp)
        if self.config.reload_interval > 0:
            self.supervisor.start(_WATCH, self._watch_files)
        if self.config.etcd is not None:
            self.supervisor.start(_ETCD, self._follow_etcd)
            self.supervisor.start(_REGISTRY, self._heartbeat)
        self.supervisor.start(hooks.TASK, self.hooks.run)
        if self.config.user is not None:
            self._drop_privileges(self.config.user)
        if self.config.vrrp is not None:
            self._start_vrrp(self.config)
        heap.keep()
        summary.info("serving %d zones on %s", len(self.config.zones),
                 ", ".join(str(e) for e in self.bound))
        self.systemd.ready(self._summary())

    def _drop_privileges(self, user: str) -> None:
        """Become `user`, keeping the capabilities reloads may still need (see
        `privileges`); the state directory is made theirs first."""
        keep = set()
        ports = [e.port for e in self.bound]
        if self.config.admin.listen is not None:
            ports.append(self.config.admin.listen.port)
        if any(0 < port < 1024 for port in ports):
            keep.add(privileges.CAP_NET_BIND_SERVICE)
        if self.icmp.versions or self.config.vrrp is not None:
            keep.add(privileges.CAP_NET_RAW)
        if self.config.vrrp is not None:
            keep.add(privileges.CAP_NET_ADMIN)
        state = self.drains.path.parent
        try:
            state.mkdir(parents=True, exist_ok=True)
            entry = pwd.getpwnam(user)
            os.chown(state, entry.pw_uid, entry.pw_gid)
        except (OSError, KeyError):
            pass  # drop_to says what is wrong with the user; a state dir we cannot own
            # only means drains will not be kept, and `drain` says so when asked
        if privileges.drop_to(user, keep):
            kept = ", ".join(sorted(privileges.NAMES[cap] for cap in keep))
            summary.info("running as %s, keeping %s", user, kept or "no capabilities")

    def _targets(self, pools: PoolSet) -> set[Target]:
        """What the health engine probes: pool members, and the services `vrrp` tracks."""
        return pools.targets() | (self.vrrp.targets() if self.vrrp is not None else set())

    def _start_vrrp(self, config: Config) -> None:
        """Start holding (or waiting to hold) `config.vrrp`'s addresses. Raises `LinkError`
        or ValueError (no listen address to self-check through)."""
        assert config.vrrp is not None
        loop = asyncio.get_running_loop()

        def changed(family: int, state: State, reason: str) -> None:  # on the agent's thread
            try:
                loop.call_soon_threadsafe(self._vrrp_changed, family, state, reason)
            except RuntimeError:
                pass  # the loop has closed: shutting down

        routers = VirtualRouters(config.vrrp, changed)
        address = check_address(self.bound, config.vrrp)
        routers.start(address, names.to_text(config.zones[0].origin))
        self.vrrp = routers
        self.scheduler.set_targets(self._targets(self.pools))

    def _vrrp_changed(self, family: int, state: State, reason: str) -> None:
        if state in (State.MASTER, State.BACKUP, State.FAULT):
            self.hooks.emit(f"vrrp_{state.value}", family=f"IPv{family}", reason=reason)

    async def _restart_vrrp(self, config: Config) -> None:
        """A reload changed `vrrp`: the old routers hand over, the new ones start."""
        await self._stop_vrrp()
        self.scheduler.set_targets(self._targets(self.pools))
        if config.vrrp is None:
            return
        try:
            self._start_vrrp(config)
        except (LinkError, ValueError) as exc:
            log.error("vrrp: cannot start the new virtual routers: %s", exc)

    async def _stop_vrrp(self) -> None:
        """Hand the addresses over and stop the agent (off the loop: it joins threads)."""
        routers, self.vrrp = self.vrrp, None
        if routers is not None:
            await asyncio.get_running_loop().run_in_executor(None, routers.stop)

    def _summary(self) -> str:
        return (f"serving {len(self.config.zones)} zones, {len(self.config.pools)} pools on "
                f"{', '.join(str(e) for e in self.bound)}")

    async def _start_admin(self, config: Config) -> None:
        listen = config.admin.listen
        if listen is None:
            return
        admin = AdminServer(self, config.admin.token)
        try:
            port = await admin.start(listen.host, listen.port)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind admin {listen}: {exc.strerror}") from None
        if not ipaddress.ip_address(listen.host).is_loopback and config.admin.token is None:
            log.warning("admin endpoint %s is reachable beyond this host without a token; "
                        "set admin.token", listen)
        old, self._admin, self.admin_port = self._admin, admin, port
        if old is not None:
            await old.stop()

    async def _bind(self, loop: asyncio.AbstractEventLoop, endpoint: Endpoint,
                    config: Config | None = None) -> _Listener:
        """Listeners on `endpoint`: a virtual address of `config.vrrp` is bound before this
        host holds it (IP_FREEBIND)."""
        vrrp = (config or self.config).vrrp
        freebind = vrrp is not None and endpoint.host in {a.address for a in vrrp.addresses}
        for _ in range(_BIND_ATTEMPTS):
            try:
                server = await loop.create_server(
                    self.connections.protocol, sock=_stream_socket(endpoint, freebind),
                    backlog=128)
            except OSError as exc:
                raise _bind_error(exc, "TCP", endpoint) from None
            port = server.sockets[0].getsockname()[1]
            try:
                udp = UdpListener.bind(endpoint.host, port, self.handler.respond, freebind)
            except OSError as exc:
                server.close()
                if endpoint.port == 0:
                    continue  # the kernel's TCP pick is taken on UDP; pick again
                raise _bind_error(exc, "UDP", endpoint) from None
            return _Listener(udp, server, Endpoint(endpoint.host, port))
        raise OSError(f"no port free on both UDP and TCP for {endpoint.host}")

    async def reload(self, reason: str) -> bool:
        """Load the config again and swap it in whole; on any error keep serving the old one,
        log why, and record it for /status and metrics. Returns whether applied.

        Calls made while a reload is being built collapse into one more reload after it.
        Loading, validating and preparing the new data runs on the worker thread, so the
        event loop keeps answering meanwhile; only binding and the swap run on the loop."""
        return await self._reloads(reason)

    def request_reload(self, reason: str) -> None:
        """`reload` without waiting for it (SIGHUP)."""
        self._reloads.request(reason)

    def _prepare(self, previous: PoolSet, old_cache: Cache | None
                 ) -> tuple[Config, PoolSet, QueryHandler]:
        """On the worker thread: the new config and everything answering from it."""
        config = config_mod.load(self.config.source, self.listen_override, self.admin_override,
                                 self._etcd_latest or self.config.documents, self._memo)
        pools = PoolSet(config.pools, previous=previous)
        cache = old_cache if old_cache is not None and config.cache == self.config.cache else None
        return config, pools, build_handler(config, pools, self.stats, cache)

    async def _reload_told(self, reason: str) -> bool:
        """`_reload_once`, with systemd told it is reloading and, either way, ready again."""
        self.systemd.reloading()
        try:
            return await self._reload_once(reason)
        finally:
            self.systemd.ready(self._summary())

    async def _reload_once(self, reason: str) -> bool:
        loop = asyncio.get_running_loop()
        self.reloads.last_at = time.time()
        added: dict[Endpoint, _Listener] = {}
        old_forwarder = self.handler.forwarder
        started = time.time_ns()
        try:
            with heap.collector_paused():
                config, pools, handler = await loop.run_in_executor(
                    self._worker, self._prepare, self.pools,
                    old_forwarder.cache if old_forwarder is not None else None)
                heap.keep()
            log.debug("reload (%s): config loaded and prepared in %.3f s (%d zones reused)",
                      reason, (time.time_ns() - started) / 1e9, self._memo.reused)
            self._files.known(_signatures(config.files, started))
            self.icmp.ensure(_icmp_versions(pools))
            for endpoint in config.listen:
                if endpoint not in self._listeners:
                    added[endpoint] = await self._bind(loop, endpoint, config)
            if config.admin != self.config.admin:
                if config.admin.listen is None and self._admin is not None:
                    await self._admin.stop()
                    self._admin, self.admin_port = None, None
                else:
                    await self._start_admin(config)
        except Exception as exc:
            if isinstance(exc, config_mod.ConfigError):
                # Watch what the refused config named: fixing or creating any of it retries.
                self._files.known(_signatures(exc.files, started))
            for listener in added.values():
                listener.udp.close(loop)
                listener.tcp.close()
            self.reloads.failures += 1
            self.reloads.last_error = str(exc)
            self.hooks.emit("reload_refused", reason=reason, error=str(exc)[:hooks.FIELD_MAX])
            expected = isinstance(exc, (config_mod.ConfigError, OSError, IcmpUnavailable))
            # A bug shows its traceback; either way the old config keeps serving.
            log.error("reload (%s) refused, still serving the previous config: %s",
                      reason, exc, exc_info=not expected)
            return False
        # The swap: no await from here on, so no query sees half of it.
        kept = {id(zone) for zone in config.zones}  # zones reused from the last load
        retired = [zone.nodes for zone in self.config.zones if id(zone) not in kept]
        old_vrrp, old_etcd = self.config.vrrp, self.config.etcd
        if config.state_dir != self.config.state_dir:
            self.drains = DrainStore.load(config.state_dir or default_state_dir())
        self._apply_drains(pools)
        self._pools_down = {name for name in self._pools_down if name in pools.pools}
        self.config, self.pools, self.handler = config, pools, handler
        # The old zones are freed on the worker, a node at a time: freeing a big zone in
        # one go would hold the event loop (about 0.1 s per million records).
        self._worker.submit(heap.release, retired)
        self._listeners.update(added)
        # Listeners call the handler directly (no indirection per query): point them at it.
        self.connections.respond = handler.respond
        for listener in self._listeners.values():
            listener.udp.respond = handler.respond
        for listener in added.values():
            listener.udp.start(loop)
        for endpoint in [e for e in self._listeners if e not in config.listen]:
            retired = self._listeners.pop(endpoint)
            retired.udp.close(loop)
            retired.tcp.close()
        self.connections.idle_timeout = config.tcp.idle_timeout
        self.connections.max_per_client = config.tcp.max_per_client
        self.scheduler.set_targets(self._targets(pools))
        self.history.keep_only(pools.targets())
        self.icmp.keep_only(_icmp_versions(pools))
        self._share_descriptors()
        if old_forwarder is not None:
            if handler.forwarder is not None:
                handler.forwarder.adopt_health(old_forwarder)
            self._retire(old_forwarder)
        if config.vrrp != old_vrrp:
            await self._restart_vrrp(config)
        if config.etcd != old_etcd:
            await self.supervisor.stop(_ETCD)
            await self.supervisor.stop(_REGISTRY)
            if config.etcd is not None:
                self.supervisor.start(_ETCD, self._follow_etcd)
                self.supervisor.start(_REGISTRY, self._heartbeat)
        if config.documents is not None and not config.documents.from_cache:
            self._worker.submit(self._keep_documents, config)
        self.reloads.successes += 1
        self.reloads.last_error = None
        self.hooks.settings = config.notify
        self.hooks.emit("reload_applied", reason=reason, zones=len(config.zones),
                        pools=len(config.pools))
        summary.info("reloaded (%s): %d zones, %d pools, serving %s", reason, len(config.zones),
                 len(config.pools), ", ".join(str(e) for e in self.bound))
        return True

    def _apply_drains(self, pools: PoolSet) -> None:
        """`pools` drains exactly what the store says (of the members it has)."""
        pools.drained = {
            (name, address) for name, address in
            ((names.from_text(pool), address) for pool, address in self.drains.members)
            if pools.has_member(name, address)}
        for name, address in pools.drained:
            self.history.drained(names.to_text(name), address, True)

    def drain_member(self, pool: str, member: str, drained: bool) -> bool:
        """Drain (or undrain) `member` of the pool named `pool`: kept in the state file
        first, then no longer handed out (or handed out again) from the next query on.
        Returns whether it changed anything. Raises LookupError for an unknown pool or
        member, OSError when the state file cannot be written (nothing changes then)."""
        name = names.from_text(pool)
        try:
            address = parse_address(member)
        except ValueError as exc:
            raise LookupError(str(exc)) from None
        if name not in self.pools.pools:
            raise LookupError(f"no pool {names.to_text(name)}")
        if not self.pools.has_member(name, address):
            raise LookupError(f"{address} is no member of {names.to_text(name)}")
        changed = self.drains.set(names.to_text(name), address, drained)
        self.pools.drain(name, address, drained)
        self.history.drained(names.to_text(name), address, drained)
        if changed:
            self.hooks.emit("member_drained" if drained else "member_undrained",
                            pool=names.to_text(name), member=address)
        return changed

    def _share_descriptors(self) -> None:
        """Cap TCP clients and upstream questions so that health probes always find a free
        descriptor (`limits.client_caps`)."""
        config, forwarder = self.config, self.handler.forwarder
        probe_sockets = sum(1 for t in self._targets(self.pools) if t.type != "icmp")
        upstream = forwarder.settings.max_inflight if forwarder is not None else 0
        tcp, upstream_cap = limits.client_caps(self.open_files, probe_sockets,
                                               config.tcp.max_connections, upstream)
        if (tcp, upstream_cap) != (config.tcp.max_connections, upstream):
            log.warning("open files limit %d is short for %d probe sockets beside "
                        "tcp.max_connections %d and forward.max_inflight %d: capped at %d and "
                        "%d; raise the hard limit (systemd: LimitNOFILE=) to lift the caps",
                        self.open_files, probe_sockets, config.tcp.max_connections,
                        upstream, tcp, upstream_cap)
        self.connections.max_connections = tcp
        if forwarder is not None:
            forwarder.max_inflight = upstream_cap

    def _retire(self, forwarder: Forwarder) -> None:
        """Let questions already sent upstream by a replaced forwarder finish, then close it."""
        async def retire() -> None:
            await forwarder.drain(self.config.shutdown_timeout)
            await forwarder.close()

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _follow_etcd(self) -> None:
        assert self.config.etcd is not None and self.config.documents is not None
        await etcd_source.follow(self.config.etcd, self._etcd_latest or self.config.documents,
                                 self.etcd, self._etcd_changed)

    async def _heartbeat(self) -> None:
        assert self.config.etcd is not None
        await registry.heartbeat(self.config.etcd, lambda: status_mod.node_report(self),
                                 self._fleet_seen)

    def _fleet_seen(self, revision: int, nodes: list[dict]) -> None:
        self.fleet_revision, self.fleet = revision, nodes

    def _etcd_changed(self, documents: Documents) -> None:
        self._etcd_latest = documents
        self.request_reload(f"etcd revision {documents.revision}")

    def _keep_documents(self, config: Config) -> None:
        """On the worker: the documents just applied become the cache's (the last good)."""
        found = config_mod.load_source(config.source)
        if found is not None and config.documents is not None:
            try:
                etcd_source.save(found[1], config.documents)
            except OSError as exc:
                log.warning("etcd: cannot keep the documents in %s: %s", found[1],
                            exc.strerror)

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            if self._files.settled_change():
                await self.reload("files changed")

    async def stop(self) -> None:
        """Stop at once: virtual addresses, listeners, connections, probes, upstream
        queries, admin."""
        loop = asyncio.get_running_loop()
        await self._stop_vrrp()
        self._reloads.cancel()
        self._worker.shutdown(wait=False, cancel_futures=True)
        await self.scheduler.stop()
        await self.supervisor.stop()
        if self.handler.forwarder is not None:
            await self.handler.forwarder.close()
        for task in list(self._retiring):
            task.cancel()
        self.icmp.close()
        for listener in self._listeners.values():
            listener.udp.close(loop)
            listener.tcp.close()
        self.connections.close_all()
        for listener in self._listeners.values():
            await listener.tcp.wait_closed()
        self._listeners.clear()
        if self._admin is not None:
            await self._admin.stop()
            self._admin = None

    async def drain(self) -> None:
        """Graceful first half of a shutdown: accept nothing new, let what is in flight
        finish (at most `shutdown_timeout`)."""
        loop = asyncio.get_running_loop()
        await self.supervisor.stop(_WATCH)
        self._reloads.cancel()  # no reload may bind anything new from here on
        for listener in self._listeners.values():
            listener.udp.pause(loop)
            listener.tcp.close()  # no new connections; open ones keep being served
        deadline = loop.time() + self.config.shutdown_timeout
        forwarder = self.handler.forwarder
        if forwarder is not None:
            await forwarder.drain(self.config.shutdown_timeout)
        if self._retiring:  # forwarders replaced by a reload still finishing their queries
            await asyncio.wait(list(self._retiring), timeout=max(deadline - loop.time(), 0))
        await asyncio.sleep(0)  # let replies completed just now be written

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM (or `request_stop`), reloading on SIGHUP; then
        finish in-flight queries and shut down."""
        loop = asyncio.get_running_loop()
        # Handlers first: a signal during start-up must not kill the process outright.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.request_reload("SIGHUP"))
        try:
            self.open_files = limits.raise_open_files()
            summary.info("open files limit: %d", self.open_files)
            await self.start()
        except BaseException:  # nothing was served: nothing to drain, nothing to announce
            _remove_signal_handlers(loop)
            await self.stop()
            raise
        try:
            await self._stopping.wait()
        finally:
            _remove_signal_handlers(loop)
            summary.info("shutting down")
            self.systemd.stopping()
            await self._stop_vrrp()  # the backup takes over while what is in flight finishes
            await self.drain()
            await self.stop()


_PRIVILEGED_FIX = (
    "ports below 1024 need root or CAP_NET_BIND_SERVICE: run edgedns under systemd with "
    "AmbientCapabilities=CAP_NET_BIND_SERVICE (examples/edgedns.service), or "
    "setcap cap_net_bind_service+ep on the python binary; or listen on a port above 1023"
)


def _bind_error(exc: OSError, transport: str, endpoint: Endpoint) -> OSError:
    """`exc` from binding `endpoint`, said plainly, with the fix for a privileged port."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.EACCES and 0 < endpoint.port < 1024:
        reason += f"; {_PRIVILEGED_FIX}"
    elif exc.errno == errno.EADDRINUSE:
        reason += " (another server listens there: `ss -lnptu` names it)"
    return OSError(exc.errno, f"cannot bind {transport} {endpoint}: {reason}")


def _stream_socket(endpoint: Endpoint, freebind: bool) -> socket.socket:
    """A bound TCP socket for `endpoint` (as `create_server` would make it, plus
    `freebind`)."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if freebind:
            sockopts.set_freebind(sock)
        sock.bind((endpoint.host, endpoint.port))
    except OSError:
        sock.close()
        raise
    return sock


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.remove_signal_handler(sig)


def _icmp_versions(pools: PoolSet) -> set[int]:
    """The IP versions of `pools`' ICMP check targets."""
    return {ipaddress.ip_address(t.address).version for t in pools.targets() if t.type == "icmp"}


def _signatures(files: Iterable[Path], read_from_ns: int) -> dict[Path, Signature]:
    """Signatures of `files`; a file modified since `read_from_ns` (wall clock, when the
    load began) may have been read half-changed, so it counts as not yet read."""
    out = FileWatch.snapshot(files)
    for path, sig in out.items():
        if sig is not None and sig[0] >= read_from_ns:
            out[path] = UNREAD
    return out


def run(config: Config, listen_override: tuple[str, ...] = (),
        admin_override: str | None = None, memo: Memo | None = None) -> None:
    """Run a server for `config` (loaded with `memo`, when it was) on uvloop when
    installed, else the stdlib loop."""
    server = Server(config, listen_override, admin_override, memo)
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        import uvloop
    except ImportError:
        asyncio.run(server.run())
    else:
        uvloop.run(server.run())
