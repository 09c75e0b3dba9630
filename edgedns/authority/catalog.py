"""The set of zones served: picks the most specific zone for a name and chases CNAME chains.

Nested zones are independent (a child zone is answered from its own data even when its
parent also delegates it), exactly as an authoritative server holding both would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from dnslib import QTYPE

from edgedns.authority.zone import Outcome, Zone
from edgedns.dns.names import Name

MAX_CHAIN = 12
"""CNAMEs followed for one answer; a longer chain (or a loop) ends where it stands."""


@dataclass(frozen=True)
class Catalog:
    zones: dict[Name, Zone]

    @cached_property
    def _depths(self) -> tuple[int, ...]:
        """The label counts of the zones' apexes, deepest first: the only suffixes of a name
        worth looking up."""
        return tuple(sorted({len(origin) for origin in self.zones}, reverse=True))

    def zone_for(self, qname: Name) -> Zone | None:
        """The most specific served zone at or above `qname`, if any."""
        length = len(qname)
        for depth in self._depths:
            if depth <= length:
                zone = self.zones.get(qname[length - depth:])
                if zone is not None:
                    return zone
        return None

    def resolve(self, qname: Name, qtype: int) -> Outcome | None:
        """Look `qname` up, following CNAMEs through every served zone (RFC 1034 §4.3.2 3a).

        The rcode is that of the last name in the chain (RFC 6604). Returns None when no
        served zone holds `qname`.
        """
        zone = self.zone_for(qname)
        if zone is None:
            return None
        outcome = zone.find(qname, qtype)
        seen = {qname}
        while outcome.cname_target is not None and qtype not in (QTYPE.CNAME, QTYPE.ANY):
            target = outcome.cname_target
            zone = self.zone_for(target)
            if zone is None or target in seen or len(seen) > MAX_CHAIN:
                outcome.cname_target = None
                if zone is None:
                    outcome.external_target = target
                break
            seen.add(target)
            step = zone.find(target, qtype)
            outcome.answer.extend(step.answer)
            outcome.rcode = step.rcode
            outcome.authority = step.authority
            outcome.additional = step.additional
            outcome.required_glue = step.required_glue
            outcome.optional_authority = step.optional_authority
            outcome.cname_target = step.cname_target
        return outcome
