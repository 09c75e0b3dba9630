"""systemd's readiness protocol (sd_notify, `Type=notify`): a datagram to $NOTIFY_SOCKET.

`READY=1` once every listener is bound, so units ordered after edgedns start when it
answers; `RELOADING=1` then `READY=1` around a reload; `STOPPING=1` when it shuts down;
`STATUS=` lines for ``systemctl status``. Outside systemd ($NOTIFY_SOCKET unset) nothing is
sent. No dependency: the protocol is one Unix datagram (sd_notify(3)).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        self.address = address or None
        """None: not run by systemd with Type=notify; nothing is sent."""

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets Type=notify-reload units (systemd 253+) pair the two messages.
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=shutting down")

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as exc:  # systemd gone or the socket not ours: serving goes on
            log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
