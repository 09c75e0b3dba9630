"""The config: a YAML file → a frozen, fully validated `Config`.

`yaml` reads the file (keys as written, bounded aliases, duplicate keys refused) and `schema`
checks every section and builds the `Config`.
"""

from edgedns.config.schema import (
    AdminSettings,
    Config,
    ConfigError,
    Endpoint,
    TcpSettings,
    load,
    parse_duration,
    parse_endpoint,
)

__all__ = ["AdminSettings", "Config", "ConfigError", "Endpoint", "TcpSettings", "load",
           "parse_duration", "parse_endpoint"]
