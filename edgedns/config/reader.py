"""Reading one YAML tree into settings: key paths for errors, and the value parsers every
section shares (durations, endpoints, addresses, networks).

`Reader` walks the tree keeping the key path, so every error is a `ConfigError` naming the
file, the key path (``zones.site.lan.records.www.CNAME``) and what is wrong. Each section of
the config is read by a mixin in its own module (`zones`, `pools`, `forward`); `schema`
puts them together.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedns.config import yaml as yaml_file
from edgedns.dns import names
from edgedns.dns.presentation import brief, shown

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))*\d+(?:\.\d+)?(?:ms|s|m|h|d|w)?",
                       re.IGNORECASE)
"""Parts of a number and a unit; the last may leave its unit out (seconds), as in TTLs."""
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?", re.IGNORECASE)
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
                   "w": 604800.0}


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


def parse_duration(value: Any) -> float:
    """Seconds from a plain number of seconds, or units combined as zone files write TTLs:
    ``250ms``, ``1.5s``, ``1m30s`` (or ``1m30``), ``1h``, ``2d12h``, ``1w``: every TTL is a
    duration too, so one syntax serves every key."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        if not _DURATION.fullmatch(text):
            raise ValueError(f"{shown(value)} is not a duration (seconds, or units like "
                             "250ms, 1m30s, 2h)")
        seconds = sum(float(number) * _DURATION_UNITS[unit.lower() if unit else None]
                      for number, unit in _DURATION_PART.findall(text))
    if not math.isfinite(seconds):
        raise ValueError(f"{shown(value)} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{shown(value)} is negative")
    return seconds


_SIZE = re.compile(r"(\d+)\s*(KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(value: Any) -> int:
    """Bytes from ``32MiB``, ``512KiB``, ``1GiB`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a size")
    match = _SIZE.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{shown(value)} is not a size (bytes, or with KiB, MiB or GiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def parse_endpoint(text: str, default_port: int = 53) -> Endpoint:
    """``127.0.0.1:5353``, ``[::1]:53``, or a bare address (port `default_port`)."""
    if text is None:
        raise ValueError("expected ADDR:PORT, not null")
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


class Reader:
    """Walks the YAML tree, keeping the key path for errors."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.files: list[Path] = [source]
        """Every file read (or named) so far: itself, zone files, the DoT CA file."""

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(self.source, path, message)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, not {kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.error(
                    join(path, key), f"unknown key (allowed: {', '.join(allowed)})"
                )
        return value

    def convert(self, value: Any, path: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(value)
        except (ValueError, TypeError, names.BadName) as exc:
            raise self.error(path, brief(str(exc))) from None

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

    def text(self, value: Any, path: str, what: str) -> str:
        """`value` as written, stripped; refused when empty (`what` says what it must be)."""
        text = yaml_file.source_text(value).strip()
        if not text:
            raise self.error(path, f"must be {what}")
        return text

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, not {shown(value)}")
        return value

    def networks(self, raw: Any, path: str) -> tuple[Network, ...]:
        """A list of networks (``10.0.0.0/8``, ``fc00::/7``; a bare address is its /32 or /128)."""
        if not isinstance(raw, list):
            raise self.error(path, "must be a list of networks like 10.0.0.0/8")
        return tuple(self.convert(item, f"{path}[{i}]", parse_network)
                     for i, item in enumerate(raw))

def parse_address(value: Any) -> str:
    """Canonical text of an IPv4 or IPv6 address."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"{shown(value)} is not an IP address") from None


def parse_network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(f"{shown(value)} is not a network like 10.0.0.0/8 or fc00::/7") from None


def positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{shown(value)} must be above zero")
    return seconds


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def kind(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return {dict: "a mapping", list: "a list"}.get(type(value), "empty")
    # YAML numbers are int/float subclasses that keep their text; name the plain type.
    kind = next((t for t in (bool, int, float, str) if isinstance(value, t)), type(value))
    return f"{kind.__name__} {shown(value)}"
