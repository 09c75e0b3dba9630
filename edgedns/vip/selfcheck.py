"""Is this node's DNS service answering? A query through its own listener, on a thread of
its own, so the answer does not depend on the event loop it is checking.

Each round asks the first zone's SOA over UDP and TCP at once, and either reply will do:
under a saturating UDP flood a datagram may be dropped in the socket buffer, but a
connection is accepted and answered whenever the loop still runs. Any reply counts (an
answering loop is what is checked, not the data). `fall` failed rounds in a row mark the
service down, `rise` good ones up again.
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

INTERVAL = 0.1
TIMEOUT = 0.1
"""UDP and TCP are asked at once; a round that fails takes this long (plus the interval)."""
FALL = 3
RISE = 2


class SelfCheck:
    """Calls `changed(reason or None)` from its thread when the service goes down or up."""

    def __init__(self, address: tuple[str, int], zone: str,
                 changed: Callable[[str | None], None]) -> None:
        self.address = address
        self.zone = zone
        self.changed = changed
        self.down: str | None = None
        self.rounds = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgedns-vrrp-selfcheck",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * TIMEOUT + INTERVAL + 1)

    def _run(self) -> None:
        ok_run = fail_run = 0
        while not self._stop.wait(INTERVAL):
            try:
                reason = self.ask()
            except Exception:  # a bug here must not look like a dead DNS service for ever
                log.exception("vrrp self-check failed")
                reason = "self-check error"
            self.rounds += 1
            if reason is None:
                ok_run, fail_run = ok_run + 1, 0
                if self.down is not None and ok_run >= RISE:
                    self.down = None
                    self.changed(None)
            else:
                self.failures += 1
                ok_run, fail_run = 0, fail_run + 1
                if self.down is None and fail_run >= FALL:
                    self.down = f"DNS self-check: {reason} from {self._shown()}"
                    self.changed(self.down)

    def _shown(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def ask(self) -> str | None:
        """One round: None when the listener answered, else why not."""
        return ask(self.address, self.zone, TIMEOUT)


def query(zone: str) -> bytes:
    """A SOA query for `zone` (RD clear) with a random ID."""
    labels = [label for label in zone.rstrip(".").split(".") if label]
    name = b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"
    return struct.pack("!HHHHHH", random.randrange(65536), 0, 1, 0, 0, 0) + name + \
        struct.pack("!HH", 6, 1)


def ask(address: tuple[str, int], zone: str, timeout: float) -> str | None:
    """Ask `address` for `zone`'s SOA over UDP and TCP at once: None when either answers
    within `timeout` seconds, else why not."""
    wire = query(zone)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as udp, \
            socket.socket(family, socket.SOCK_STREAM) as tcp, \
            selectors.DefaultSelector() as selector:
        udp.setblocking(False)
        tcp.setblocking(False)
        problem = "no reply"
        try:
            udp.connect(address)
            udp.send(wire)
            selector.register(udp, selectors.EVENT_READ)
        except OSError as exc:
            problem = exc.strerror or str(exc)
        tcp.connect_ex(address)
        selector.register(tcp, selectors.EVENT_WRITE)
        stream = b""
        while (left := deadline - time.monotonic()) > 0:
            for key, events in selector.select(left):
                try:
                    if key.fileobj is udp:
                        if udp.recv(4096)[:2] == wire[:2]:
                            return None
                    elif events & selectors.EVENT_WRITE:
                        tcp.send(struct.pack("!H", len(wire)) + wire)
                        selector.modify(tcp, selectors.EVENT_READ)
                    else:
                        chunk = tcp.recv(4096)
                        if not chunk:
                            selector.unregister(tcp)
                        stream += chunk
                        if stream[2:4] == wire[:2]:
                            return None
                except OSError as exc:  # refused: the listener is gone
                    problem = exc.strerror or str(exc)
                    selector.unregister(key.fileobj)
            if not selector.get_map():
                break
        return problem


def main(argv: list[str] | None = None) -> int:
    """``edgedns-alive [HOST:PORT] [ZONE]``: exit 0 when the DNS server there answers (any
    reply) within 0.5 s, else 1 with the reason on stderr. For keepalived's `vrrp_script`:
    it imports nothing but the standard library, so a run costs tens of milliseconds."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 2 or any(a.startswith("-") for a in args):
        print("usage: edgedns-alive [HOST:PORT] [ZONE]  (default 127.0.0.1:53 .)",
              file=sys.stderr)
        return 2
    host, _, port = (args[0] if args else "127.0.0.1:53").rpartition(":")
    host = host.strip("[]")
    problem = ask((host, int(port)), args[1] if len(args) > 1 else ".", 0.5)
    if problem is not None:
        print(f"edgedns-alive: {problem} from {args[0] if args else '127.0.0.1:53'}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
