"""The YAML config file → a frozen, fully validated `Config`.

Everything a running server needs is checked here, once: unknown keys, bad addresses, record
values, conflicting zone data. Every error is a `ConfigError` naming the file, the key path
(``zones.site.lan.records.www.CNAME``) and what is wrong.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgedns import heap
from edgedns.authority.zone import Record, Zone, ZoneError
from edgedns.config import yaml as yaml_file
from edgedns.dns import names, rdata, zonefile
from edgedns.dns.presentation import PresentationError, brief, shown, split
from edgedns.forward.cache import CacheSettings
from edgedns.forward.forwarder import DEFAULT_ALLOW, ForwardSettings, Route, Upstream
from edgedns.forward.forwarder import POLICIES as FORWARD_POLICIES
from edgedns.pools.health.checks import CHECK_TYPES, CheckSpec
from edgedns.pools.pool import POLICIES, WHEN_ALL_DOWN, Member, PoolSpec


class ConfigError(Exception):
    """A config that cannot be served. ``str()`` is the complete, user-facing message."""

    def __init__(self, source: Path | str, path: str, message: str) -> None:
        self.source = str(source)
        self.path = path
        self.message = message
        self.files: tuple[Path, ...] = (Path(source),)
        """The files the config named before the error, missing ones included (so a
        reload can be retried when one of them is created or fixed)."""
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TcpSettings:
    idle_timeout: float = 10.0
    """Seconds a TCP connection may sit without a complete query (RFC 7766 §6.2.3)."""
    max_connections: int = 256
    """Open TCP connections across all listeners; new ones are refused above this."""


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
    files: tuple[Path, ...] = ()
    """Every file the config was read from: itself, zone files, the DoT CA file."""


log = logging.getLogger(__name__)

PROGRESS_AFTER = 1.0
"""Seconds a zone may take to load before its load is logged (a progress line at start-up
and on reload for big zones)."""
DEFAULT_LISTEN = ("127.0.0.1:5353",)
DEFAULT_TTL = 300
DEFAULT_POOL_TTL = 5
MIN_INTERVAL = 0.1
CHECK_KEYS = ("type", "interval", "timeout", "fall", "rise", "port", "address", "path",
              "expect_status", "expect_body", "host", "verify_tls")
POOL_KEYS = ("ttl", "policy", "count", "preempt", "check", "members", "when_all_down",
             "fallback")
MEMBER_KEYS = ("address", "weight", "priority", "check")
FORWARD_KEYS = ("upstreams", "policy", "timeout", "max_fails", "health_check", "max_inflight",
                "allow", "zones", "tls_ca")
ROUTE_KEYS = ("upstreams", "policy", "timeout")
CACHE_KEYS = ("size", "min_ttl", "max_ttl", "serve_stale")
TOP_KEYS = ("listen", "tcp", "defaults", "zones", "forward", "cache", "admin", "reload_interval",
            "query_log", "shutdown_timeout")
ADMIN_KEYS = ("listen", "token")
SOA_DEFAULTS = {"serial": 1, "refresh": 3600, "retry": 600, "expire": 86400, "minimum": 30}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def load(path: str | Path, listen_override: tuple[str, ...] = ()) -> Config:
    """Read, parse and validate the config at `path`. Raises `ConfigError`."""
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
    try:
        with heap.collector_paused():  # see edgedns.heap: a big zone loads far faster
            return parser.config(raw if raw is not None else {}, listen_override)
    except ConfigError as exc:
        exc.files = tuple(parser.files)
        raise


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``1s``, ``1m``, ``1h``, ``1d`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip())
        if not match:
            raise ValueError(f"{shown(value)} is not a duration (e.g. 250ms, 2s, 1m, or seconds)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"{shown(value)} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{shown(value)} is negative")
    return seconds


def parse_endpoint(text: str, default_port: int = 53) -> Endpoint:
    """``127.0.0.1:5353``, ``[::1]:53``, or a bare address (port `default_port`)."""
    text = str(text).strip()
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{shown(text)}: write IPv6 as [address]:port")
        if rest:
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{shown(text)}: {shown(host)} is not an IP address") from None
    return Endpoint(host, port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{shown(whole)}: port must be 0-65535")
    return int(text)


class _Parser:
    """Walks the YAML tree, keeping the key path for errors."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.files: list[Path] = [source]
        """Every file read (or named) so far: itself, zone files, the DoT CA file."""

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(self.source, path, message)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, not {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.error(
                    _join(path, key), f"unknown key (allowed: {', '.join(allowed)})"
                )
        return value

    def convert(self, value: Any, path: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(value)
        except (ValueError, TypeError, names.BadName) as exc:
            raise self.error(path, brief(str(exc))) from None

    def config(self, raw: Any, listen_override: tuple[str, ...]) -> Config:
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
        zones = tuple(self.zone(str(k), v, f"zones.{k}") for k, v in zones_raw.items())
        apexes = [z.origin for z in zones]
        if len(set(apexes)) != len(apexes):
            raise self.error("zones", "the same zone is listed twice")
        forward = self.forward(top["forward"], "forward") if "forward" in top else None
        given: dict[str, Any] = {}  # the rest keep Config's defaults
        if "admin" in top:
            given["admin"] = self.admin(top["admin"], "admin")
        for key in ("reload_interval", "shutdown_timeout"):
            if key in top:
                given[key] = self.convert(top[key], key, parse_duration)
        if "query_log" in top:
            given["query_log"] = self.boolean(top["query_log"], "query_log")
        return Config(
            self.source, listen, self.tcp(top.get("tcp", {})), zones, tuple(self.pools),
            forward, self.cache(top.get("cache", {}), "cache"), files=tuple(self.files),
            **given,
        )

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

    def forward(self, raw: Any, path: str) -> ForwardSettings:
        raw = self.mapping(raw, path, FORWARD_KEYS)
        default = self.route(raw, path, None)
        zones = []
        zones_raw = raw.get("zones", {})
        for suffix, route_raw in self.mapping(zones_raw, f"{path}.zones",
                                               tuple(zones_raw or ())).items():
            route_path = f"{path}.zones.{suffix}"
            name = self.convert(str(suffix).rstrip(".") + ".", route_path, names.from_text)
            route_raw = self.mapping(route_raw, route_path, ROUTE_KEYS)
            zones.append((name, self.route(route_raw, route_path, default)))
        base = ForwardSettings(default)
        allow_raw = raw.get("allow", list(DEFAULT_ALLOW))
        if not isinstance(allow_raw, list):
            raise self.error(f"{path}.allow", "must be a list of networks like 10.0.0.0/8")
        allow = tuple(
            self.convert(item, f"{path}.allow[{i}]", _network) for i, item in enumerate(allow_raw)
        )
        tls_ca = None
        if "tls_ca" in raw:
            tls_ca = str(self.source.parent / str(raw["tls_ca"]))
            self.files.append(Path(tls_ca))
            if not Path(tls_ca).is_file():
                raise self.error(f"{path}.tls_ca", f"{tls_ca} is not a readable file")
        return ForwardSettings(
            default,
            tuple(zones),
            self.whole(raw.get("max_fails", base.max_fails), f"{path}.max_fails", 1),
            self.convert(raw.get("health_check", base.health_check), f"{path}.health_check",
                         _positive_duration),
            self.whole(raw.get("max_inflight", base.max_inflight), f"{path}.max_inflight", 1),
            base.max_waiting,
            allow,
            tls_ca,
        )

    def route(self, raw: dict, path: str, inherit: Route | None) -> Route:
        if "upstreams" not in raw:
            if inherit is None:
                raise self.error(f"{path}.upstreams", "is required: a list of servers, or the "
                                 "path of a resolv.conf file")
            upstreams = inherit.upstreams
        else:
            upstreams = self.upstreams(raw["upstreams"], f"{path}.upstreams")
        policy = self.choice(raw.get("policy", inherit.policy if inherit else "sequential"),
                             f"{path}.policy", FORWARD_POLICIES)
        timeout = self.convert(raw.get("timeout", inherit.timeout if inherit else 2.0),
                               f"{path}.timeout", _positive_duration)
        return Route(upstreams, policy, timeout)

    def upstreams(self, raw: Any, path: str) -> tuple[Upstream, ...]:
        if isinstance(raw, str) and raw.startswith("/"):
            try:
                return self.convert(raw, path, _resolv_conf)
            except OSError as exc:
                raise self.error(path, f"cannot read {raw}: {exc.strerror}") from None
        if not isinstance(raw, list) or not raw:
            raise self.error(path, "must be a non-empty list of servers, or a resolv.conf path")
        return tuple(self.convert(item, f"{path}[{i}]", _upstream) for i, item in enumerate(raw))

    def cache(self, raw: Any, path: str) -> CacheSettings:
        raw = self.mapping(raw, path, CACHE_KEYS)
        base = CacheSettings()
        size = self.whole(raw.get("size", base.size), f"{path}.size", 1)
        seconds = {}
        for key in ("min_ttl", "max_ttl", "serve_stale"):
            value = raw.get(key, getattr(base, key))
            seconds[key] = int(self.convert(value, f"{path}.{key}", parse_duration))
        if seconds["min_ttl"] > seconds["max_ttl"]:
            raise self.error(f"{path}.min_ttl", "is above max_ttl")
        return CacheSettings(size, **seconds)

    def tcp(self, raw: Any) -> TcpSettings:
        raw = self.mapping(raw, "tcp", ("idle_timeout", "max_connections"))
        default = TcpSettings()
        idle = self.convert(raw.get("idle_timeout", default.idle_timeout), "tcp.idle_timeout",
                            parse_duration)
        cap = raw.get("max_connections", default.max_connections)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise self.error("tcp.max_connections", "must be a whole number of at least 1")
        return TcpSettings(idle, cap)

    def zone(self, apex_text: str, raw: Any, path: str) -> Zone:
        origin = self.convert(apex_text if apex_text.endswith(".") else apex_text + ".", path,
                              names.from_text)
        raw = self.mapping(raw if raw is not None else {}, path,
                           ("ttl", "soa", "ns", "records", "file", "pools"))
        ttl = self.convert(yaml_file.source_text(raw.get("ttl", DEFAULT_TTL)), f"{path}.ttl",
                           rdata.parse_ttl)
        file = self.source.parent / str(raw["file"]) if "file" in raw else None
        if file is not None:
            others = [k for k in ("soa", "ns", "records") if k in raw]
            if others:
                raise self.error(f"{path}.{others[0]}", "cannot be combined with 'file': the "
                                 "master file holds the whole zone")
            records = self.zone_file(file, origin, ttl, f"{path}.file")
        else:
            records = [
                *self.soa_and_ns(raw, origin, ttl, path),
                *self.records(raw.get("records", {}), origin, ttl, f"{path}.records"),
            ]
        pools_raw = raw.get("pools", {})
        pools_raw = self.mapping(pools_raw, f"{path}.pools", tuple(pools_raw or ()))
        pools: list[PoolSpec] = []
        pool_paths = {}  # Zone.build names a pool "pool NAME"; errors should give its key path
        for name_text, pool_raw in pools_raw.items():
            pool_path = f"{path}.pools.{name_text}"
            pools.append(self.pool(str(name_text), pool_raw, origin, pool_path))
            pool_paths[f"pool {names.to_text(pools[-1].name)}"] = pool_path
        self.pools.extend(pools)
        started = time.monotonic()
        try:
            zone = Zone.build(origin, records, pools)
        except zonefile.ZoneFileError as exc:
            raise self.error(f"{path}.file", str(exc)) from None
        except ZoneError as exc:
            if exc.where in pool_paths:
                raise self.error(pool_paths[exc.where], str(exc)) from None
            if file is None:
                raise self.error(exc.where, str(exc)) from None
            # A master file's records are placed by file:line; report them under the key.
            where = exc.where if exc.where.startswith(f"{file}:") else str(file)
            raise self.error(f"{path}.file", f"{where}: {exc}") from None
        took = time.monotonic() - started
        if took >= PROGRESS_AFTER:
            log.info("zone %s: %d names loaded in %.1f s", names.to_text(origin),
                     len(zone.nodes), took)
        return zone

    def pool(self, name_text: str, raw: Any, origin: names.Name, path: str) -> PoolSpec:
        name = self.convert(name_text, path, lambda t: names.from_text(t, origin))
        raw = self.mapping(raw, path, POOL_KEYS)
        ttl = self.convert(yaml_file.source_text(raw.get("ttl", DEFAULT_POOL_TTL)),
                           f"{path}.ttl", rdata.parse_ttl)
        policy = self.choice(raw.get("policy", "all"), f"{path}.policy", POLICIES)
        count = raw.get("count")
        if count is not None:
            count = self.whole(count, f"{path}.count", 1)
        preempt = self.boolean(raw.get("preempt", True), f"{path}.preempt")
        if "preempt" in raw and policy != "failover":
            raise self.error(f"{path}.preempt", "only applies to policy failover")
        check = self.check(raw.get("check", {}), f"{path}.check", self.default_check)
        members_raw = raw.get("members")
        if not isinstance(members_raw, list) or not members_raw:
            raise self.error(f"{path}.members", "must be a non-empty list of addresses")
        members = tuple(
            self.member(item, f"{path}.members[{i}]", check) for i, item in enumerate(members_raw)
        )
        seen: set[str] = set()
        for i, member in enumerate(members):
            if member.address in seen:
                raise self.error(f"{path}.members[{i}]", f"{member.address} is listed twice")
            seen.add(member.address)
        when = self.choice(raw.get("when_all_down", "serve_all"), f"{path}.when_all_down",
                           WHEN_ALL_DOWN)
        fallback_raw = raw.get("fallback", [])
        if isinstance(fallback_raw, str):
            fallback_raw = [fallback_raw]
        if not isinstance(fallback_raw, list):
            raise self.error(f"{path}.fallback", "must be a list of addresses")
        fallback = tuple(
            self.convert(a, f"{path}.fallback[{i}]", _address) for i, a in enumerate(fallback_raw)
        )
        if when == "fallback" and not fallback:
            raise self.error(f"{path}.fallback", "when_all_down: fallback needs addresses here")
        if fallback and when != "fallback":
            raise self.error(f"{path}.fallback", "only used with when_all_down: fallback")
        return PoolSpec(name, ttl, policy, count, preempt, members, when, fallback)

    def member(self, raw: Any, path: str, check: CheckSpec) -> Member:
        if not isinstance(raw, dict):
            return Member(self.convert(raw, path, _address), check)
        raw = self.mapping(raw, path, MEMBER_KEYS)
        if "address" not in raw:
            raise self.error(f"{path}.address", "is required")
        address = self.convert(raw["address"], f"{path}.address", _address)
        weight = self.whole(raw.get("weight", 1), f"{path}.weight", 1)
        priority = self.whole(raw.get("priority", 0), f"{path}.priority", 0)
        member_check = self.check(raw.get("check", {}), f"{path}.check", check)
        return Member(address, member_check, weight, priority)

    def check(self, raw: Any, path: str, base: CheckSpec) -> CheckSpec:
        """`raw` check keys laid over `base`, validated as a whole."""
        raw = self.mapping(raw, path, CHECK_KEYS)
        fields: dict[str, Any] = {}
        if "type" in raw:
            fields["type"] = self.choice(raw["type"], f"{path}.type", CHECK_TYPES)
            if fields["type"] != base.type and "port" not in raw:
                fields["port"] = None  # a port chosen for another kind of check does not carry
        for key in ("interval", "timeout"):
            if key in raw:
                fields[key] = self.convert(raw[key], f"{path}.{key}", parse_duration)
        for key in ("fall", "rise"):
            if key in raw:
                fields[key] = self.whole(raw[key], f"{path}.{key}", 1)
        if "port" in raw:
            fields["port"] = self.whole(raw["port"], f"{path}.port", 1, 65535)
        if "address" in raw:
            fields["address"] = self.convert(raw["address"], f"{path}.address", _address)
        if "path" in raw:
            text = yaml_file.source_text(raw["path"])
            if not text.startswith("/") or any(c in text for c in " \r\n"):
                raise self.error(f"{path}.path", "must start with / and hold no spaces")
            fields["path"] = text
        if "expect_status" in raw:
            fields["expect_status"] = self.convert(
                raw["expect_status"], f"{path}.expect_status", _status_codes)
        for key in ("expect_body", "host"):
            if key in raw:
                fields[key] = yaml_file.source_text(raw[key])
        if "verify_tls" in raw:
            fields["verify_tls"] = self.boolean(raw["verify_tls"], f"{path}.verify_tls")
        spec = replace(base, **fields)
        if spec.interval < MIN_INTERVAL:
            raise self.error(f"{path}.interval", f"must be at least {MIN_INTERVAL * 1000:.0f}ms")
        if not 0 < spec.timeout <= spec.interval:
            raise self.error(f"{path}.timeout", f"must be above 0 and at most the interval "
                             f"({spec.interval:g}s), so probes of one target never overlap")
        if spec.type == "tcp" and spec.port is None:
            raise self.error(f"{path}.port", "a tcp check needs a port")
        if spec.type in ("icmp", "none") and "port" in raw:
            raise self.error(f"{path}.port", f"has no meaning for a {spec.type} check")
        return spec

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.error(path, f"{shown(value)} is not one of: {', '.join(allowed)}")
        return value

    def whole(self, value: Any, path: str, low: int, high: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (
            high is not None and value > high
        ):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise self.error(path, f"must be a whole number {bound}, not {shown(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, not {shown(value)}")
        return value

    def zone_file(self, file: Path, origin: names.Name, ttl: int, path: str
                  ) -> Iterable[Record]:
        self.files.append(file)
        try:
            return zonefile.load(file, origin, ttl)
        except OSError as exc:
            raise self.error(path, f"cannot read {file}: {exc.strerror}") from None
        except zonefile.ZoneFileError as exc:
            raise self.error(path, str(exc)) from None

    def soa_and_ns(self, raw: dict, origin: names.Name, ttl: int, path: str) -> list[Record]:
        ns_raw = raw.get("ns", ["ns1"])
        if isinstance(ns_raw, str):
            ns_raw = [ns_raw]
        if not isinstance(ns_raw, list) or not ns_raw:
            raise self.error(f"{path}.ns", "must be a list of name server names")
        out = []
        for i, item in enumerate(ns_raw):
            where = f"{path}.ns[{i}]"
            out.append(self.record(origin, "NS", item, origin, ttl, where))
        fields = ("mname", "rname", *SOA_DEFAULTS)
        soa = self.mapping(raw.get("soa", {}), f"{path}.soa", fields)
        defaults = {"mname": str(ns_raw[0]), "rname": "hostmaster", **SOA_DEFAULTS}

        def soa_record(values: dict, where: str) -> Record:
            text = " ".join(yaml_file.source_text(values[f]) for f in fields)
            return self.record(origin, "SOA", text, origin, ttl, where)

        # Each field given is tried alone against the defaults, so an error names its key.
        for key, value in soa.items():
            where = f"{path}.soa.{key}"
            single = isinstance(value, (str, int, float)) and len(str(value).split()) == 1
            if not single or isinstance(value, bool):
                raise self.error(where, f"must be a single name or number, not {_kind(value)}")
            soa_record({**defaults, key: value}, where)
        out.append(soa_record({**defaults, **soa}, f"{path}.soa"))
        return out

    def records(self, raw: Any, origin: names.Name, ttl: int, path: str) -> list[Record]:
        if not isinstance(raw, dict):
            raise self.error(path, f"must be a mapping of owner names, not {_kind(raw)}")
        out: list[Record] = []
        for owner_text, rrsets in raw.items():
            owner_path = f"{path}.{owner_text}"
            owner = self.convert(str(owner_text), owner_path, lambda t: names.from_text(t, origin))
            if not isinstance(rrsets, dict):
                raise self.error(owner_path, "must map record types to values, e.g. {A: 192.0.2.1}")
            owner_ttl = ttl
            if "ttl" in rrsets:
                owner_ttl = self.convert(yaml_file.source_text(rrsets["ttl"]),
                                         f"{owner_path}.ttl", rdata.parse_ttl)
            for rtype, values in rrsets.items():
                if rtype == "ttl":
                    continue
                type_path = f"{owner_path}.{rtype}"
                if str(rtype).upper() not in rdata.SYNTAX:
                    raise self.error(type_path, "unknown key (a record type: "
                                     f"{', '.join(rdata.SYNTAX)}; or ttl)")
                if str(rtype).upper() == "SOA":
                    raise self.error(type_path, "set the SOA with the zone's 'soa' key")
                items = values if isinstance(values, list) else [values]
                for i, value in enumerate(items):
                    where = type_path if len(items) == 1 else f"{type_path}[{i}]"
                    out.append(self.record(owner, str(rtype), value, origin, owner_ttl, where))
        return out

    def record(
        self, owner: names.Name, rtype: str, value: Any, origin: names.Name, ttl: int, where: str
    ) -> Record:
        if isinstance(value, (dict, list)) or value is None:
            raise self.error(where, f"must be a value in zone-file syntax, not {_kind(value)}")
        if isinstance(value, bool):
            raise self.error(where, "YAML read this as a boolean (yes/no/on/off/true/false); "
                             "quote it to use it as text")
        text = yaml_file.source_text(value)
        try:
            if rtype.upper() == "TXT" and not text.lstrip().startswith('"'):
                values = [text]  # unquoted YAML text is one string, spaces and all
            else:
                values = [token.text for token in split(text)]
            code, rd = rdata.parse(rtype, values, origin)
        except (rdata.RdataError, PresentationError) as exc:
            raise self.error(where, str(exc)) from None
        return Record(owner, code, ttl, rd, where)


def _address(value: Any) -> str:
    """Canonical text of an IPv4 or IPv6 address."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"{shown(value)} is not an IP address") from None


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(f"{shown(value)} is not a network like 10.0.0.0/8 or fc00::/7") from None


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{shown(value)} must be above zero")
    return seconds


def _upstream(value: Any) -> Upstream:
    """``192.0.2.53``, ``198.51.100.53:5353``, ``[2001:db8::1]:53``, or DNS over TLS as
    ``tls://192.0.2.99@dns.example.net`` (port 853 unless given)."""
    text = str(value).strip()
    tls_name = None
    default_port = 53
    if text.startswith("tls://"):
        text, at, tls_name = text[len("tls://"):].partition("@")
        if not at or not tls_name:
            raise ValueError(f"{shown(value)}: write DoT upstreams as tls://ADDRESS@NAME")
        default_port = 853
    endpoint = parse_endpoint(text, default_port)
    if endpoint.port == 0:
        raise ValueError(f"{shown(value)}: port 0 is not an upstream")
    return Upstream(endpoint.host, endpoint.port, tls_name)


def _resolv_conf(path: str) -> tuple[Upstream, ...]:
    """The ``nameserver`` lines of a resolv.conf file."""
    hosts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                hosts.append(_upstream(parts[1].split("%")[0]))
    if not hosts:
        raise ValueError(f"{path} lists no nameserver")
    return tuple(hosts)


def _status_codes(value: Any) -> tuple[int, ...]:
    """``200``, ``"200-299"`` or a list of those → the status codes they cover."""
    items = value if isinstance(value, list) else [value]
    codes: set[int] = set()
    for item in items:
        low, _, high = str(item).partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            raise ValueError(f"{shown(item)} is not a status code or range like 200-299")
        first, last = int(low), int(high or low)
        if not 100 <= first <= last <= 599:
            raise ValueError(f"{shown(item)} is not within 100-599")
        codes.update(range(first, last + 1))
    return tuple(sorted(codes))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _kind(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return {dict: "a mapping", list: "a list"}.get(type(value), "empty")
    # YAML numbers are int/float subclasses that keep their text; name the plain type.
    kind = next((t for t in (bool, int, float, str) if isinstance(value, t)), type(value))
    return f"{kind.__name__} {shown(value)}"
