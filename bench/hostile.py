#!/usr/bin/env python3
"""Hostile TCP clients, beside NSD: ones that send and never read, and slowloris ones.

Needs Python 3.10+ and Debian's nsd; only the standard library here (edgedns runs with
--python, default this interpreter). All traffic goes to 127.0.0.0/16 on this machine.

    python3 bench/hostile.py nonreaders [--connections 256] [--queries 500]
    python3 bench/hostile.py slowloris  [--connections 256] [--seconds 10]
    python3 bench/hostile.py caches     [--names 100000]
    python3 bench/hostile.py amplify    [--rate 1000] [--seconds 5]

NSD, then edgedns, serve a zone whose `big` name holds about 8 KB of TXT. Attack connections
come 8 per source address from 127.0.0.1 upwards (so edgedns's per-address cap of 32 is not
what limits them).

nonreaders: each of --connections TCP connections sends --queries pipelined queries for
`big TXT` and never reads. After --settle seconds the server's RSS is compared with its RSS
before the clients came (NSD: the sum over its processes); then one fresh connection asks
`www A`. The promise: RSS grows by less than 64 MB.

slowloris: --connections connections each send one byte of a query every 0.5 s and never
finish it, for --seconds. Meanwhile legitimate clients (from 127.0.2.x) ask `www A` over TCP,
one after another, each given 1 s, and over UDP. The promise: at least 99 % of the
legitimate TCP queries answered within 1 s, and UDP unaffected.

caches (edgedns only; NSD is its upstream): edgedns forwards `far.test` to NSD, where every
name under `big.far.test` has an 8 KB TXT answer, and serves `big.hostile.lan` itself (8 KB
too). dnsperf asks over TCP --names distinct forwarded names, each twice (without and with
the DO bit, two cache entries), then asks 2,000 authoritative questions in 8 variants (an
EDNS option with 8 values: 8 distinct query bytes, so 8 packet cache entries each). The
promise: edgedns's RSS grows by less than the default byte bounds of both caches plus 64 MB
(32 + 64 + 64 = 160 MiB).

amplify: the reflection attack response-rate limiting is for. One spoofable query, `mid TXT`
with EDNS (a reply of about 1.1 KB), is sent --rate times a second for --seconds from one
address, 127.0.3.1, to NSD with its default RRL and to edgedns with its default `rate_limit`
(but loopback not exempt, as every source is loopback here). The client counts the bytes it
sent and received: bytes out / bytes in is the amplification a victim would see. Meanwhile a
legitimate client from another prefix (127.0.4.1) asks 20 queries a second, all of which must
be answered. The promise: at most 3 x.
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
    mid = " ".join(f'"{chr(97 + i % 26) * 250}"' for i in range(4))
    path.write_text(f"$ORIGIN {APEX}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n"
                    f"@ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.1\nbig TXT {strings}\n"
                    f"mid TXT {mid}\n")


def query(name: str, qtype: int, qid: int) -> bytes:
    """A query framed for TCP (its 2-byte length first)."""
    wire = common.make_query(name, qtype, qid)
    return struct.pack("!H", len(wire)) + wire


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


def legit_tcp_seconds(port: int, source: str = "127.0.2.1") -> float | None:
    """Seconds to a reply to one `www A` over a new connection; None past 1 s or on error."""
    start = time.monotonic()
    try:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(query(f"www.{APEX}", 1, 7))
            head = sock.recv(2)
            if len(head) < 2:
                return None
    except OSError:
        return None
    took = time.monotonic() - start
    return took if took <= 1.0 else None


def slowloris(port: int, args: argparse.Namespace) -> dict:
    """Trickle bytes on --connections connections while legitimate clients ask."""
    socks = []
    for i in range(args.connections):
        sock = socket.socket()
        sock.bind((f"127.0.0.{1 + i // PER_ADDRESS}", 0))
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        socks.append(sock)
    connected = len(socks)
    tcp_ok = tcp_sent = udp_ok = udp_sent = 0
    deadline = time.monotonic() + args.seconds
    next_trickle = 0.0
    i = 0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_trickle:
            for sock in socks:
                try:
                    sock.send(b"\x00")
                except OSError:
                    pass  # closed by the server: it may, that is the point
            next_trickle = time.monotonic() + 0.5
        i += 1
        tcp_sent += 1
        if legit_tcp_seconds(port, f"127.0.2.{1 + i % 250}") is not None:
            tcp_ok += 1
        udp_sent += 1
        try:
            rcode, _ = common.query_udp(port, f"www.{APEX}", 1, 1.0)
            udp_ok += rcode == 0
        except OSError:
            pass
    for sock in socks:
        sock.close()
    return {"connected": connected, "tcp_answered": tcp_ok, "tcp_sent": tcp_sent,
            "udp_answered": udp_ok, "udp_sent": udp_sent}


def amplify(port: int, args: argparse.Namespace) -> dict:
    """Send the spoofable query at --rate for --seconds; count bytes both ways."""
    attack = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attack.bind(("127.0.3.1", 0))
    attack.setblocking(False)
    legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    legit.bind(("127.0.4.1", 0))
    legit.settimeout(1.0)
    sent = received = replies = legit_ok = legit_sent = 0
    start = time.monotonic()
    total = int(args.rate * args.seconds)
    for i in range(total):
        due = start + i / args.rate
        while True:
            try:
                data = attack.recv(65535)
            except BlockingIOError:
                break
            received += len(data)
            replies += 1
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        packet = common.make_query(f"mid.{APEX}", 16, i & 0xFFFF, edns_payload=1232)
        attack.sendto(packet, ("127.0.0.1", port))
        sent += len(packet)
        if i % max(1, int(args.rate / 20)) == 0:  # about 20 legitimate queries a second
            legit_sent += 1
            try:
                legit.sendto(common.make_query(f"www.{APEX}", 1, i & 0xFFFF,
                                               edns_payload=1232), ("127.0.0.1", port))
                legit_ok += len(legit.recv(4096)) > 0
            except OSError:
                pass
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            data = attack.recv(65535)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        received += len(data)
        replies += 1
    attack.close()
    legit.close()
    return {"queries": total, "bytes_in": sent, "bytes_out": received, "replies": replies,
            "amplification": received / sent, "legit_answered": legit_ok,
            "legit_sent": legit_sent}


def caches(args: argparse.Namespace, work: Path, zone: Path) -> dict:
    """Fill edgedns's answer and packet caches with 8 KB answers; its RSS before and after."""
    far = work / "far.zone"
    strings = " ".join(f'"{chr(97 + i % 26) * 250}"' for i in range(32))
    far.write_text("$ORIGIN far.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 3600 600 86400 3600\n"
                   f"@ NS ns1\nns1 A 192.0.2.53\n*.big TXT {strings}\n")
    upstream_port = common.free_port()
    nsd = common.start_nsd({"far.test": far}, upstream_port, work)
    common.wait_answer(nsd, upstream_port, "ns1.far.test")
    config = work / "caches.yaml"
    config.write_text(f"admin: false\nforward: {{upstreams: ['127.0.0.1:{upstream_port}']}}\n"
                      f"zones:\n  {APEX}:\n    file: {zone}\n")
    port = common.free_port()
    edgedns = common.Proc("edgedns", [args.python, "-m", "edgedns", "serve", "-c", str(config),
                                      "--listen", f"127.0.0.1:{port}", "--log-level",
                                      "warning"], work / "edgedns-caches.log")
    try:
        common.wait_answer(edgedns, port, f"www.{APEX}")
        time.sleep(0.5)
        before = sum(common.session_rss_kib(edgedns.pid))
        forwarded = work / "forwarded.txt"
        with forwarded.open("w") as out:
            for i in range(args.names):
                out.write(f"n{i}.big.far.test TXT\n")
        dnssec = work / "forwarded-do.txt"
        dnssec.write_text(forwarded.read_text())
        local = work / "local.txt"
        local.write_text("".join(f"big.{APEX} TXT\nwww.{APEX} A\n" for _ in range(1000)))
        results = {}
        for label, queries, extra in (("forwarded", forwarded, []),
                                      ("forwarded+DO", dnssec, ["-D"])):
            argv = common.dnsperf_argv(port, queries, clients=8, outstanding=200,
                                       timeout=5.0, passes=1) + ["-m", "tcp", *extra]
            perf = common.run_dnsperf(argv, work / f"dnsperf-{len(results)}.log", None,
                                      args.limit, [edgedns])
            results[label] = {"completed": perf.completed, "lost": perf.lost}
            common.log(f"edgedns caches: {label}: {perf.completed} answered, {perf.lost} lost")
        for size in (512, 600, 800, 1000, 1232, 1500, 4096, 65535):
            argv = common.dnsperf_argv(port, local, clients=8, outstanding=100, timeout=5.0,
                                       passes=1) + ["-m", "tcp", "-e", "-E", f"65001:{size:04x}"]
            common.run_dnsperf(argv, work / f"dnsperf-local-{size}.log", None, args.limit,
                               [edgedns])
        time.sleep(1.0)
        after = sum(common.session_rss_kib(edgedns.pid))
    finally:
        edgedns.stop()
        nsd.stop()
    return {"rss_before_kib": before, "rss_during_kib": after,
            "growth_mib": (after - before) / 1024, "runs": results}


def measure(name: str, proc: common.Proc, port: int, args: argparse.Namespace) -> dict:
    common.wait_answer(proc, port, f"www.{APEX}")
    time.sleep(0.5)
    if args.mode == "slowloris":
        result = slowloris(port, args)
        common.log(f"{name}: {result}")
        return result
    if args.mode == "amplify":
        result = amplify(port, args)
        common.log(f"{name}: {result}")
        return result
    before = sum(common.session_rss_kib(proc.pid))
    socks = attack(port, args.connections, args.queries)
    time.sleep(args.settle)
    during = sum(common.session_rss_kib(proc.pid))
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
    results: dict = {"info": common.run_info(), "mode": args.mode,
                     "connections": args.connections, "queries": args.queries}
    with tempfile.TemporaryDirectory(prefix="edgedns-hostile-") as tmp:
        work = Path(tmp)
        zone = work / "hostile.zone"
        write_zone(zone)
        if args.mode == "caches":
            result = results["edgedns"] = caches(args, work, zone)
            print(f"\n== hostile caches: {args.names} forwarded names x 2 (DO), 8 KB answers, "
                  f"and authoritative 8 KB replies in 8 query variants; edgedns "
                  f"{results['info']['edgedns']}")
            print(f"edgedns RSS {result['rss_before_kib'] / 1024:.0f} -> "
                  f"{result['rss_during_kib'] / 1024:.0f} MiB, growth "
                  f"{result['growth_mib']:.1f} MiB; runs {result['runs']}")
            print(f"promise: growth under 160 MiB: "
                  f"{'holds' if result['growth_mib'] < 160 else 'FAILS'}")
            common.write_json(args.json, results)
            return 0
        port = common.free_port()
        nsd = common.start_nsd({APEX: zone}, port, work, rrl=args.mode == "amplify")
        try:
            results["nsd"] = measure("NSD", nsd, port, args)
        finally:
            nsd.stop()
        config = work / "edgedns.yaml"
        config.write_text(f"admin: false\nzones:\n  {APEX}:\n    file: {zone}\n"
                          + ("rate_limit: {exempt: []}\n" if args.mode == "amplify" else ""))
        port = common.free_port()
        edgedns = common.Proc("edgedns", [args.python, "-m", "edgedns", "serve", "-c",
                                          str(config), "--listen", f"127.0.0.1:{port}",
                                          "--log-level", "warning"], work / "edgedns.log")
        try:
            results["edgedns"] = measure("edgedns", edgedns, port, args)
        finally:
            edgedns.stop()
    if args.mode == "amplify":
        print(f"\n== hostile amplify: one spoofable query ({args.rate:g}/s for {args.seconds:g} "
              f"s) from 127.0.3.1; edgedns {results['info']['edgedns']}")
        print(f"{'':10}{'bytes in':>10}{'bytes out':>11}{'out/in':>8}{'replies':>9}"
              f"{'legit answered':>16}")
        for name in ("nsd", "edgedns"):
            r = results[name]
            print(f"{name:10}{r['bytes_in']:>10}{r['bytes_out']:>11}{r['amplification']:>8.2f}"
                  f"{r['replies']:>9}{r['legit_answered']:>9}/{r['legit_sent']}")
        r = results["edgedns"]
        held = r["amplification"] <= 3 and r["legit_answered"] == r["legit_sent"]
        print(f"promise: out/in at most 3 x, legitimate clients all answered: "
              f"{'holds' if held else 'FAILS'}")
    elif args.mode == "slowloris":
        print(f"\n== hostile slowloris: {args.connections} TCP connections trickling a byte "
              f"every 0.5 s for {args.seconds:g} s; edgedns {results['info']['edgedns']}")
        print(f"{'':10}{'connected':>10}{'legit TCP within 1 s':>24}{'legit UDP':>16}")
        for name in ("nsd", "edgedns"):
            r = results[name]
            tcp = f"{r['tcp_answered']}/{r['tcp_sent']} ({r['tcp_answered'] / r['tcp_sent']:.1%})"
            udp = f"{r['udp_answered']}/{r['udp_sent']}"
            print(f"{name:10}{r['connected']:>10}{tcp:>24}{udp:>16}")
        r = results["edgedns"]
        held = r["tcp_answered"] >= 0.99 * r["tcp_sent"] and r["udp_answered"] == r["udp_sent"]
        print(f"promise: >= 99 % of legitimate TCP answered within 1 s, UDP unaffected: "
              f"{'holds' if held else 'FAILS'}")
    else:
        print(f"\n== hostile nonreaders: {args.connections} TCP connections x {args.queries} "
              f"queries for an 8 KB answer, never read; edgedns {results['info']['edgedns']}")
        print(f"{'':10}{'connected':>10}{'RSS before':>12}{'RSS after':>11}{'growth':>9}"
              f"{'legit TCP':>11}")
        for name in ("nsd", "edgedns"):
            r = results[name]
            legit = ("none" if r["legit_tcp_seconds"] is None
                     else f"{r['legit_tcp_seconds'] * 1e3:.1f}ms")
            print(f"{name:10}{r['connected']:>10}{r['rss_before_kib'] / 1024:>10.0f}Mi"
                  f"{r['rss_during_kib'] / 1024:>9.0f}Mi{r['growth_mib']:>7.1f}Mi{legit:>11}")
        growth = results["edgedns"]["growth_mib"]
        print(f"promise: edgedns RSS grows by less than 64 MiB: "
              f"{'holds' if growth < 64 else 'FAILS'}")
    common.write_json(args.json, results)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("nonreaders", "slowloris", "caches", "amplify"))
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="amplify: spoofable queries a second (1000)")
    parser.add_argument("--names", type=int, default=100_000,
                        help="caches: distinct forwarded names (100,000)")
    parser.add_argument("--limit", type=float, default=600.0,
                        help="caches: seconds one dnsperf run may take (600)")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="slowloris: how long the attack and the legitimate queries last")
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
