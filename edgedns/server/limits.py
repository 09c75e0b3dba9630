"""Open-file limits: raised at start (the one platform call here is POSIX), and shared out
so clients cannot take the descriptors health probes need.

At the common soft limit of 1,024 open files, a dead upstream (a socket per query in flight)
plus TCP clients exhausts descriptors, and then health probes fail and mark healthy members
down. The hard limit is what the administrator allows; the soft one is only a default.
"""

from __future__ import annotations

import logging
import os

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


RESERVED_FILES = 128
"""Descriptors kept for everything but DNS clients and probes: the admin endpoint's
connections (at most 64), listeners, ICMP sockets, files read by a reload, logs."""


def client_caps(open_files: int, probe_sockets: int, tcp_connections: int,
                upstream_queries: int) -> tuple[int, int]:
    """The caps on TCP client connections and on questions in flight upstream (a socket
    each) that leave `probe_sockets` (one per TCP or HTTP check target) and
    `RESERVED_FILES` free under `open_files`: clients may run out of descriptors, health
    probes may not, or a flood marks healthy members down. Both caps shrink in proportion
    when the configured ones do not fit; `open_files` < 0 (unknown) keeps them."""
    room = open_files - RESERVED_FILES - probe_sockets
    wanted = tcp_connections + upstream_queries
    if open_files < 0 or wanted <= room:
        return tcp_connections, upstream_queries
    share = max(room, 0) / wanted
    return (max(1, int(tcp_connections * share)),
            max(1, int(upstream_queries * share)) if upstream_queries else 0)


UNPRIVILEGED_PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
PROC_STATUS = "/proc/self/status"
_CAP_NET_BIND_SERVICE = 10


def may_bind(port: int) -> bool:
    """Whether this process may bind `port`: unprivileged ports, root, or the
    CAP_NET_BIND_SERVICE capability (Linux; elsewhere only root passes below 1024)."""
    try:
        with open(UNPRIVILEGED_PORT_START) as sysctl:
            start = int(sysctl.read())
    except (OSError, ValueError):
        start = 1024
    if port == 0 or port >= start or os.geteuid() == 0:
        return True
    try:
        with open(PROC_STATUS) as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_BIND_SERVICE & 1)
    except OSError:
        pass
    return False
