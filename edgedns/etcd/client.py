"""A small asyncio client for etcd v3 through its JSON gateway (``/v3/...`` over HTTP/1.1),
the part edgedns needs: read a prefix, write a set of keys in one guarded transaction,
follow a prefix with a watch.

Why the gateway and not gRPC: etcd serves it on the client port of every member since 3.3,
so no generated stubs and no grpcio (a native extension that has to be compiled on small ARM
boxes) are needed; a request is one short JSON POST, and a watch is one long response of
newline-separated JSON objects. Keys and values travel base64-encoded.

Endpoints are tried in order; the first that answers is used until it fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT = 5.0
"""Seconds a unary request (range, put, txn) may take on one endpoint."""
MAX_BODY = 256 << 20
"""The largest response read: a prefix of 1,000 zones of 100 records is a few MiB."""


class EtcdError(Exception):
    """etcd could not be asked, or refused the request; the message says which and why."""


class Refused(EtcdError):
    """etcd answered and refused the request (too large, not permitted, ...): asking
    another member would not help."""


class Compacted(EtcdError):
    """A watch asked for a revision etcd has compacted away: read the prefix again."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted (etcd keeps {revision} and later)")
        self.revision = revision


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    endpoints: tuple[str, ...]
    """``http://HOST:PORT`` or ``https://HOST:PORT`` of the cluster's members."""
    prefix: str = "/edgedns/"
    cache: str | None = None
    """Where the last good documents are kept; None: ``etcd-cache.json`` in the state
    directory."""
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    username: str | None = None
    password: str | None = None
    node: str = ""
    """This node's name in the registry (default: the host name)."""


@dataclass(frozen=True, slots=True)
class Event:
    key: str
    value: str | None
    """None: the key was deleted."""
    revision: int


