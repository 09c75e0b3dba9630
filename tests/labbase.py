"""What every test lab shares (network namespaces, a bridged LAN, an etcd cluster): built on
entering, taken down on leaving, and taken down too when building fails halfway."""

from __future__ import annotations

import os
import shutil
from typing import TypeVar

L = TypeVar("L", bound="Lab")


def available() -> str | None:
    """None when network-namespace labs can be built here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` command"
    return None


class Lab:
    def _build(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: L) -> L:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
