"""The config: a YAML file → a frozen, fully validated `Config`.

`yaml` reads the file (keys as written, bounded aliases, duplicate keys refused); `reader`
walks the tree with key paths for errors; `zones`, `pools`, `forward`, `vip` and `source`
each read their section; `documents` turns etcd documents into a tree; `schema` reads the
top level and builds the `Config`.
"""

from edgedns.config.schema import (
    AdminSettings,
    Config,
    ConfigError,
    Endpoint,
    TcpSettings,
    load,
    load_admin,
    load_source,
    parse_duration,
    parse_endpoint,
)

__all__ = ["AdminSettings", "Config", "ConfigError", "Endpoint", "TcpSettings", "load",
           "load_admin", "load_source", "parse_duration", "parse_endpoint"]
