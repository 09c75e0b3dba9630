"""Drained members: still probed, no longer handed out (maintenance without editing YAML).

The set survives reloads and restarts in ``<state_dir>/drained.json``, a JSON object of pool
name → addresses, rewritten whole and atomically (a temporary file renamed over it) on every
change, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from edgedns import statefile

log = logging.getLogger(__name__)

FILE = "drained.json"


def default_state_dir() -> Path:
    """systemd's $STATE_DIRECTORY (`StateDirectory=`), else /var/lib/edgedns for root, else
    $XDG_STATE_HOME/edgedns (~/.local/state/edgedns)."""
    given = os.environ.get("STATE_DIRECTORY")
    if given:
        return Path(given.split(":")[0])
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/edgedns")
    home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(home) / "edgedns"


class DrainStore:
    """(pool name, member address) pairs drained, as text (`web.site.lan.`, `10.0.0.1`)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE
        self.members: set[tuple[str, str]] = set()

    @classmethod
    def load(cls, state_dir: Path) -> DrainStore:
        """The store in `state_dir`; empty when there is no file yet. A file that cannot be
        read is logged and treated as empty (serving must not depend on it)."""
        store = cls(state_dir)
        try:
            raw = json.loads(store.path.read_text(encoding="utf-8"))
            store.members = {(pool, address) for pool, addresses in raw.items()
                             for address in addresses}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.error("cannot read drained members from %s (%s); starting with none drained",
                      store.path, exc)
        return store

    def set(self, pool: str, address: str, drained: bool) -> bool:
        """Drain or undrain; True when that changed anything. The file is written before
        the change counts: raises OSError (and changes nothing) when it cannot be."""
        pair = (pool, address)
        if (pair in self.members) == drained:
            return False
        wanted = self.members | {pair} if drained else self.members - {pair}
        self._write(wanted)
        self.members = wanted
        return True

    def _write(self, members: set[tuple[str, str]]) -> None:
        by_pool: dict[str, list[str]] = {}
        for pool, address in sorted(members):
            by_pool.setdefault(pool, []).append(address)
        statefile.write_json(self.path, by_pool, indent=2)
