"""The YAML config file → a frozen, fully validated `Config`.

Everything a running server needs is checked here, once: unknown keys, bad addresses, record
values, conflicting zone data. The top level is read here; each section by its own module
(`zones`, `pools`, `forward`), all on `Reader` (key paths, shared value parsers).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgedns import heap
from edgedns.authority.zone import Zone
from edgedns.config import documents as etcd_documents
from edgedns.config import yaml as yaml_file
from edgedns.config.documents import Documents
from edgedns.config.forward import ForwardSection
from edgedns.config.reader import (
    ConfigError,
    Endpoint,
    parse_duration,
    parse_endpoint,
    parse_size,
)
from edgedns.config.source import SourceSection
from edgedns.config.vip import VipSection
from edgedns.config.zones import ZonesSection
from edgedns.dns.presentation import shown
from edgedns.etcd.client import EtcdSettings
from edgedns.forward.cache import CacheSettings
from edgedns.forward.forwarder import ForwardSettings
from edgedns.pools.drain import default_state_dir
from edgedns.pools.health.checks import CheckSpec
from edgedns.pools.pool import PoolSpec
from edgedns.server.hooks import NotifySettings
from edgedns.server.ratelimit import RateLimitSettings
from edgedns.vip.settings import VrrpSettings

DEFAULT_LISTEN = ("127.0.0.1:5353",)
TOP_KEYS = ("listen", "tcp", "defaults", "zones", "forward", "cache", "admin", "reload_interval",
            "query_log", "shutdown_timeout", "debug_allow", "packet_cache", "rate_limit",
            "state_dir", "notify", "user", "vrrp", "source")
RATE_LIMIT_KEYS = ("responses_per_second", "slip", "ipv4_prefix", "ipv6_prefix", "exempt")
DEBUG_ALLOW = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
ADMIN_KEYS = ("listen", "token")


@dataclass(frozen=True, slots=True)
class TcpSettings:
    idle_timeout: float = 10.0
    """Seconds a TCP connection may sit without a complete query (RFC 7766 §6.2.3)."""
    max_connections: int = 256
    """Open TCP connections across all listeners; new ones are refused above this."""
    max_per_client: int = 32
    """Open TCP connections from one client address; new ones are refused above this."""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    listen: Endpoint | None = Endpoint("127.0.0.1", 9153)
    """Where /metrics, /health, /ready and /status are served; None: nowhere."""
    token: str | None = None
    """When set, every request needs ``Authorization: Bearer <token>``."""


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    listen: tuple[Endpoint, ...]
    tcp: TcpSettings
    zones: tuple[Zone, ...]
    pools: tuple[PoolSpec, ...] = ()
    forward: ForwardSettings | None = None
    """None: names outside our zones are REFUSED."""
    cache: CacheSettings = CacheSettings()
    admin: AdminSettings = AdminSettings()
    reload_interval: float = 3.0
    """Seconds between checks of the config and zone files for changes; 0: only on SIGHUP."""
    query_log: bool = False
    """One log line per query (logger ``edgedns.querylog``)."""
    shutdown_timeout: float = 5.0
    """Seconds SIGTERM waits for in-flight queries before exiting anyway."""
    debug_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = DEBUG_ALLOW
    """Clients that get ``_edgedns.<pool>`` TXT debug answers."""
    packet_cache_bytes: int = 32 << 20
    """What the packet cache (replies by exact query bytes) may hold."""
    rate_limit: RateLimitSettings | None = RateLimitSettings()
    """Response-rate limiting of UDP replies; None: off."""
    files: tuple[Path, ...] = ()
    """Every file the config was read from: itself, zone files, the DoT CA file."""
    user: str | None = None
    """Run as this user once the sockets are bound (when started as root)."""
    notify: NotifySettings | None = None
    """Hooks told of health, drain and reload changes; None: none."""
    state_dir: Path | None = None
    """Where state kept across restarts lives (drained members); None: the default
    (`edgedns.pools.drain.default_state_dir`)."""
    vrrp: VrrpSettings | None = None
    """The virtual addresses this node may hold; None: none."""
    etcd: EtcdSettings | None = None
    """Where zones and shared settings come from (`source.etcd`); None: this file."""
    documents: Documents | None = None
    """The etcd documents this config was made from."""


def load(path: str | Path, listen_override: tuple[str, ...] = (),
         admin_override: str | None = None, documents: Documents | None = None,
         memo: etcd_documents.Memo | None = None) -> Config:
    """Read, parse and validate the config at `path`. Raises `ConfigError`.

    `listen_override` replaces the file's `listen` and `admin_override` its `admin.listen`
    (``off`` turns the endpoint off): ``serve --listen`` and ``serve --admin``. A bootstrap
    file (one with `source`) takes its zones and shared settings from `documents`
    (`edgedns.etcd.source`); an error in one names its etcd key. With `memo` (kept by the
    caller from one load to the next), documents and zones whose inputs did not change are
    not parsed again: a zone's inputs are its document, the shared settings document and the
    bootstrap file (zones that read files of this node are always built anew)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not UTF-8 text (byte {exc.start})") from None
    try:
        raw = yaml_file.load(text, str(path))
    except yaml_file.YamlError as exc:
        raise ConfigError(path, "", str(exc)) from None
    parser = _Parser(path)
    raw = raw if raw is not None else {}
    origin: dict[str, str] = {}
    etcd = None
    if isinstance(raw, dict) and "source" in raw:
        etcd = parser.etcd_source(raw["source"], "source")
        if "zones" in raw:
            raise ConfigError(path, "zones", "come from etcd with `source`: push them "
                              "(edgedns push) instead of listing them here")
        if documents is None:
            raise ConfigError(path, "source", "the etcd documents were not read")
        common = (text, documents.documents.get(f"{etcd.prefix}{etcd_documents.SETTINGS}"))
        shared, origin = etcd_documents.tree(etcd.prefix, documents.documents, memo, common)
        zones = shared.get("zones") or {}
        if any(isinstance(b, dict) and "hosts" in b for b in zones.values()):
            # hosts files add PTRs to other zones: read and build every zone
            shared, origin = etcd_documents.tree(etcd.prefix, documents.documents)
        else:
            for zone_key, body in zones.items():
                if not (isinstance(body, dict) and "file" in body):
                    parser.fingerprints[zone_key] = (
                        documents.documents[origin[f"zones.{zone_key}"]], common)
        parser.memo = memo
        raw = {**shared, **raw}
    try:
        with heap.collector_paused():  # see edgedns.heap: a big zone loads far faster
            config = parser.config(raw, listen_override, admin_override)
    except ConfigError as exc:
        exc.files = tuple(parser.files)
        raise etcd_documents.locate(exc, origin) if origin else exc from None
    if memo is not None:
        memo.zones, memo.reused = parser.made, parser.reused
    return config if etcd is None else replace(config, etcd=etcd, documents=documents)


