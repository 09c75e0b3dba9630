"""Dropping root once the sockets are bound (`user:`). Linux: setuid with the kernel told to
keep the permitted capabilities across it, then only those still needed are kept
(capset(2)): CAP_NET_BIND_SERVICE while a port below 1024 is served (a reload may bind
another), CAP_NET_RAW while ICMP checks or VRRP run (a reload may open the other IP
version), and CAP_NET_ADMIN with VRRP (adding and removing the virtual addresses).
The platform calls are in this module alone.
"""

from __future__ import annotations

import ctypes
import os
import pwd

CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
NAMES = {CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE", CAP_NET_ADMIN: "CAP_NET_ADMIN",
         CAP_NET_RAW: "CAP_NET_RAW"}
_PR_SET_KEEPCAPS = 8
_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_to(user: str, keep: set[int]) -> bool:
    """Become `user` (its own group, no supplementary groups), keeping only the capabilities
    `keep`. False when already running as `user` (nothing to drop). Raises LookupError for
    an unknown user, PermissionError when not root, OSError when the kernel refuses."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LookupError(f"no user {user!r}") from None
    if os.geteuid() == entry.pw_uid:
        return False
    if os.geteuid() != 0:
        raise PermissionError(f"only root can become {user!r}")
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)  # the permitted set survives it (KEEPCAPS); the effective not
    mask = sum(1 << cap for cap in keep)
    header = _Header(_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)(_Data(mask, mask, 0), _Data(0, 0, 0))
    _check(libc.capset(ctypes.byref(header), data), "capset")
    _check(libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    return True


def _check(result: int, call: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
