#!/usr/bin/env python3
"""TCP clients that send and never read: how much of the server's memory they can hold.

Needs Python 3.10+ and Debian's nsd; only the standard library here (edgedns runs with
--python, default this interpreter). All traffic goes to 127.0.0.1-127.0.0.255.

    python3 bench/hostile.py [--connections 256] [--queries 500] [--python .venv/bin/python]

NSD, then edgedns, serve a zone whose `big` name holds about 8 KB of TXT. --connections TCP
connections (8 per source address, 127.0.0.1 upwards, so edgedns's per-address cap of 32 is
not what limits them) each send --queries pipelined queries for `big TXT` and never read.
After --settle seconds the server's RSS is compared with its RSS before the clients came
(NSD: the sum over its processes). Then one fresh connection asks `www A` and must be
answered within 1 s, and the clients are closed. The promise: RSS grows by less than 64 MB.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

APEX = "hostile.lan"
PER_ADDRESS = 8


def write_zone(path: Path) -> None:
    strings = " ".join(f'"{chr(97 + i % 26) * 250}"' for i in range(32))
    path.write_text(f"$ORIGIN {APEX}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n"
                    f"@ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.1\nbig TXT {strings}\n")


def query(name: str, qtype: int, qid: int) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    wire = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    return struct.pack("!H", len(wire)) + wire


def session_rss_kib(sid: int) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != sid:
                continue
            with open(f"/proc/{entry}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (ProcessLookupError, PermissionError, FileNotFoundError, StopIteration):
            continue
    return total


def attack(port: int, connections: int, queries: int) -> list[socket.socket]:
    payload = b"".join(query(f"big.{APEX}", 16, i & 0xFFFF) for i in range(queries))
    socks = []
    for i in range(connections):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((f"127.0.0.{1 + i // PER_ADDRESS}", 0))
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            try:
                sock.send(payload)  # as much as the kernel takes; never read
            except BlockingIOError:
                pass
        except OSError:
            sock.close()
            continue
        socks.append(sock)
    return socks


def legit_tcp_seconds(port: int) -> float | None:
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(query(f"www.{APEX}", 1, 7))
            head = sock.recv(2)
            if len(head) < 2:
                return None
    except OSError:
        return None
    return time.monotonic() - start


def measure(name: str, proc: common.Proc, port: int, args: argparse.Namespace) -> dict:
    common.wait_answer(proc, port, f"www.{APEX}")
    time.sleep(0.5)
    before = session_rss_kib(proc.pid)
    socks = attack(port, args.connections, args.queries)
    time.sleep(args.settle)
    during = session_rss_kib(proc.pid)
    legit = legit_tcp_seconds(port)
    for sock in socks:
        sock.close()
    result = {"connected": len(socks), "rss_before_kib": before, "rss_during_kib": during,
              "growth_mib": (during - before) / 1024, "legit_tcp_seconds": legit}
    common.log(f"{name}: {len(socks)} connections, RSS {before / 1024:.0f} -> "
               f"{during / 1024:.0f} MiB; a legitimate TCP query: "
               f"{'not answered' if legit is None else f'{legit * 1000:.1f} ms'}")
    return result


def run(args: argparse.Namespace) -> int:
    common.preflight(["nsd"])
    results: dict = {"info": common.run_info(), "connections": args.connections,
                     "queries": args.queries}
    with tempfile.TemporaryDirectory(prefix="edgedns-hostile-") as tmp:
        work = Path(tmp)
        zone = work / "hostile.zone"
        write_zone(zone)
        port = common.free_port()
        nsd = common.start_nsd({APEX: zone}, port, work)
        try:
            results["nsd"] = measure("NSD", nsd, port, args)
        finally:
            nsd.stop()
        config = work / "edgedns.yaml"
        config.write_text(f"admin: false\nzones:\n  {APEX}:\n    file: {zone}\n")
        port = common.free_port()
        edgedns = common.Proc("edgedns", [args.python, "-m", "edgedns", "serve", "-c",
                                          str(config), "--listen", f"127.0.0.1:{port}",
                                          "--log-level", "warning"], work / "edgedns.log")
        try:
            results["edgedns"] = measure("edgedns", edgedns, port, args)
        finally:
            edgedns.stop()
    print(f"\n== hostile: {args.connections} TCP connections x {args.queries} queries for an "
          f"8 KB answer, never read; edgedns {results['info']['edgedns']}")
    print(f"{'':10}{'connected':>10}{'RSS before':>12}{'RSS after':>11}{'growth':>9}"
          f"{'legit TCP':>11}")
    for name in ("nsd", "edgedns"):
        r = results[name]
        legit = "none" if r["legit_tcp_seconds"] is None else f"{r['legit_tcp_seconds']*1e3:.1f}ms"
        print(f"{name:10}{r['connected']:>10}{r['rss_before_kib'] / 1024:>10.0f}Mi"
              f"{r['rss_during_kib'] / 1024:>9.0f}Mi{r['growth_mib']:>7.1f}Mi{legit:>11}")
    growth = results["edgedns"]["growth_mib"]
    print(f"promise: edgedns RSS grows by less than 64 MiB: {'holds' if growth < 64 else 'FAILS'}")
    common.write_json(args.json, results)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--queries", type=int, default=500,
                        help="pipelined queries each connection sends (500)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between the attack and the measurement (3)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter edgedns runs with (this one)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    args = parser.parse_args()
    if os.sep in args.python:
        args.python = os.path.abspath(args.python)
    return args


if __name__ == "__main__":
    sys.exit(common.main(lambda: run(parse_args())))