def load_source(path: str | Path) -> tuple[EtcdSettings, Path] | None:
    """The `source` of the bootstrap file at `path` and where its documents are cached, or
    None for a file that holds its zones itself. Raises `ConfigError`."""
    path = Path(path)
    raw = _read(path)
    if not isinstance(raw, dict) or "source" not in raw:
        return None
    parser = _Parser(path)
    settings = parser.etcd_source(raw["source"], "source")
    if settings.cache is not None:
        return settings, Path(settings.cache)
    state = (path.parent / parser.text(raw["state_dir"], "state_dir", "a directory path")
             if "state_dir" in raw else default_state_dir())
    return settings, etcd_documents.default_cache(state)


def _read(path: Path) -> Any:
    try:
        return yaml_file.load(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, yaml_file.YamlError) as exc:
        raise ConfigError(path, "", str(exc)) from None


def load_admin(path: str | Path) -> AdminSettings:
    """Only the `admin` section of the config at `path`, validated as `load` would (for
    ``edgedns status -c FILE``: no zone is read). Raises `ConfigError`."""
    path = Path(path)
    raw = _read(path)
    if not isinstance(raw, dict) or "admin" not in raw:
        return AdminSettings()
    return _Parser(path).admin(raw["admin"], "admin")


class _Parser(ZonesSection, VipSection, ForwardSection, SourceSection):
    """The whole file: the top level here, each section in its module."""

    def __init__(self, source: Path) -> None:
        super().__init__(source)
        self.memo: etcd_documents.Memo | None = None
        self.fingerprints: dict[str, Any] = {}
        """Zone key → what its zone is built from, for zones `memo` may supply."""
        self.made: dict[str, tuple[Any, Zone, list[PoolSpec]]] = {}
        self.reused = 0

    def config(self, raw: Any, listen_override: tuple[str, ...],
               admin_override: str | None = None) -> Config:
        top = self.mapping(raw, "", TOP_KEYS)
        defaults = self.mapping(top.get("defaults", {}), "defaults", ("check",))
        self.default_check = self.check(defaults.get("check", {}), "defaults.check", CheckSpec())
        self.pools: list[PoolSpec] = []
        listen_raw = list(listen_override) or top.get("listen", list(DEFAULT_LISTEN))
        if not isinstance(listen_raw, list) or not listen_raw:
            raise self.error("listen", "must be a non-empty list of address:port")
        listen = tuple(
            self.convert(item, f"listen[{i}]", parse_endpoint) for i, item in enumerate(listen_raw)
        )
        if len(set(listen)) != len(listen):
            raise self.error("listen", "lists the same address twice")
        zones_raw = top.get("zones")
        if not zones_raw:
            raise self.error("zones", "at least one zone is needed")
        zones_raw = self.mapping(zones_raw, "zones", tuple(zones_raw))
        hosts = self.read_hosts(zones_raw)
        zones = tuple(self._zone_once(str(k), v, hosts) for k, v in zones_raw.items())
        apexes = [z.origin for z in zones]
        if len(set(apexes)) != len(apexes):
            raise self.error("zones", "the same zone is listed twice")
        forward = self.forward(top["forward"], "forward") if "forward" in top else None
        given: dict[str, Any] = {}  # the rest keep Config's defaults
        if "admin" in top:
            given["admin"] = self.admin(top["admin"], "admin")
        if admin_override is not None:
            admin = given.get("admin", AdminSettings())
            listen_to = None if admin_override == "off" else self.convert(
                admin_override, "--admin", lambda v: parse_endpoint(v, 9153))
            given["admin"] = AdminSettings(listen_to, admin.token)
        for key in ("reload_interval", "shutdown_timeout"):
            if key in top:
                given[key] = self.convert(top[key], key, parse_duration)
        if "query_log" in top:
            given["query_log"] = self.boolean(top["query_log"], "query_log")
        if "debug_allow" in top:
            given["debug_allow"] = self.networks(top["debug_allow"], "debug_allow")
        if "rate_limit" in top:
            given["rate_limit"] = self.rate_limit(top["rate_limit"], "rate_limit")
        if "user" in top:
            given["user"] = self.text(top["user"], "user", "a user name")
        if "notify" in top:
            given["notify"] = self.notify(top["notify"], "notify")
        if "vrrp" in top:
            given["vrrp"] = self.vrrp(top["vrrp"], "vrrp")
            virtual = {a.address for a in given["vrrp"].addresses}
            if all(endpoint.host in virtual for endpoint in listen):
                raise self.error("listen", "names only virtual addresses; add a wildcard "
                                 "(0.0.0.0:53) or an address of this host, through which "
                                 "vrrp's DNS self-check asks")
        if "state_dir" in top:
            given["state_dir"] = self.source.parent / self.text(
                top["state_dir"], "state_dir", "a directory path")
        if "packet_cache" in top:
            raw_cache = self.mapping(top["packet_cache"], "packet_cache", ("max_bytes",))
            if "max_bytes" in raw_cache:
                given["packet_cache_bytes"] = self.convert(
                    raw_cache["max_bytes"], "packet_cache.max_bytes", parse_size)
        return Config(
            self.source, listen, self.tcp(top.get("tcp", {})), zones, tuple(self.pools),
            forward, self.cache(top.get("cache", {}), "cache"), files=tuple(self.files),
            **given,
        )

    def _zone_once(self, key: str, raw: Any, hosts: dict) -> Zone:
        """The zone at `key`, taken from `memo` when its fingerprint (see `load`) is
        unchanged, else built; either way remembered for the next load."""
        fingerprint = self.fingerprints.get(key)
        known = self.memo.zones.get(key) if self.memo is not None else None
        if fingerprint is not None and known is not None and known[0] == fingerprint:
            zone, pools = known[1], known[2]
            self.pools.extend(pools)
            self.reused += 1
        else:
            if isinstance(raw, etcd_documents.Reused):
                raise RuntimeError(f"zone {key} was to be reused, but memo lacks it")
            before = len(self.pools)
            zone = self.zone(key, raw, f"zones.{key}", hosts.get(key))
            pools = self.pools[before:]
        self.made[key] = (fingerprint, zone, pools)
        return zone

    def admin(self, raw: Any, path: str) -> AdminSettings:
        if raw is None or raw is False:
            return AdminSettings(None)
        if isinstance(raw, str):
            raw = {"listen": raw}
        raw = self.mapping(raw, path, ADMIN_KEYS)
        listen = AdminSettings().listen
        if "listen" in raw:
            listen = self.convert(raw["listen"], f"{path}.listen",
                                  lambda v: parse_endpoint(v, 9153))
        token = None
        if "token" in raw:
            token = yaml_file.source_text(raw["token"])
            if len(token) < 16:
                raise self.error(f"{path}.token", "must be at least 16 characters")
        return AdminSettings(listen, token)

    def notify(self, raw: Any, path: str) -> NotifySettings:
        raw = self.mapping(raw, path, ("command", "url"))
        if not raw:
            raise self.error(path, "give a command, a url, or both")
        command = url = None
        if "command" in raw:
            command = self.text(raw["command"], f"{path}.command", "a program to run")
            if "/" in command and not command.startswith("/"):
                command = str(self.source.parent / command)
        if "url" in raw:
            url = self.text(raw["url"], f"{path}.url", "an http:// or https:// URL")
            if not url.startswith(("http://", "https://")):
                raise self.error(f"{path}.url", f"{shown(url)}: must be an http:// or "
                                 "https:// URL")
        return NotifySettings(command, url)

    def rate_limit(self, raw: Any, path: str) -> RateLimitSettings | None:
        if raw is False:
            return None
        raw = self.mapping(raw, path, RATE_LIMIT_KEYS)
        base = RateLimitSettings()
        fields: dict[str, Any] = {}
        for key, low, high in (("responses_per_second", 1, None), ("slip", 0, None),
                               ("ipv4_prefix", 8, 32), ("ipv6_prefix", 16, 128)):
            fields[key] = self.whole(raw.get(key, getattr(base, key)), f"{path}.{key}", low,
                                     high)
        if "exempt" in raw:
            fields["exempt"] = self.networks(raw["exempt"], f"{path}.exempt")
        return RateLimitSettings(**fields)

    def tcp(self, raw: Any) -> TcpSettings:
        raw = self.mapping(raw, "tcp", ("idle_timeout", "max_connections", "max_per_client"))
        default = TcpSettings()
        idle = self.convert(raw.get("idle_timeout", default.idle_timeout), "tcp.idle_timeout",
                            parse_duration)
        cap = self.whole(raw.get("max_connections", default.max_connections),
                         "tcp.max_connections", 1)
        per_client = self.whole(raw.get("max_per_client", default.max_per_client),
                                "tcp.max_per_client", 1)
        return TcpSettings(idle, cap, per_client)
