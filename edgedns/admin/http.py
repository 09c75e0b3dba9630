"""The admin HTTP endpoint: the status page at ``/``, ``/metrics``, ``/health``, ``/ready``,
``/status``, and ``POST /drain`` and ``/undrain``.

Served on the same event loop as DNS. The standard library's HTTP servers block, and these
routes need only a request line, headers and a bounded response, so this speaks that much
HTTP/1.1 itself: one request per connection, bounded header size, read timeout and
connection count. A bearer token, when configured, guards every route.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgedns.admin import metrics, page, status

if TYPE_CHECKING:
    from edgedns.server.lifecycle import Server

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8 * 1024
READ_TIMEOUT = 5.0
STATUS_FRESH = 1.0
"""Seconds one /status body is served again before it is built anew..."""
STATUS_FRESH_AFTER_CHANGE = 0.25
"""... or this many, once health has changed since it was built: the open page shows a
change within its poll interval plus this, and a storm of changes still rebuilds it at most
four times a second."""
MAX_CONNECTIONS = 64
EVICT_AFTER = 0.5
"""With every connection slot taken, a new request takes the slot of the connection that
has spent longest reading its request head, once that is this many seconds: idle or stuck
local clients cannot keep `edgedns status` (keepalived's check) out."""
_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}


class AdminServer:
    def __init__(self, server: Server, token: str | None) -> None:
        self.server = server
        self.token = token
        self._listener: asyncio.AbstractServer | None = None
        self._open = 0
        self._status_body: tuple[float, int, bytes] | None = None
        """The last /status built, with when (loop time) and the health changes counted
        then (`History.changes`)."""
        self._reading: dict[asyncio.StreamWriter, float] = {}
        """Connections still reading their request head, with when they came."""
        self._routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": self._metrics,
            "/health": self._health,
            "/ready": self._ready,
            "/status": self._status,
        }
        self._posts: dict[str, Callable[[dict[str, list[str]]], tuple[int, str, bytes]]] = {
            "/drain": lambda query: self._drain(query, True),
            "/undrain": lambda query: self._drain(query, False),
        }

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port; returns the port bound (useful with port 0)."""
        self._listener = await asyncio.start_server(
            self._serve, host, port, reuse_address=True, limit=MAX_REQUEST_HEAD)
        return self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        now = asyncio.get_running_loop().time()
        if self._open >= MAX_CONNECTIONS and not self._evict_slowest(now):
            writer.transport.abort()
            return
        self._open += 1
        self._reading[writer] = now
        try:
            code, ctype, body, head_only = await asyncio.wait_for(self._handle(reader),
                                                                  READ_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            writer.transport.abort()
            return
        finally:
            self._open -= 1
            self._reading.pop(writer, None)
        head = (f"HTTP/1.1 {code} {_REASONS.get(code, 'OK')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n")
        if code == 401:
            head += 'WWW-Authenticate: Bearer realm="edgedns"\r\n'
        writer.write(head.encode() + b"\r\n" + (b"" if head_only else body))
        try:
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        writer.transport.close()

    def _evict_slowest(self, now: float) -> bool:
        if not self._reading:
            return False
        writer, came = min(self._reading.items(), key=lambda item: item[1])
        if now - came < EVICT_AFTER:
            return False
        del self._reading[writer]
        writer.transport.abort()
        return True

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
        """Status, content type, body, and whether to send only the head (HEAD)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:  # the reader's limit is MAX_REQUEST_HEAD
            head = b""
        if not head or len(head) > MAX_REQUEST_HEAD:
            return 400, "text/plain", b"request head too large\n", False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request line\n", False
        method, target = parts[0], parts[1].split("?", 1)[0]
        query = urllib.parse.parse_qs(parts[1].partition("?")[2])
        head_only = method == "HEAD"
        if target == "/" and method in ("GET", "HEAD"):
            # The page's shell holds no data; its script fetches /status with the token.
            return 200, "text/html; charset=utf-8", page.PAGE.encode(), head_only
        if self.token is not None:
            given = next((line.split(":", 1)[1].strip() for line in lines[1:]
                          if line.lower().startswith("authorization:")), "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return 401, "text/plain", b"bearer token required\n", head_only
        post = self._posts.get(target)
        if post is not None:
            if method != "POST":
                return 405, "text/plain", b"only POST\n", False
            return (*post(query), False)
        route = self._routes.get(target)
        if route is None:
            return (404, "text/plain", b"not found: try / /metrics /health /ready /status\n",
                    head_only)
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n", False
        return (*route(), head_only)

    def _drain(self, query: dict[str, list[str]], drained: bool) -> tuple[int, str, bytes]:
        """``POST /drain?pool=web.site.lan&member=10.0.0.1`` (and ``/undrain``)."""
        pool, member = query.get("pool", [""])[0], query.get("member", [""])[0]
        if not pool or not member:
            return 400, "text/plain", b"give pool=NAME and member=ADDRESS\n"
        try:
            changed = self.server.drain_member(pool, member, drained)
        except LookupError as exc:
            return 404, "text/plain", f"{exc.args[0]}\n".encode()
        except OSError as exc:
            return 500, "text/plain", f"cannot keep the change: {exc}\n".encode()
        state = "drained" if drained else "not drained"
        return 200, "text/plain", f"{member} in {pool}: {state}" \
                                  f"{'' if changed else ' (already)'}\n".encode()

    def _metrics(self) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", metrics.render(self.server)

    def _health(self) -> tuple[int, str, bytes]:
        return 200, "text/plain", b"ok\n"

    def _ready(self) -> tuple[int, str, bytes]:
        if self.server.ready():
            return 200, "text/plain", b"ready\n"
        stalled = self.server.scheduler.stalled()
        if stalled is not None:
            return 503, "text/plain", f"health engine stalled: no probe result for " \
                                      f"{stalled:.1f} s\n".encode()
        return 503, "text/plain", b"waiting for first health verdicts\n"

    def _status(self) -> tuple[int, str, bytes]:
        # Built on the loop that answers queries, in time that grows with the members: at
        # most once a STATUS_FRESH, however many pages poll it.
        now = asyncio.get_running_loop().time()
        changes = self.server.history.changes
        cached = self._status_body
        if cached is None or now - cached[0] >= (
                STATUS_FRESH if cached[1] == changes else STATUS_FRESH_AFTER_CHANGE):
            body = json.dumps(status.snapshot(self.server), indent=2).encode() + b"\n"
            self._status_body = cached = (now, changes, body)
        return 200, "application/json", cached[2]
