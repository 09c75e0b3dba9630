"""The `source` section of a bootstrap file: where zones and shared settings come from
when not from this file (`edgedns.etcd`)."""

from __future__ import annotations

import socket
from typing import Any

from edgedns.config.reader import Reader
from edgedns.etcd.client import EtcdSettings, endpoint_url

ETCD_KEYS = ("endpoints", "prefix", "cache", "tls", "username", "password", "node")


class SourceSection(Reader):
    def etcd_source(self, raw: Any, path: str) -> EtcdSettings:
        raw = self.mapping(raw, path, ("etcd",))
        if "etcd" not in raw:
            raise self.error(f"{path}.etcd", "is required (the only source besides the file)")
        path = f"{path}.etcd"
        raw = self.mapping(raw["etcd"], path, ETCD_KEYS)
        endpoints = raw.get("endpoints")
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not isinstance(endpoints, list) or not endpoints:
            raise self.error(f"{path}.endpoints", "must list the cluster's client URLs")
        urls = []
        for i, item in enumerate(endpoints):
            urls.append(endpoint_url(self.text(item, f"{path}.endpoints[{i}]", "a URL")))
        prefix = self.text(raw.get("prefix", "/edgedns/"), f"{path}.prefix", "a key prefix")
        if not prefix.endswith("/"):
            raise self.error(f"{path}.prefix", "must end with /")
        cache = None
        if "cache" in raw:
            cache = str(self.source.parent / self.text(raw["cache"], f"{path}.cache",
                                                             "a file path"))
        tls = self.mapping(raw.get("tls", {}), f"{path}.tls", ("ca", "cert", "key"))
        files = {k: str(self.source.parent / self.text(v, f"{path}.tls.{k}", "a file"))
                 for k, v in tls.items()}
        user = raw.get("username")
        node = (self.text(raw["node"], f"{path}.node", "a node name") if "node" in raw
                else socket.gethostname())
        return EtcdSettings(
            tuple(urls), prefix, cache, files.get("ca"), files.get("cert"), files.get("key"),
            None if user is None else self.text(user, f"{path}.username", "a user name"),
            None if raw.get("password") is None else str(raw["password"]), node)
