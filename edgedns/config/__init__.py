"""The config: a YAML file → a frozen, fully validated `Config`.

`yaml` reads the file (keys as written, bounded aliases, duplicate keys refused); `reader`
walks the tree with key paths for errors; `zones`, `pools` and `forward` each read their
section; `schema` reads the top level and builds the `Config`.
"""

from edgedns.config.schema import (
    AdminSettings,
    Config,
    ConfigError,
    Endpoint,
    TcpSettings,
    load,
    load_admin,
    parse_duration,
    parse_endpoint,
)

__all__ = ["AdminSettings", "Config", "ConfigError", "Endpoint", "TcpSettings", "load",
           "load_admin", "parse_duration", "parse_endpoint"]