def endpoint_url(text: str) -> str:
    """An endpoint as written (``10.0.0.1:2379`` or a URL) as a URL: http unless said."""
    text = text.strip().rstrip("/")
    return text if text.startswith(("http://", "https://")) else f"http://{text}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(b64: str | None) -> str:
    return base64.b64decode(b64 or "").decode()


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix` (etcd's convention)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


class EtcdClient:
    def __init__(self, settings: EtcdSettings) -> None:
        self.settings = settings
        self._tls: ssl.SSLContext | None = None
        if any(url.startswith("https://") for url in settings.endpoints):
            self._tls = ssl.create_default_context(cafile=settings.ca)
            if settings.cert:
                self._tls.load_cert_chain(settings.cert, settings.key)
        self._token: str | None = None
        self._current = 0
        """Index of the endpoint that answered last."""

    async def _post(self, path: str, body: dict, timeout: float = TIMEOUT) -> dict:
        """One request, trying each endpoint from the one that answered last; with a new
        token once when etcd says the one held has expired (after 5 minutes idle)."""
        try:
            return await self._post_once(path, body, timeout)
        except Refused as exc:
            if self._token is None or "auth token" not in str(exc):
                raise
        await self.authenticate(again=True)
        return await self._post_once(path, body, timeout)

    async def _post_once(self, path: str, body: dict, timeout: float) -> dict:
        problems = []
        endpoints = self.settings.endpoints
        for attempt in range(len(endpoints)):
            index = (self._current + attempt) % len(endpoints)
            try:
                reader, writer = await asyncio.wait_for(
                    self._request(endpoints[index], path, body), timeout)
                try:
                    data = await asyncio.wait_for(_read_body(reader), timeout)
                finally:
                    writer.close()
            except Refused:
                raise
            except (OSError, asyncio.TimeoutError, EtcdError) as exc:
                problems.append(f"{endpoints[index]}: {exc or type(exc).__name__}")
                continue
            self._current = index
            reply = json.loads(data or b"{}")
            if "error" in reply or "code" in reply and reply.get("code"):
                raise EtcdError(f"{path}: {reply.get('error') or reply.get('message')}")
            return reply
        raise EtcdError("no etcd endpoint answered: " + "; ".join(problems))

    async def _request(self, endpoint: str, path: str, body: dict
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        url = urlsplit(endpoint)
        tls = self._tls if url.scheme == "https" else None
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 2379, ssl=tls)
        payload = json.dumps(body).encode()
        auth = f"Authorization: {self._token}\r\n" if self._token else ""
        writer.write((f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                      f"{auth}Connection: close\r\n\r\n").encode() + payload)
        await writer.drain()
        status = await reader.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            try:
                detail = json.loads(await asyncio.wait_for(_read_body(reader), TIMEOUT))
                reason = detail.get("error") or detail.get("message") or ""
            except (ValueError, OSError, asyncio.TimeoutError, EtcdError, AttributeError):
                reason = ""
            writer.close()
            line = status.decode(errors="replace").strip() or "no reply"
            if status[9:10] == b"4":
                raise Refused(f"{path}: {reason or line}")
            raise EtcdError(f"{path}: {line}{f' ({reason})' if reason else ''}")
        return reader, writer

    async def authenticate(self, again: bool = False) -> None:
        """Get a token when a user is configured and none is held (`again`: a new one)."""
        if self.settings.username is None or (self._token is not None and not again):
            return
        self._token = None
        reply = await self._post("/v3/auth/authenticate", {
            "name": self.settings.username, "password": self.settings.password or ""})
        self._token = reply.get("token")

    async def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its ID."""
        return int((await self._post("/v3/lease/grant", {"TTL": ttl}))["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew `lease`; its TTL now, 0 when it has expired."""
        reply = await self._post("/v3/lease/keepalive", {"ID": str(lease)})
        return int(reply.get("result", reply).get("TTL", 0) or 0)

    async def revoke(self, lease: int) -> None:
        """End `lease` now: the keys written with it go."""
        await self._post("/v3/lease/revoke", {"ID": str(lease)}, timeout=1.0)

    async def put(self, key: str, value: str, lease: int | None = None) -> None:
        body = {"key": _b64(key), "value": _b64(value)}
        if lease is not None:
            body["lease"] = str(lease)
        await self._post("/v3/kv/put", body)

    async def get_prefix(self, prefix: str) -> tuple[int, dict[str, str]]:
        """(revision, {key: value}) of every key under `prefix`."""
        reply = await self._post("/v3/kv/range", {"key": _b64(prefix),
                                                  "range_end": _b64(prefix_end(prefix))})
        revision = int(reply["header"]["revision"])
        return revision, {_text(kv["key"]): _text(kv.get("value"))
                          for kv in reply.get("kvs", [])}

    async def last_changed(self, prefix: str) -> int:
        """The revision at which a key under `prefix` last changed (0: no key)."""
        reply = await self._post("/v3/kv/range", {
            "key": _b64(prefix), "range_end": _b64(prefix_end(prefix)), "limit": 1,
            "sort_order": "DESCEND", "sort_target": "MOD", "keys_only": True})
        kvs = reply.get("kvs", [])
        return int(kvs[0]["mod_revision"]) if kvs else 0

    async def replace_prefix(self, prefix: str, documents: dict[str, str],
                             read_revision: int | None) -> int:
        """Make the keys under `prefix` exactly `documents` in one transaction. With
        `read_revision`, only if nothing under the prefix changed after it (raises
        EtcdError when something did). Returns the new revision."""
        current_revision, current = await self.get_prefix(prefix)
        since = current_revision if read_revision is None else read_revision
        # True when every key under the prefix was last changed at `since` or before (a
        # plain push: since its own read just now).
        guard = [{"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                  "target": "MOD", "result": "LESS", "mod_revision": str(since + 1)}]
        operations = [{"request_put": {"key": _b64(k), "value": _b64(v)}}
                      for k, v in sorted(documents.items()) if current.get(k) != v]
        operations += [{"request_delete_range": {"key": _b64(k)}}
                       for k in sorted(set(current) - set(documents))]
        reply = await self._post("/v3/kv/txn", {"compare": guard, "success": operations})
        if not reply.get("succeeded"):
            raise EtcdError(f"{prefix} changed after revision {since}: read it again")
        return int(reply["header"]["revision"])

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        """Changes under `prefix` from `start_revision` on, a batch per etcd message.
        Raises `Compacted`, or EtcdError when the stream ends or no endpoint answers."""
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                   "start_revision": str(start_revision)}}
        problems = []
        for attempt in range(len(self.settings.endpoints)):
            index = (self._current + attempt) % len(self.settings.endpoints)
            try:
                reader, writer = await asyncio.wait_for(
                    self._request(self.settings.endpoints[index], "/v3/watch", body), TIMEOUT)
            except (OSError, asyncio.TimeoutError, EtcdError) as exc:
                problems.append(f"{self.settings.endpoints[index]}: {exc}")
                continue
            self._current = index
            try:
                async for line in _lines(reader):
                    result = json.loads(line).get("result", {})
                    compacted = int(result.get("compact_revision", 0) or 0)
                    if compacted:
                        raise Compacted(compacted)
                    events = [Event(_text(e["kv"]["key"]),
                                    None if e.get("type") == "DELETE" else
                                    _text(e["kv"].get("value")),
                                    int(e["kv"].get("mod_revision", 0)))
                              for e in result.get("events", [])]
                    if events:
                        yield events
            finally:
                writer.close()
            raise EtcdError("the watch ended")
        raise EtcdError("no etcd endpoint answered: " + "; ".join(problems))


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


async def _read_body(reader: asyncio.StreamReader) -> bytes:
    headers = await _headers(reader)
    if headers.get("transfer-encoding") == "chunked":
        out = b""
        async for chunk in _chunks(reader):
            out += chunk
            if len(out) > MAX_BODY:
                raise EtcdError("reply too large")
        return out
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise EtcdError("reply too large")
    return await reader.readexactly(length)


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        yield await reader.readexactly(size)
        await reader.readline()


async def _lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The newline-separated JSON objects of a streamed (chunked) response."""
    await _headers(reader)
    pending = b""
    async for chunk in _chunks(reader):
        pending += chunk
        if len(pending) > MAX_BODY:
            raise EtcdError("watch message too large")
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
