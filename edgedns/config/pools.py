"""The pools in a zone and their health checks (``defaults.check`` and every override)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgedns.config import yaml as yaml_file
from edgedns.config.reader import Reader, parse_address, parse_duration
from edgedns.dns import names, rdata
from edgedns.dns.presentation import shown
from edgedns.pools.health.checks import CHECK_TYPES, CheckSpec
from edgedns.pools.pool import POLICIES, WHEN_ALL_DOWN, Member, PoolSpec

DEFAULT_POOL_TTL = 1
MIN_INTERVAL = 0.1
MIN_RETRY_INTERVAL = 0.02
CHECK_KEYS = ("type", "interval", "timeout", "fall", "rise", "retry_interval", "port",
              "address", "path", "expect_status", "expect_body", "host", "verify_tls")
POOL_KEYS = ("ttl", "policy", "count", "preempt", "check", "members", "when_all_down",
             "fallback")
MEMBER_KEYS = ("address", "weight", "priority", "check")


class PoolsSection(Reader):
    """Reads pools (``zones.<apex>.pools.<name>``) and checks; `default_check` is what
    ``defaults.check`` set."""

    default_check: CheckSpec

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
            self.convert(a, f"{path}.fallback[{i}]", parse_address)
            for i, a in enumerate(fallback_raw)
        )
        if when == "fallback" and not fallback:
            raise self.error(f"{path}.fallback", "when_all_down: fallback needs addresses here")
        if fallback and when != "fallback":
            raise self.error(f"{path}.fallback", "only used with when_all_down: fallback")
        return PoolSpec(name, ttl, policy, count, preempt, members, when, fallback)

    def member(self, raw: Any, path: str, check: CheckSpec) -> Member:
        if not isinstance(raw, dict):
            return Member(self.convert(raw, path, parse_address), check)
        raw = self.mapping(raw, path, MEMBER_KEYS)
        if "address" not in raw:
            raise self.error(f"{path}.address", "is required")
        address = self.convert(raw["address"], f"{path}.address", parse_address)
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
        for key in ("interval", "timeout", "retry_interval"):
            if key in raw:
                fields[key] = self.convert(raw[key], f"{path}.{key}", parse_duration)
        for key in ("fall", "rise"):
            if key in raw:
                fields[key] = self.whole(raw[key], f"{path}.{key}", 1)
        if "port" in raw:
            fields["port"] = self.whole(raw["port"], f"{path}.port", 1, 65535)
        if "address" in raw:
            fields["address"] = self.convert(raw["address"], f"{path}.address", parse_address)
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
        if not MIN_RETRY_INTERVAL <= spec.retry_interval <= spec.interval:
            raise self.error(f"{path}.retry_interval", f"must be at least "
                             f"{MIN_RETRY_INTERVAL * 1000:.0f}ms and at most the interval "
                             f"({spec.interval:g}s)")
        if spec.type == "tcp" and spec.port is None:
            raise self.error(f"{path}.port", "a tcp check needs a port")
        if spec.type in ("icmp", "none") and "port" in raw:
            raise self.error(f"{path}.port", f"has no meaning for a {spec.type} check")
        return spec

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
