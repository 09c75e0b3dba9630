"""Kernel filtering of ICMP echo replies on raw sockets (Linux classic BPF).

A raw ICMP socket is handed a copy of every ICMP packet the host receives: without a
filter, every ping on the host (a `ping -f` runs at tens of thousands a second) would be
parsed in Python. The filter lets through only echo replies carrying our identifier.
"""

from __future__ import annotations

import ctypes
import socket
import struct

from edgedns.pools.health import echo

SO_ATTACH_FILTER = 26
_ACCEPT = 0x40000  # bytes of a packet kept: all of it
# Classic BPF opcodes (linux/bpf_common.h): load/jump/return, sizes, addressing modes.
_LD_B_ABS, _LD_H_ABS = 0x30, 0x28
_LDX_B_MSH, _LD_B_IND, _LD_H_IND = 0xB1, 0x50, 0x48
_JEQ_K, _RET_K = 0x15, 0x06


def echo_reply_program(version: int, ident: int) -> list[tuple[int, int, int, int]]:
    """(code, jump if true, jump if false, k) instructions: accept an echo reply with
    identifier `ident`, drop the rest. ICMPv4 raw sockets see the IPv4 header first, whose
    length the MSH load reads; ICMPv6 ones see the ICMPv6 header at offset 0."""
    if version == 4:
        return [
            (_LDX_B_MSH, 0, 0, 0),  # X = IPv4 header length
            (_LD_B_IND, 0, 0, 0),  # A = ICMP type
            (_JEQ_K, 0, 3, echo.REPLY[4]),
            (_LD_H_IND, 0, 0, 4),  # A = identifier
            (_JEQ_K, 0, 1, ident),
            (_RET_K, 0, 0, _ACCEPT),
            (_RET_K, 0, 0, 0),
        ]
    return [
        (_LD_B_ABS, 0, 0, 0),
        (_JEQ_K, 0, 3, echo.REPLY[6]),
        (_LD_H_ABS, 0, 0, 4),
        (_JEQ_K, 0, 1, ident),
        (_RET_K, 0, 0, _ACCEPT),
        (_RET_K, 0, 0, 0),
    ]


def attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach `program` to `sock` (raises OSError where the kernel has no socket filters)."""
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    # struct sock_fprog: the instruction count, then a pointer; the kernel copies the code.
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
