"""A node's config from etcd: reading the documents (`edgedns.config.documents`), keeping
the last good ones in a cache file (written atomically) so that a node that starts while
etcd is unreachable serves what it served before, and following changes with a watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgedns import config as config_mod
from edgedns import statefile
from edgedns.config.documents import Documents, Memo
from edgedns.config.reader import ConfigError
from edgedns.etcd.client import Compacted, EtcdClient, EtcdError, EtcdSettings

log = logging.getLogger(__name__)

def save(path: Path, documents: Documents) -> None:
    """Keep `documents` in `path` atomically (a reader sees the old file or the new)."""
    statefile.write_json(path, {"revision": documents.revision, "saved_at": time.time(),
                                "documents": documents.documents})


def load_cache(path: Path) -> Documents | None:
    """The documents kept in `path`, or None when there are none (or they are unreadable)."""
    try:
        data = json.loads(path.read_text())
        return Documents(int(data["revision"]), dict(data["documents"]), True,
                         float(data["saved_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def read(settings: EtcdSettings) -> Documents:
    """The documents under the prefix now. Raises EtcdError."""
    client = EtcdClient(settings)
    await client.authenticate()
    revision, documents = await client.get_prefix(settings.prefix)
    return Documents(revision, documents)


def fetch(settings: EtcdSettings, cache: Path) -> Documents:
    """The documents from etcd (kept in `cache` too), or from `cache` when no endpoint
    answers. Raises ConfigError when neither has them."""
    try:
        documents = asyncio.run(read(settings))
    except EtcdError as exc:
        kept = load_cache(cache)
        if kept is None:
            raise ConfigError(", ".join(settings.endpoints), "",
                              f"{exc}; and no cached copy in {cache}") from None
        log.warning("etcd cannot be reached (%s): serving the copy of revision %d cached "
                    "%.0f s ago in %s", exc, kept.revision, time.time() - (kept.saved_at or 0),
                    cache)
        return kept
    try:
        save(cache, documents)
    except OSError as exc:
        log.warning("cannot keep the etcd documents in %s: %s", cache, exc.strerror)
    return documents


def load_any(path: str | Path, listen_override: tuple[str, ...] = (),
             admin_override: str | None = None, memo: Memo | None = None
             ) -> config_mod.Config:
    """`config.load`, reading the etcd documents first (or their cache, when etcd cannot be
    reached) when the file is a bootstrap file. Raises ConfigError."""
    found = config_mod.load_source(path)
    documents = None if found is None else fetch(*found)
    return config_mod.load(path, listen_override, admin_override, documents, memo)


RETRY = 0.5
"""Seconds between attempts to reach etcd again after it failed."""


@dataclass(slots=True)
class Follow:
    """What following etcd looks like now (for /status and metrics)."""
    revision: int = 0
    """The revision last read or watched."""
    connected: bool = False
    last_error: str | None = None
    compactions: int = 0


async def follow(settings: EtcdSettings, start: Documents, state: Follow,
                 changed: Callable[[Documents], None]) -> None:
    """Watch the prefix from `start` on and call `changed` with the documents after each
    change. Documents read from the cache are read again from etcd first; a compacted
    revision makes it read the whole prefix again. While etcd cannot be reached it retries
    every `RETRY` seconds, resuming from the last revision seen. Runs until cancelled."""
    client = EtcdClient(settings)
    current = start
    fresh = not start.from_cache
    state.revision = start.revision
    while True:
        try:
            await client.authenticate()
            if not fresh:
                revision, documents = await client.get_prefix(settings.prefix)
                fresh = True
                if documents != current.documents or current.from_cache:
                    current = Documents(revision, documents)
                    changed(current)
                current = Documents(revision, current.documents)
                state.revision = revision
            state.connected, state.last_error = True, None
            async for events in client.watch(settings.prefix, current.revision + 1):
                documents = dict(current.documents)
                for event in events:
                    if event.value is None:
                        documents.pop(event.key, None)
                    else:
                        documents[event.key] = event.value
                current = Documents(max(e.revision for e in events), documents)
                state.revision = current.revision
                changed(current)
        except Compacted as exc:
            log.warning("etcd: %s; reading %s again", exc, settings.prefix)
            state.compactions += 1
            fresh = False
        except EtcdError as exc:
            if state.connected or state.last_error is None:
                log.warning("etcd: %s; retrying every %g s, serving revision %d", exc, RETRY,
                            current.revision)
            state.connected, state.last_error = False, str(exc)
            await asyncio.sleep(RETRY)
