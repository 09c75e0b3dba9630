"""etcd documents as config: zones and shared settings kept in etcd, in the YAML file's
own schema (see `edgedns.etcd`).

Under the prefix (default ``/edgedns/``):

- ``<prefix>settings``: a mapping of shared top-level keys (``defaults``, ``forward``,
  ``cache``, ``rate_limit``, ...);
- ``<prefix>zones/<zone>``: one zone's mapping, exactly what ``zones.<zone>`` holds in a file.

Node-local keys (`NODE_LOCAL`) live only in the node's bootstrap file, which names the
cluster (``source: {etcd: ...}``) and wins over the documents. The documents are validated
by the same parser as a file; errors name the etcd key (``etcd:/edgedns/zones/site.lan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedns.config import yaml as yaml_file
from edgedns.config.reader import ConfigError

NODE_LOCAL = ("listen", "admin", "vrrp", "source", "user", "state_dir", "reload_interval",
              "zones")
"""Keys only a bootstrap file may set (``zones`` come one document each)."""
SETTINGS = "settings"
ZONES = "zones/"


@dataclass(frozen=True, slots=True)
class Documents:
    revision: int
    """The etcd revision they were read at (0: none yet)."""
    documents: dict[str, str] = field(default_factory=dict)
    """Full etcd key → YAML text."""
    from_cache: bool = False
    saved_at: float | None = None
    """When they were read from etcd (wall clock), for documents from the cache."""


@dataclass(slots=True)
class Memo:
    """The zones the last load built, with their pools and what they were built from, so
    that the next load reuses those whose inputs are the same: a change to one zone
    document costs that zone (its YAML is not even read again)."""

    zones: dict[str, tuple[Any, Any, list]] = field(default_factory=dict)
    """Zone key → (fingerprint, Zone, the zone's PoolSpecs)."""
    reused: int = 0
    """Zones the last load took from here instead of building them."""


class Reused(dict):
    """In a tree: the zone `Memo` holds, built from this very document (not read again)."""


def tree(prefix: str, documents: dict[str, str], memo: Memo | None = None,
         common: Any = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The config tree the documents make, and which etcd key each part came from (top-level
    key or ``zones.<zone>`` → key). A zone `memo` built from the same document and `common`
    inputs is a `Reused` placeholder. Raises ConfigError naming the key."""
    out: dict[str, Any] = {}
    zones: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, text in sorted(documents.items()):
        name = key[len(prefix):]
        source = f"etcd:{key}"
        zone = name[len(ZONES):] if name.startswith(ZONES) else None
        known = memo.zones.get(zone) if memo is not None and zone else None
        if known is not None and known[0] == (text, common):
            zones[zone] = Reused()
            origin[f"zones.{zone}"] = key
            continue
        try:
            raw = yaml_file.load(text, source)
        except yaml_file.YamlError as exc:
            raise ConfigError(source, "", str(exc)) from None
        if name == SETTINGS:
            if raw is None:
                continue
            if not isinstance(raw, dict):
                raise ConfigError(source, "", "must be a mapping of shared settings")
            for top, value in raw.items():
                if top in NODE_LOCAL:
                    raise ConfigError(source, str(top), "is node-local: set it in each node's "
                                      "bootstrap file, not in etcd")
                out[str(top)] = value
                origin[str(top)] = key
        elif name.startswith(ZONES) and len(name) > len(ZONES):
            zone = name[len(ZONES):]
            zones[zone] = {} if raw is None else raw
            origin[f"zones.{zone}"] = key
        else:
            raise ConfigError(source, "", f"not an edgedns document (expected {prefix}"
                              f"{SETTINGS} or {prefix}{ZONES}<zone>)")
    if zones:
        out["zones"] = zones
    return out, origin


def locate(error: ConfigError, origin: dict[str, str]) -> ConfigError:
    """`error`, raised while parsing the merged tree, pointed at the etcd key its path
    came from (the path then relative to that document)."""
    for part in sorted(origin, key=len, reverse=True):
        if error.path == part or error.path.startswith(part + "."):
            rest = error.path[len(part) + 1:] if part.startswith("zones.") else error.path
            located = ConfigError(f"etcd:{origin[part]}", rest, error.message)
            located.files = error.files
            return located
    return error


def default_cache(state_dir: Path) -> Path:
    return state_dir / "etcd-cache.json"


def from_tree(prefix: str, raw: dict[str, Any], source: str) -> tuple[dict[str, str], list[str]]:
    """The documents a config file's tree `raw` makes (its zones and shared settings), and
    the node-local keys left out. Zones read from files stay on each node: refused.
    Raises ConfigError."""
    documents = {}
    for zone, body in (raw.get("zones") or {}).items():
        for local in ("file", "hosts"):
            if isinstance(body, dict) and local in body:
                raise ConfigError(source, f"zones.{zone}.{local}", "names a file on this "
                                  "node: write the zone's records in the YAML to push it")
        documents[f"{prefix}{ZONES}{zone}"] = yaml_file.dump(body if body is not None else {})
    shared = {key: value for key, value in raw.items() if key not in NODE_LOCAL}
    documents[f"{prefix}{SETTINGS}"] = yaml_file.dump(shared)
    left = [key for key in raw if key in NODE_LOCAL and key != "zones"]
    return documents, left
