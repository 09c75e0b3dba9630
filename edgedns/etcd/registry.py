"""The node registry: each node that takes its config from etcd says who it is and how it
is doing under ``<prefix without its slash>.nodes/<node>`` (``/edgedns.nodes/gw1``), on a
lease, so a node that dies leaves the registry within `TTL` seconds. Outside the documents'
prefix, so heartbeats never wake the nodes' config watch.

What a node writes (JSON): its name, version, the revision it serves and whether from its
cache, its pools' health, its virtual routers' states, and when. `edgedns status --fleet`
and the status page read them back and mark the nodes that lag behind the newest revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from edgedns.etcd.client import EtcdClient, EtcdError, EtcdSettings

log = logging.getLogger(__name__)

TTL = 10
"""Seconds a node stays listed after its last heartbeat."""
HEARTBEAT = 3.0


def registry_prefix(prefix: str) -> str:
    return prefix.rstrip("/") + ".nodes/"


async def fleet(client: EtcdClient, prefix: str) -> tuple[int, list[dict[str, Any]]]:
    """The newest revision of the documents under `prefix`, and every registered node,
    each with ``lagging`` set when it serves an older one."""
    revision = await client.last_changed(prefix)
    _, entries = await client.get_prefix(registry_prefix(prefix))
    nodes = []
    for key, text in sorted(entries.items()):
        try:
            node = json.loads(text)
        except ValueError:
            node = {"node": key, "error": "not JSON"}
        node["lagging"] = int(node.get("revision", 0) or 0) < revision
        nodes.append(node)
    return revision, nodes


async def heartbeat(settings: EtcdSettings, report: Callable[[], dict[str, Any]],
                    seen: Callable[[int, list[dict[str, Any]]], None]) -> None:
    """Keep this node's entry fresh every `HEARTBEAT` seconds (a lease of `TTL`), and tell
    `seen` the fleet each time. Runs until cancelled, then takes the entry out at once (a
    node stopped on purpose is gone, not late); etcd errors only delay it."""
    client = EtcdClient(settings)
    key = registry_prefix(settings.prefix) + settings.node
    lease: int | None = None
    try:
        while True:
            try:
                await client.authenticate()
                if lease is None or await client.keepalive(lease) <= 0:
                    lease = await client.grant(TTL)
                await client.put(key, json.dumps(report(), sort_keys=True), lease)
                seen(*await fleet(client, settings.prefix))
            except EtcdError as exc:
                log.debug("etcd registry: %s", exc)
                lease = None
            await asyncio.sleep(HEARTBEAT)
    finally:
        if lease is not None:
            with contextlib.suppress(EtcdError, OSError):
                await client.revoke(lease)
