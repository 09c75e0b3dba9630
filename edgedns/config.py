"""The YAML config file → a frozen, fully validated `Config`.

Everything a running server needs is checked here, once: unknown keys, bad addresses, record
values, conflicting zone data. Every error is a `ConfigError` naming the file, the key path
(``zones.site.lan.records.www.CNAME``) and what is wrong.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgedns import names, rdata, zonefile
from edgedns.presentation import PresentationError, Token, split
from edgedns.zone import Record, Zone, ZoneError


class ConfigError(Exception):
    """A config that cannot be served. ``str()`` is the complete, user-facing message."""

    def __init__(self, source: Path | str, path: str, message: str) -> None:
        self.source = str(source)
        self.path = path
        self.message = message
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
class Config:
    source: Path
    listen: tuple[Endpoint, ...]
    tcp: TcpSettings
    zones: tuple[Zone, ...]


DEFAULT_LISTEN = ("127.0.0.1:5353",)
DEFAULT_TTL = 300
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
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        for mark in (getattr(exc, "context_mark", None), getattr(exc, "problem_mark", None)):
            if mark is not None:
                mark.name = str(path)  # instead of "<unicode string>"
        raise ConfigError(path, "", f"not valid YAML: {exc}") from None
    return _Parser(path).config(raw if raw is not None else {}, listen_override)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # SafeLoader reports the unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``1s``, ``1m``, ``1h``, ``1d`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration (e.g. 250ms, 2s, 1m, or seconds)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


def parse_endpoint(text: str, default_port: int = 53) -> Endpoint:
    """``127.0.0.1:5353``, ``[::1]:53``, or a bare address (port `default_port`)."""
    text = str(text).strip()
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: write IPv6 as [address]:port")
        if rest:
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    return Endpoint(host, port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: port must be 0-65535")
    return int(text)


class _Parser:
    """Walks the YAML tree, keeping the key path for errors."""

    def __init__(self, source: Path) -> None:
        self.source = source

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
            raise self.error(path, str(exc)) from None

    def config(self, raw: Any, listen_override: tuple[str, ...]) -> Config:
        top = self.mapping(raw, "", ("listen", "tcp", "zones"))
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
        return Config(self.source, listen, self.tcp(top.get("tcp", {})), zones)

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
                           ("ttl", "soa", "ns", "records", "file"))
        ttl = self.convert(str(raw.get("ttl", DEFAULT_TTL)), f"{path}.ttl", rdata.parse_ttl)
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
        try:
            return Zone.build(origin, records)
        except ZoneError as exc:
            if file is None:
                raise self.error(exc.where, str(exc)) from None
            # A master file's records are placed by file:line; report them under the key.
            where = exc.where if exc.where.startswith(f"{file}:") else str(file)
            raise self.error(f"{path}.file", f"{where}: {exc}") from None

    def zone_file(self, file: Path, origin: names.Name, ttl: int, path: str) -> list[Record]:
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
            text = " ".join(str(values[f]) for f in fields)
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
                owner_ttl = self.convert(str(rrsets["ttl"]), f"{owner_path}.ttl", rdata.parse_ttl)
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
        text = str(value)
        try:
            if rtype.upper() == "TXT" and not text.lstrip().startswith('"'):
                tokens = [Token(text, True)]  # unquoted YAML text is one string, spaces and all
            else:
                tokens = split(text)
            code, rd = rdata.parse(rtype, tokens, origin)
        except (rdata.RdataError, PresentationError) as exc:
            raise self.error(where, str(exc)) from None
        return Record(owner, code, ttl, rd, where)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "empty"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )
