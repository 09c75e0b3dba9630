"""Reading an edgedns admin endpoint's /metrics, for tests and bench/ (standard library only)."""

from __future__ import annotations

import urllib.request


def scrape(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """The /metrics of the admin endpoint at `host`:`port`, each family summed over its
    labels."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            name = name.split("{")[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out
