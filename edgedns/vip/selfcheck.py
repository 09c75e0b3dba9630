"""Is this node's DNS service answering? A query through its own listener, on a thread of
its own, so the answer does not depend on the event loop it is checking.

Each round asks the first zone's SOA over UDP; if no reply comes in time, the same over
TCP: under a saturating UDP flood a datagram may be dropped in the socket buffer, but a
connection is accepted and answered whenever the loop still runs. Any reply counts (an
answering loop is what is checked, not the data). `fall` failed rounds in a row mark the
service down, `rise` good ones up again.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable

from dnslib import QTYPE, DNSRecord

INTERVAL = 0.15
TIMEOUT = 0.15
"""Per transport: a round that fails takes up to twice this."""
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
            reason = self.ask()
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
        query = DNSRecord.question(self.zone, QTYPE.SOA)
        query.header.id = random.randrange(65536)
        query.header.rd = 0
        wire = query.pack()
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.connect(self.address)
                sock.send(wire)
                deadline = time.monotonic() + TIMEOUT
                while True:
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
                    reply = sock.recv(4096)
                    if reply[:2] == wire[:2]:
                        return None
        except OSError:
            pass  # timeout or refused: try the stream
        try:
            with socket.create_connection(self.address, timeout=TIMEOUT) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                reply = sock.recv(4096)
                if reply[2:4] == wire[:2]:
                    return None
                return "a wrong reply"
        except TimeoutError:
            return "no reply"
        except OSError as exc:
            return exc.strerror or str(exc)
