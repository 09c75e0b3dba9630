"""Warnings about zone data that loads but will not work as meant, for ``edgedns check``.

A CNAME, MX or SRV whose target lies inside a zone we serve but names nothing there (no
record, no wildcard, no delegation) is valid DNS, yet every client following it gets
NXDOMAIN; it is almost always a typo or a record someone forgot.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgedns.authority.catalog import Catalog
from edgedns.authority.zone import NXDOMAIN, Zone
from edgedns.dns import names

_TARGET_TYPES = {5: "CNAME", 15: "MX", 33: "SRV"}
_A = 1


def dangling_targets(zones: tuple[Zone, ...]) -> Iterator[str]:
    """One line per CNAME, MX or SRV target inside our zones that does not exist."""
    catalog = Catalog({zone.origin: zone for zone in zones})
    for zone in zones:
        for owner, node in zone.nodes.items():
            for rrset in node:
                kind = _TARGET_TYPES.get(rrset.rtype)
                if kind is None:
                    continue
                for rdata in rrset.rdatas:
                    target = _target(rdata)
                    home = catalog.zone_for(target) if target is not None else None
                    if home is not None and home.locate(target, _A)[0] == NXDOMAIN:
                        yield (f"{names.to_text(owner)} {kind} {names.to_text(target)}: no such "
                               f"name in zone {names.to_text(home.origin)}; clients get "
                               "NXDOMAIN")


def _target(rdata: object) -> names.Name | None:
    """The name in a CNAME, MX or SRV record's data (the last part, in wire form)."""
    if isinstance(rdata, tuple) and rdata and isinstance(rdata[-1], tuple):
        return rdata[-1]
    return None
