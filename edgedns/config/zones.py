"""The `zones` section: zones from YAML records or master files, with their pools, and hosts
files (/etc/hosts format) whose names become A/AAAA records, with PTR records in any
reverse zone served, as dnsmasq does."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from edgedns.authority.zone import Record, Zone, ZoneError
from edgedns.config import yaml as yaml_file
from edgedns.config.reader import Reader, kind
from edgedns.dns import names, rdata, zonefile
from edgedns.dns.presentation import PresentationError, split
from edgedns.pools.pool import PoolSpec

log = logging.getLogger(__name__)

DEFAULT_TTL = 300
PROGRESS_AFTER = 1.0
"""Seconds a zone may take to load before its load is logged (a progress line at start-up
and on reload for big zones)."""
SOA_DEFAULTS = {"serial": 1, "refresh": 3600, "retry": 600, "expire": 86400, "minimum": 30}
ZONE_KEYS = ("ttl", "soa", "ns", "records", "file", "pools", "hosts")


class ZonesSection(Reader):
    """Reads ``zones.<apex>``. Its pools are read by `PoolsSection.pool` (both are mixed into
    the parser) and collected in `self.pools`."""

    pools: list[PoolSpec]
    hosts_ptrs: dict[names.Name, list[Record]]
    """PTR records from every zone's hosts file, by the reverse zone (served) they go in."""

    def read_hosts(self, zones_raw: dict) -> dict[str, list[Record]]:
        """First pass over the zones: each one's hosts file (`zones.Z.hosts`) read into its
        A/AAAA records (returned by zone key) and PTR records (kept in `hosts_ptrs` for the
        served reverse zones they belong in; addresses outside them get none)."""
        origins = {}
        for apex_text in zones_raw:
            text = str(apex_text)
            origins[text] = self.convert(text if text.endswith(".") else text + ".",
                                         f"zones.{apex_text}", names.from_text)
        by_zone: dict[str, list[Record]] = {}
        self.hosts_ptrs = {}
        for apex_text, raw in zones_raw.items():
            if not isinstance(raw, dict) or "hosts" not in raw:
                continue
            origin = origins[str(apex_text)]
            path = f"zones.{apex_text}.hosts"
            file = self.source.parent / yaml_file.source_text(raw["hosts"])
            self.files.append(file)
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise self.error(path, f"cannot read {file}: {reason}") from None
            ttl = self.convert(yaml_file.source_text(raw.get("ttl", DEFAULT_TTL)),
                               f"zones.{apex_text}.ttl", rdata.parse_ttl)
            records = by_zone.setdefault(str(apex_text), [])
            for line_no, line in enumerate(text.splitlines(), 1):
                fields = line.split("#", 1)[0].split()
                if not fields:
                    continue
                where = f"{path} ({file}:{line_no})"
                if len(fields) < 2:
                    raise self.error(where, "an address and at least one name are needed")
                address = self.convert(fields[0], where, _address)
                rtype = "AAAA" if ":" in address else "A"
                owners = [self.convert(n, where, partial(_host_name, origin=origin))
                          for n in fields[1:]]
                for owner in owners:
                    records.append(self.record(owner, rtype, address, origin, ttl, where))
                reverse = names.from_text(ipaddress.ip_address(address).reverse_pointer + ".")
                home = _zone_of(reverse, origins.values())
                if home is not None:
                    self.hosts_ptrs.setdefault(home, []).append(self.record(
                        reverse, "PTR", names.to_text(owners[0]), home, ttl, where))
        return by_zone

    def zone(self, apex_text: str, raw: Any, path: str,
             hosts: list[Record] | None = None) -> Zone:
        origin = self.convert(apex_text if apex_text.endswith(".") else apex_text + ".", path,
                              names.from_text)
        raw = self.mapping(raw if raw is not None else {}, path, ZONE_KEYS)
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
        extra = [*(hosts or ()), *self.hosts_ptrs.get(origin, ())]
        if extra:
            records = [*records, *extra]
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
            zone = Zone.build(origin, records, pools, str(file) if file is not None else None)
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
                raise self.error(where, f"must be a single name or number, not {kind(value)}")
            soa_record({**defaults, key: value}, where)
        out.append(soa_record({**defaults, **soa}, f"{path}.soa"))
        return out

    def records(self, raw: Any, origin: names.Name, ttl: int, path: str) -> list[Record]:
        if not isinstance(raw, dict):
            raise self.error(path, f"must be a mapping of owner names, not {kind(raw)}")
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
            raise self.error(where, f"must be a value in zone-file syntax, not {kind(value)}")
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


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _host_name(text: str, origin: names.Name) -> names.Name:
    """A hosts-file name in `origin`: absolute with a final dot or when it already ends in
    the zone's name (hosts files leave the dot out), else relative to the zone."""
    if not text.endswith("."):
        absolute = names.from_text(text + ".")
        text = text + "." if absolute[-len(origin):] == origin else text
    name = names.from_text(text, origin)
    if name[len(name) - len(origin):] != origin:
        raise ValueError(f"{text!r} is not in zone {names.to_text(origin)}")
    return name


def _zone_of(name: names.Name, origins: Iterable[names.Name]) -> names.Name | None:
    """The longest of `origins` that `name` is at or below."""
    found = None
    for origin in origins:
        if name[len(name) - len(origin):] == origin and (found is None
                                                         or len(origin) > len(found)):
            found = origin
    return found
