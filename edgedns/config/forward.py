"""The `forward` and `cache` sections: upstreams, routes, the ACL, the answer cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedns.config.reader import (
    Reader,
    parse_duration,
    parse_endpoint,
    parse_size,
    positive_duration,
)
from edgedns.dns import names
from edgedns.dns.presentation import shown
from edgedns.forward.cache import CacheSettings
from edgedns.forward.forwarder import DEFAULT_ALLOW, ForwardSettings, Route, Upstream
from edgedns.forward.forwarder import POLICIES as FORWARD_POLICIES

FORWARD_KEYS = ("upstreams", "policy", "timeout", "max_fails", "health_check", "max_inflight",
                "allow", "zones", "tls_ca")
ROUTE_KEYS = ("upstreams", "policy", "timeout")
CACHE_KEYS = ("size", "max_bytes", "min_ttl", "max_ttl", "serve_stale")


class ForwardSection(Reader):
    """Reads `forward` (with its conditional `zones`) and `cache`."""

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
        allow = self.networks(raw.get("allow", list(DEFAULT_ALLOW)), f"{path}.allow")
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
                         positive_duration),
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
                               f"{path}.timeout", positive_duration)
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
        max_bytes = self.convert(raw.get("max_bytes", base.max_bytes), f"{path}.max_bytes",
                                 parse_size)
        return CacheSettings(size, max_bytes, **seconds)


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
