"""Process limits the server raises for itself (the one platform call here is POSIX).

At the common soft limit of 1,024 open files, a dead upstream (a socket per query in flight)
plus TCP clients exhausts descriptors, and then health probes fail and mark healthy members
down. The hard limit is what the administrator allows; the soft one is only a default.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

OPEN_FILES_CEILING = 1 << 20
"""Used when the hard limit is unlimited, which the kernel does not accept as a soft limit."""


def raise_open_files() -> int:
    """Raise the soft limit on open files to the hard limit; returns the limit in force."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, target,
                        exc)
    return soft
