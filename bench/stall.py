#!/usr/bin/env python3
"""Does edgedns ever stall? Random-name floods, pool flips and reloads under steady traffic.

Needs Python 3.10+, two CPUs, taskset and Debian's nsd and dnsperf; only the standard library
here (edgedns itself runs with --python, default this interpreter). All traffic goes to
127.0.0.1; the server is pinned to --server-cpu (0), every load generator to --client-cpu (1).

    python3 bench/stall.py flood  [--names 200000] [--seconds 10] [--json FILE]
    python3 bench/stall.py flip   [--names 200000] [--rate 2000] [--seconds 10] [--flips 8]
    python3 bench/stall.py reload [--records 100000] [--pool-members 2000] [--rate 5000]

flood: NSD, then edgedns, serve the same generated zone `stall.lan`. From a fixed seed the
script writes three files of --names distinct random names: (a) absent from the zone
(NXDOMAIN), (b) under the wildcard `*.wild` (A), (c) under the wildcard `*.pool CNAME web`,
where `web` is a pool (two members, `check: {type: none}`) for edgedns and two static A
records for NSD, and (e) two random labels deep (`<12 random>.<6 random>.stall.lan`, NXDOMAIN:
a random parent each time). Each file gets --seconds of unthrottled dnsperf (-c 8 -q 500):
qps of both and edgedns/NSD. (d) A legitimate stream beside a flood: dnsperf -Q
--flood-rate (8000) on the NXDOMAIN names and, at the same time, dnsperf -Q --legit-rate
(500) on 1,000 existing names; the legitimate stream's lost / sent (the promise: 0 lost).

flip: edgedns serves `*.dep CNAME web`, `web` a pool of two members checked with `type: tcp`
(interval 200ms, timeout 100ms, fall 1, rise 1) against 127.0.0.1: member 1 on bench/common.py's
accept-and-close listener, member 2 on a listening socket this script opens and closes.
dnsperf first asks --names distinct random names under dep (one pass), so that many answers
depend on the pool. Then a paced raw-UDP client (this file's `_stream` mode, one process, one
socket, a unique ID per query) asks those names at --rate for --seconds while the script
closes and reopens member 2's socket --flips times, each time polling `web.stall.lan A` until
its address set changes. Reported: flips seen (and how soon), queries sent / answered / lost,
latency p50 / p99 / max and the largest gap between consecutive replies (promise: < 10 ms).

reload: edgedns serves a generated zone of --records A records (`file:`) plus --pool-members
members in pools of 10 (`check: {type: none}`), with `reload_interval: 1s` and an admin
endpoint. Two phases of --seconds each, both under the paced client at --rate on existing
names: (a) --lead seconds in, the zone file is rewritten with its SOA serial increased (the
file watcher reloads it); (b) --lead seconds in, --sighups SIGHUPs are sent to the server
over --sighup-window seconds. Per phase: queries sent / lost, latency p50 / p99 / max, the
largest gap between replies, the reloads done (/status `last_reload.successes`) and how long
they took, from the trigger to the server's "reloaded" log lines (edgedns runs at --log-level
info here; after an edit that includes the watcher's wait, up to 1 s). Promise: 0 lost and
p99 < 50 ms.

The paced client counts a query lost when no reply came within --timeout (2 s); the largest
send gap is printed too, so a stall of the client itself would show. Every wait is bounded,
and the children are stopped on every way out (bench/common.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import select
import signal
import socket
import string
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import (
    BenchError,
    Proc,
    dnsperf_argv,
    free_port,
    log,
    main,
    make_query,
    parse_dnsperf,
    preflight,
    run_dnsperf,
    run_info,
    start_nsd,
    start_tcp_listener,
    wait_answer,
    wait_for_quiet,
    write_json,
)

ZONE = "stall.lan"
SEED = 20251125
LEGIT_NAMES = 1000
POOL_ADDRESSES = ("10.3.0.1", "10.3.0.2")
FLIP_ADDRESSES = ("10.9.0.1", "10.9.0.2")
POOL_SIZE = 10
"""reload: members per generated pool."""


# --------------------------------------------------------------------------- data


def zone_head(serial: int = 1) -> list[str]:
    return [f"$ORIGIN {ZONE}.", "$TTL 300",
            f"@ IN SOA ns1 hostmaster {serial} 3600 600 86400 30",
            "@ IN NS ns1", "ns1 IN A 10.255.0.1"]


def random_labels(rng: random.Random, count: int) -> list[str]:
    """`count` distinct random 12-character labels (never like host0000 or r000000)."""
    alphabet = string.ascii_lowercase + string.digits
    seen: set[str] = set()
    while len(seen) < count:
        seen.add("".join(rng.choices(alphabet, k=12)))
    labels = sorted(seen)
    rng.shuffle(labels)
    return labels


def write_names(path: Path, names: list[str], qtype: str | None = "A") -> Path:
    """One name a line, with ` qtype` for dnsperf or bare for the paced client."""
    suffix = f" {qtype}" if qtype else ""
    path.write_text("".join(f"{name}{suffix}\n" for name in names))
    return path


def pool_yaml(name: str, addresses: list[str], check: str) -> str:
    return f"      {name}: {{ttl: 5, check: {check}, members: [{', '.join(addresses)}]}}"


def edgedns_yaml(zone_file: Path, pools: list[str], admin: int, extra: str = "") -> str:
    return (f'listen: ["127.0.0.1:5353"]\nadmin: "127.0.0.1:{admin}"\n{extra}'
            f"zones:\n  {ZONE}:\n    file: {zone_file}\n"
            + ("    pools:\n" + "\n".join(pools) + "\n" if pools else ""))


# --------------------------------------------------------------------------- DNS


def query_packet(qid: int, name: str, qtype: int = 1) -> bytes:
    return make_query(name, qtype, qid, flags=0x0100)


def skip_name(msg: bytes, pos: int) -> int:
    for _ in range(128):
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += length + 1
    raise ValueError("name too long")


def a_records(reply: bytes) -> set[str]:
    """The addresses of the A records in a reply's answer section."""
    qdcount, ancount = struct.unpack_from("!HH", reply, 4)
    pos = 12
    for _ in range(qdcount):
        pos = skip_name(reply, pos) + 4
    out = set()
    for _ in range(ancount):
        pos = skip_name(reply, pos)
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", reply, pos)
        pos += 10
        if rtype == 1:
            out.add(socket.inet_ntoa(reply[pos:pos + 4]))
        pos += rdlength
    return out


def ask_addresses(port: int, name: str, timeout: float = 0.5) -> set[str] | None:
    """`name` A from 127.0.0.1:`port`: its addresses, or None without a reply in time."""
    qid = random.randrange(65536)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query_packet(qid, name), ("127.0.0.1", port))
            for _ in range(10):
                reply = sock.recv(4096)
                if struct.unpack_from("!H", reply)[0] == qid:
                    return a_records(reply)
        except OSError:
            return None
    return None


# --------------------------------------------------------------------------- the paced client


def stream_child(port: str, names_file: str, rate: str, seconds: str, timeout: str,
                 out: str) -> int:
    """`_stream` mode: ask the names of `names_file` in turn, `rate` a second for `seconds`
    (query i at t0 + i / rate, ID i mod 65536), from one socket in one thread; then wait
    `timeout` for the last replies and write every send and receive time (monotonic) to
    `out`. A reply matches the latest query sent with its ID."""
    names = Path(names_file).read_text().split()
    total, interval = int(float(rate) * float(seconds)), 1.0 / float(rate)
    packets = [query_packet(0, name)[2:] for name in names]
    sent, received = [0.0] * total, [0.0] * total
    rcodes: dict[int, int] = {}
    errors = answered = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect(("127.0.0.1", int(port)))
    sock.setblocking(False)
    t0 = time.monotonic() + 0.1
    print(json.dumps({"t0": t0}), flush=True)
    end = t0 + float(seconds) + float(timeout)
    seq = 0
    while True:
        now = time.monotonic()
        while seq < total and t0 + seq * interval <= now:
            try:
                sock.send(struct.pack("!H", seq & 0xFFFF) + packets[seq % len(packets)])
            except OSError:
                errors += 1
            sent[seq] = time.monotonic()
            seq += 1
        for _ in range(1024):
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                break
            except OSError:
                errors += 1
                continue
            at = time.monotonic()
            if len(reply) < 12:
                continue
            qid, flags = struct.unpack_from("!HH", reply)
            match = seq - 1 - ((seq - 1 - qid) % 65536)
            if match >= 0 and not received[match]:
                received[match] = at
                answered += 1
                rcodes[flags & 0xF] = rcodes.get(flags & 0xF, 0) + 1
        if now >= end or answered == total:
            break
        due = t0 + seq * interval if seq < total else end
        select.select([sock], [], [], max(0.0, min(due, end) - time.monotonic()))
    Path(out).write_text(json.dumps({"t0": t0, "rate": float(rate), "sent": sent,
                                     "received": received, "rcodes": rcodes,
                                     "errors": errors}))
    print(json.dumps({"done": total}), flush=True)
    return 0


def start_stream(args: argparse.Namespace, port: int, names: Path, seconds: float,
                 out: Path) -> tuple[Proc, float]:
    """The paced client on the client CPU; returns it and its t0 (when query 0 goes out)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "_stream", str(port), str(names),
            f"{args.rate:g}", f"{seconds:g}", f"{args.timeout:g}", str(out)]
    proc = Proc("UDP stream", argv, out.with_suffix(".log"), args.client_cpu, json_lines=True)
    return proc, proc.expect("t0", 15)["t0"]


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else float("nan")


def stream_stats(path: Path, timeout: float, events: list[float] = ()) -> dict:
    """Sent / answered / lost (no reply within `timeout`), latency percentiles (ms), and the
    largest gap between consecutive replies (ms, with its start relative to t0 and to the
    nearest of `events`); the largest gap between sends shows a stall of the client."""
    data = json.loads(path.read_text())
    sent, received = data["sent"], data["received"]
    pairs = list(zip(sent, received, strict=True))
    latencies = sorted((r - s) * 1000 for s, r in pairs if r and r - s <= timeout)
    arrivals = sorted(r for r in received if r)
    gaps = sorted(((b - a, a) for a, b in zip(arrivals, arrivals[1:], strict=False)),
                  reverse=True)[:5]
    gap, gap_at = gaps[0] if gaps else (0.0, 0.0)
    send_gap = max((b - a for a, b in zip(sent, sent[1:], strict=False)), default=0.0)
    out = {"sent": len(sent), "answered": len(latencies), "lost": len(sent) - len(latencies),
           "late": sum(1 for s, r in pairs if r and r - s > timeout),
           "p50_ms": round(percentile(latencies, 50), 3),
           "p99_ms": round(percentile(latencies, 99), 3),
           "max_ms": round(latencies[-1], 3) if latencies else float("nan"),
           "max_reply_gap_ms": round(gap * 1000, 3),
           "max_reply_gap_at_s": round(gap_at - data["t0"], 3),
           "top_reply_gaps": [[round(g * 1000, 3), round(at - data["t0"], 3)] for g, at in gaps],
           "max_send_gap_ms": round(send_gap * 1000, 3),
           "rcodes": data["rcodes"], "socket_errors": data["errors"]}
    if events:
        nearest = min(events, key=lambda e: abs(e - gap_at))
        out["max_reply_gap_from_event_ms"] = round((gap_at - nearest) * 1000, 1)
    return out


# --------------------------------------------------------------------------- servers


def start_edgedns(args: argparse.Namespace, config: Path, port: int, log_path: Path,
                  log_level: str = "warning") -> Proc:
    argv = [args.python, "-m", "edgedns", "serve", "-c", str(config), "--listen",
            f"127.0.0.1:{port}", "--log-level", log_level]
    return Proc("edgedns", argv, log_path, args.server_cpu)


def status(admin: int, timeout: float = 5.0) -> dict | None:
    """edgedns's /status, or None when it does not answer within `timeout`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=timeout) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def reload_successes(admin: int) -> int | None:
    snap = status(admin)
    return snap["last_reload"]["successes"] if snap else None


def reloaded_lines(log_path: Path) -> list[float]:
    """Wall-clock times of the server's "reloaded" log lines."""
    times = []
    for line in log_path.read_text(errors="replace").splitlines():
        if " reloaded (" in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())
    return times


def quiet(args: argparse.Namespace, warnings: list[str], what: str) -> None:
    if not wait_for_quiet([args.server_cpu, args.client_cpu], args.quiet_wait)["quiet"]:
        warnings.append(f"CPUs busy before {what}")


def perf(args: argparse.Namespace, server: Proc, port: int, queries: Path, tag: str,
         seconds: float | None = None, rate: float | None = None,
         passes: int | None = None) -> dict:
    argv = dnsperf_argv(port, queries, seconds=seconds, rate=rate, passes=passes,
                        timeout=args.timeout)
    r = run_dnsperf(argv, args.workdir / f"dnsperf-{tag}.out", args.client_cpu,
                    (seconds or 60) + args.timeout + 30, [server])
    return {"qps": r.qps, "sent": r.sent, "completed": r.completed, "lost": r.lost,
            "latency_avg_ms": r.latency_avg_ms, "latency_max_ms": r.latency_max_ms,
            "rcodes": r.rcodes, "server_cpu_pct": r.window["cpu_pct"].get(server.name),
            "background_cpu_pct": r.window["background_cpu_pct"]}


# --------------------------------------------------------------------------- flood

FLOOD_CASES = {"nx": "(a) random NXDOMAIN", "wild": "(b) random *.wild A",
               "pool": "(c) random *.pool CNAME pool", "deep": "(e) random x.y NXDOMAIN"}


def flood_files(args: argparse.Namespace) -> dict[str, Path]:
    """The zone for NSD and for edgedns, edgedns's config and the query files."""
    wd = args.workdir
    rng = random.Random(SEED)
    body = [f"host{i:04d} IN A 10.1.{i // 250}.{i % 250 + 1}" for i in range(LEGIT_NAMES)]
    body += ["*.wild IN A 10.2.0.1", "*.pool IN CNAME web"]
    (wd / "edgedns.zone").write_text("\n".join(zone_head() + body) + "\n")
    (wd / "nsd.zone").write_text("\n".join(zone_head() + body + [
        f"web 5 IN A {a}" for a in POOL_ADDRESSES]) + "\n")
    config = wd / "flood.yaml"
    config.write_text(edgedns_yaml(wd / "edgedns.zone", [
        pool_yaml("web", list(POOL_ADDRESSES), "{type: none}")], free_port()))
    files = {"nsd_zone": wd / "nsd.zone", "config": config,
             "legit": write_names(wd / "legit.txt",
                                  [f"host{i:04d}.{ZONE}" for i in range(LEGIT_NAMES)])}
    for case, under in (("nx", ZONE), ("wild", f"wild.{ZONE}"), ("pool", f"pool.{ZONE}")):
        files[case] = write_names(wd / f"{case}.txt",
                                  [f"{label}.{under}" for label in random_labels(rng, args.names)])
    parents = random_labels(rng, args.names)
    files["deep"] = write_names(wd / "deep.txt", [
        f"{label}.{parent[:6]}.{ZONE}"
        for label, parent in zip(random_labels(rng, args.names), parents, strict=True)])
    return files


def flood_server(args: argparse.Namespace, server: Proc, port: int, files: dict[str, Path],
                 warnings: list[str]) -> dict:
    name = server.name
    wait_answer(server, port, f"host0000.{ZONE}", 1, args.start_timeout)
    wait_answer(server, port, f"x.pool.{ZONE}", 3, 5)  # the CNAME and both addresses
    out = {}
    for case, title in FLOOD_CASES.items():
        quiet(args, warnings, f"{name} {case}")
        log(f"{name}: {title}, {args.seconds:g} s unthrottled")
        out[case] = perf(args, server, port, files[case], f"{name}-{case}", args.seconds)
        log(f"  {out[case]['qps']:.0f} qps, {out[case]['lost']} lost, {out[case]['rcodes']}")
        wait_answer(server, port, f"host0000.{ZONE}", 1, 5)
    quiet(args, warnings, f"{name} legit")
    log(f"{name}: (d) -Q {args.legit_rate:g} legitimate beside -Q {args.flood_rate:g} NXDOMAIN, "
        f"{args.seconds:g} s")
    flood_argv = dnsperf_argv(port, files["nx"], seconds=args.seconds + 1, rate=args.flood_rate,
                              timeout=args.timeout)
    flood = Proc("dnsperf flood", flood_argv, args.workdir / f"dnsperf-{name}-flood.out",
                 args.client_cpu)
    try:
        time.sleep(0.5)
        legit = perf(args, server, port, files["legit"], f"{name}-legit", args.seconds,
                     args.legit_rate)
        flood.wait(args.seconds + args.timeout + 30)
    finally:
        flood.stop()
    f = parse_dnsperf(flood.log.read_text(errors="replace"))
    out["legit"] = legit | {"flood": {"qps": f.qps, "sent": f.sent, "lost": f.lost}}
    log(f"  legitimate: {legit['lost']} / {legit['sent']} lost; flood {f.qps:.0f} qps, "
        f"{f.lost} lost")
    return out


def run_flood(args: argparse.Namespace) -> dict:
    files = flood_files(args)
    warnings: list[str] = []
    results: dict = {}
    for name in ("NSD", "edgedns"):
        port = free_port()
        if name == "NSD":
            server = start_nsd({ZONE: files["nsd_zone"]}, port, args.workdir, args.server_cpu)
        else:
            server = start_edgedns(args, files["config"], port, args.workdir / "edgedns.log")
        try:
            results[name] = flood_server(args, server, port, files, warnings)
        finally:
            server.stop()
    nsd, ed = results["NSD"], results["edgedns"]
    rows = [f"{'':30} {'NSD qps':>10} {'edgedns qps':>12} {'edgedns/NSD':>12} "
            f"{'NSD lost':>10} {'edgedns lost':>12}"]
    for case, title in FLOOD_CASES.items():
        a, b = nsd[case], ed[case]
        rows.append(f"{title:30} {a['qps']:>10.0f} {b['qps']:>12.0f} "
                    f"{b['qps'] / a['qps']:>12.3f} {a['lost']:>10} {b['lost']:>12}")
        if a["rcodes"].keys() != b["rcodes"].keys():
            warnings.append(f"{case}: rcodes differ, NSD {a['rcodes']}, edgedns {b['rcodes']}")
    rows.append("")
    rows.append(f"(d) legitimate -Q {args.legit_rate:g} beside -Q {args.flood_rate:g} NXDOMAIN, "
                f"{args.seconds:g} s:")
    rows.append(f"{'':30} {'lost/sent':>14} {'avg ms':>8} {'max ms':>8} {'flood qps':>10}")
    for name, r in results.items():
        legit = r["legit"]
        rows.append(f"{name:30} {str(legit['lost']) + ' / ' + str(legit['sent']):>14} "
                    f"{legit['latency_avg_ms']:>8.3f} {legit['latency_max_ms']:>8.3f} "
                    f"{legit['flood']['qps']:>10.0f}")
    rows.append("server CPU % (a/b/c/e): NSD " + " / ".join(
        f"{nsd[c]['server_cpu_pct']:.0f}" for c in FLOOD_CASES) + ", edgedns " + " / ".join(
        f"{ed[c]['server_cpu_pct']:.0f}" for c in FLOOD_CASES))
    return {"servers": results, "table": "\n".join(rows), "warnings": warnings}


# --------------------------------------------------------------------------- flip


class FlipListener:
    """A TCP listening socket on 127.0.0.1:`port` that can be closed (connections refused:
    the member's check fails) and opened again; `drain` accepts and closes what is waiting."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def drain(self) -> None:
        for _ in range(128):
            if self.sock is None:
                return
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()


def wait_addresses(port: int, want: set[str], listener: FlipListener, server: Proc,
                   limit: float) -> float | None:
    """Poll web A every 5 ms until its address set is `want`; seconds it took, or None."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        listener.drain()
        if ask_addresses(port, f"web.{ZONE}", 0.2) == want:
            return time.monotonic() - started
        server.check_alive()
        time.sleep(0.005)
    return None


def run_flip(args: argparse.Namespace) -> dict:
    wd = args.workdir
    stable, stable_port = start_tcp_listener(wd / "listener.log", 600, args.client_cpu)
    flip = FlipListener(free_port())
    flip.open()
    try:
        return flip_measure(args, stable_port, flip)
    finally:
        flip.close()
        stable.stop()


def flip_measure(args: argparse.Namespace, stable_port: int, flip: FlipListener) -> dict:
    wd = args.workdir
    (wd / "flip.zone").write_text("\n".join(zone_head() + ["*.dep IN CNAME web"]) + "\n")
    check = ("{type: tcp, interval: 200ms, timeout: 100ms, fall: 1, rise: 1, "
             f"address: 127.0.0.1, port: {stable_port}}}")
    members = [FLIP_ADDRESSES[0],
               f"{{address: {FLIP_ADDRESSES[1]}, check: {{port: {flip.port}}}}}"]
    config = wd / "flip.yaml"
    config.write_text(edgedns_yaml(wd / "flip.zone", [pool_yaml("web", members, check)],
                                   free_port()))
    names = [f"{label}.dep.{ZONE}" for label in random_labels(random.Random(SEED), args.names)]
    asked = write_names(wd / "dep.txt", names)
    stream_names = write_names(wd / "stream.txt", names[:int(args.rate * args.seconds)], None)
    port = free_port()
    server = start_edgedns(args, config, port, wd / "edgedns.log")
    both, one = set(FLIP_ADDRESSES), {FLIP_ADDRESSES[0]}
    try:
        wait_answer(server, port, f"web.{ZONE}", 2, args.start_timeout)
        if wait_addresses(port, both, flip, server, 5) is None:
            raise BenchError("the pool never answered both members")
        log(f"edgedns: asking {args.names} distinct names under dep.{ZONE} (one pass)")
        warm = perf(args, server, port, asked, "dep", passes=1)
        log(f"  {warm['qps']:.0f} qps, {warm['lost']} lost, {warm['rcodes']}")
        warnings: list[str] = []
        quiet(args, warnings, "the stream")
        log(f"edgedns: {args.rate:g} qps for {args.seconds:g} s, {args.flips} flips of member 2")
        stream, t0 = start_stream(args, port, stream_names, args.seconds, wd / "stream.json")
        flips = flip_member(args, port, flip, server, t0, both, one)
        stream.wait(args.seconds + args.timeout + 30)
        stream.stop()
        server.check_alive()
    finally:
        server.stop()
    stats = stream_stats(wd / "stream.json", args.timeout, [f["at"] for f in flips])
    seen = [f["seen_after_ms"] for f in flips if f["seen_after_ms"] is not None]
    table = "\n".join([
        f"flips of member 2 seen in web A:   {len(seen)} / {len(flips)}  (seen after ms: "
        + ", ".join(f"{ms:.0f}" for ms in seen) + ")",
        f"names asked first under dep:       {warm['completed']} / {warm['sent']} answered "
        f"({warm['qps']:.0f} qps)",
        *stream_rows(stats),
        "promise max gap < 10 ms:           "
        + ("holds" if stats["max_reply_gap_ms"] < 10 else "FAILS"),
    ])
    return {"prefill": warm, "flips": flips, "stream": stats, "table": table,
            "warnings": warnings}


def flip_member(args: argparse.Namespace, port: int, flip: FlipListener, server: Proc,
                t0: float, both: set[str], one: set[str]) -> list[dict]:
    """Close and reopen member 2's listener `args.flips` times while the stream runs; each
    flip waits until web A shows the new address set (3 s at most), then holds --hold s."""
    flips = []
    time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
    for i in range(args.flips):
        if time.monotonic() > t0 + args.seconds - 1.0:
            log("  the stream is nearly over: no more flips")
            break
        down = i % 2 == 0
        at = time.monotonic()
        if down:
            flip.close()
        else:
            flip.open()
        took = wait_addresses(port, one if down else both, flip, server, 3.0)
        flips.append({"to": "down" if down else "up", "at": at,
                      "at_s": round(at - t0, 3),
                      "seen_after_ms": None if took is None else round(took * 1000, 1)})
        log(f"  flip {i + 1}: member 2 {'DOWN' if down else 'UP'}, "
            + (f"seen after {took * 1000:.0f} ms" if took is not None else "NOT seen in 3 s"))
        time.sleep(args.hold)
    if flip.sock is None:
        flip.open()
    return flips


def stream_rows(stats: dict) -> list[str]:
    return [
        f"queries sent / answered / lost:    {stats['sent']} / {stats['answered']} / "
        f"{stats['lost']}" + (f" ({stats['late']} late)" if stats["late"] else ""),
        f"latency ms p50 / p99 / max:        {stats['p50_ms']:.3f} / {stats['p99_ms']:.3f} / "
        f"{stats['max_ms']:.3f}",
        f"largest gap between replies ms:    {stats['max_reply_gap_ms']:.3f} at "
        f"{stats['max_reply_gap_at_s']:.3f} s"
        + (f" ({stats['max_reply_gap_from_event_ms']:+.1f} ms from the nearest trigger)"
           if "max_reply_gap_from_event_ms" in stats else ""),
        "next largest gaps ms (at s):       " + ", ".join(
            f"{g:.1f} ({at:.3f})" for g, at in stats["top_reply_gaps"][1:]),
        f"largest gap between sends ms:      {stats['max_send_gap_ms']:.3f}",
    ]


# --------------------------------------------------------------------------- reload


def reload_zone_text(records: int, serial: int) -> str:
    body = [f"r{i:06d} IN A 10.{64 + i // 65536}.{i // 256 % 256}.{i % 256}"
            for i in range(records)]
    return "\n".join(zone_head(serial) + body) + "\n"


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_reload(args: argparse.Namespace) -> dict:
    wd = args.workdir
    zone = wd / "big.zone"
    zone.write_text(reload_zone_text(args.records, 1))
    pools = [pool_yaml(f"p{p:04d}", [f"10.5.{(p * POOL_SIZE + m) // 250}."
                                     f"{(p * POOL_SIZE + m) % 250 + 1}"
                                     for m in range(POOL_SIZE)], "{type: none}")
             for p in range(args.pool_members // POOL_SIZE)]
    admin = free_port()
    config = wd / "reload.yaml"
    config.write_text(edgedns_yaml(zone, pools, admin, "reload_interval: 1s\n"))
    rng = random.Random(SEED)
    names = write_names(wd / "stream.txt", [f"r{rng.randrange(args.records):06d}.{ZONE}"
                                            for _ in range(int(args.rate * args.seconds))], None)
    port = free_port()
    log_path = wd / "edgedns.log"
    server = start_edgedns(args, config, port, log_path, "info")
    warnings: list[str] = []
    phases = {}
    try:
        started = time.monotonic()
        wait_answer(server, port, f"r000000.{ZONE}", 1, args.start_timeout)
        log(f"edgedns: {args.records} records and {len(pools)} pools loaded in "
            f"{time.monotonic() - started:.1f} s (until the first answer)")

        def edit() -> list[float]:
            rewrite(zone, reload_zone_text(args.records, 2))
            return [time.time()]

        def sighups() -> list[float]:
            times, first = [], time.monotonic()
            for i in range(args.sighups):
                time.sleep(max(0.0, first + i * args.sighup_window / args.sighups
                               - time.monotonic()))
                os.kill(server.pid, signal.SIGHUP)
                times.append(time.time())
            return times

        for phase, trigger in (("edit", edit), ("sighup", sighups)):
            quiet(args, warnings, phase)
            phases[phase] = reload_phase(args, server, port, admin, names, phase, trigger,
                                         log_path)
    finally:
        server.stop()
    rows = []
    for r in phases.values():
        rows.append(f"== {r['title']}")
        rows += stream_rows(r["stream"])
        rows.append(f"reloads done ('reloaded' lines):   {r['reloaded_log_lines']} for "
                    f"{r['triggers']} trigger(s)" + ("" if r["settled"] else
                    f", still reloading {args.settle:g} s after the stream"))
        rows.append(f"trigger -> 'reloaded' log, s:      first {fmt(r['first_reload_s'])}, "
                    f"last {fmt(r['last_reload_s'])}")
        ok = r["stream"]["lost"] == 0 and r["stream"]["p99_ms"] < 50
        rows.append(f"promise 0 lost, p99 < 50 ms:       {'holds' if ok else 'FAILS'}")
    return {"phases": phases, "table": "\n".join(rows), "warnings": warnings,
            "pools": len(pools)}


def wait_reloads_settle(server: Proc, admin: int, count: int, limit: float) -> tuple[int, bool]:
    """Poll /status until it answers with the same reload count for 3 s (a reload running
    keeps it from answering), `limit` s at most; returns the last count it answered and
    whether it settled."""
    deadline = time.monotonic() + limit
    stable_since = None
    while time.monotonic() < deadline:
        server.check_alive()
        now = reload_successes(admin)
        if now is None or now != count:
            count = count if now is None else now
            stable_since = None
        elif stable_since is None:
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= 3.0:
            return count, True
        time.sleep(0.25)
    return count, False


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def reload_phase(args: argparse.Namespace, server: Proc, port: int, admin: int, names: Path,
                 phase: str, trigger, log_path: Path) -> dict:  # noqa: ANN001 - a callable
    """The stream for --seconds with `trigger` fired --lead s in; then waits (at most
    --settle s) until the reloads stop, and counts them."""
    before = reload_successes(admin)
    if before is None:
        raise BenchError("the admin endpoint does not answer /status")
    lines_before = len(reloaded_lines(log_path))
    title = ("zone file rewritten (serial + 1)" if phase == "edit" else
             f"{args.sighups} SIGHUPs in {args.sighup_window:g} s")
    log(f"edgedns: {args.rate:g} qps for {args.seconds:g} s; {title} at {args.lead:g} s")
    stream, t0 = start_stream(args, port, names, args.seconds, args.workdir / f"{phase}.json")
    time.sleep(max(0.0, t0 + args.lead - time.monotonic()))
    mono, wall = time.monotonic(), time.time()
    fired = trigger()
    stream.wait(args.seconds + args.timeout + 30)
    stream.stop()
    done, settled = wait_reloads_settle(server, admin, before, args.settle)
    ends = reloaded_lines(log_path)[lines_before:]
    stats = stream_stats(args.workdir / f"{phase}.json", args.timeout,
                         [mono + (t - wall) for t in fired])
    log(f"  {stats['lost']} / {stats['sent']} lost, p99 {stats['p99_ms']} ms, max gap "
        f"{stats['max_reply_gap_ms']} ms; {len(ends)} reloads")
    return {"title": title, "triggers": len(fired), "status_reloads": done - before,
            "settled": settled,
            "reloaded_log_lines": len(ends),
            "first_reload_s": round(ends[0] - fired[0], 3) if ends else None,
            "last_reload_s": round(ends[-1] - fired[0], 3) if ends else None,
            "stream": stats}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--python", default=sys.executable,
                        help="interpreter that runs edgedns (default: this one)")
    common.add_argument("--server-cpu", type=int, default=0, help="CPU for the server (0)")
    common.add_argument("--client-cpu", type=int, default=1,
                        help="CPU for dnsperf and the paced client (1)")
    common.add_argument("--timeout", type=float, default=2.0,
                        help="seconds before a query counts as lost (2)")
    common.add_argument("--start-timeout", type=float, default=120.0,
                        help="seconds the server may take to answer first (120)")
    common.add_argument("--quiet-wait", type=float, default=5.0,
                        help="seconds to wait for idle CPUs before each measurement (5)")
    common.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    sub = p.add_subparsers(dest="command", required=True)
    flood = sub.add_parser("flood", parents=[common], help="random-name floods, vs NSD")
    flood.add_argument("--names", type=int, default=200_000,
                       help="distinct names per query file (200000)")
    flood.add_argument("--seconds", type=float, default=10.0, help="length of each run (10)")
    flood.add_argument("--flood-rate", type=float, default=8000.0,
                       help="(d): -Q of the NXDOMAIN flood (8000)")
    flood.add_argument("--legit-rate", type=float, default=500.0,
                       help="(d): -Q of the legitimate stream (500)")
    flip = sub.add_parser("flip", parents=[common], help="reply gaps while a member flips")
    flip.add_argument("--names", type=int, default=200_000,
                      help="distinct names under dep asked first (200000)")
    flip.add_argument("--rate", type=float, default=2000.0, help="paced queries/s (2000)")
    flip.add_argument("--seconds", type=float, default=10.0, help="stream length (10)")
    flip.add_argument("--flips", type=int, default=8, help="member flips, down/up (8)")
    flip.add_argument("--hold", type=float, default=0.4,
                      help="seconds between a flip seen and the next (0.4)")
    rel = sub.add_parser("reload", parents=[common], help="reloads under a steady stream")
    rel.add_argument("--records", type=int, default=100_000, help="A records in the zone")
    rel.add_argument("--pool-members", type=int, default=2000,
                     help=f"members, in pools of {POOL_SIZE}, check none (2000; 0: none)")
    rel.add_argument("--rate", type=float, default=5000.0, help="paced queries/s (5000)")
    rel.add_argument("--seconds", type=float, default=10.0, help="stream length per phase")
    rel.add_argument("--lead", type=float, default=2.0,
                     help="seconds into a phase when the reload is triggered (2)")
    rel.add_argument("--sighups", type=int, default=100, help="SIGHUPs in phase b (100)")
    rel.add_argument("--sighup-window", type=float, default=2.0,
                     help="seconds the SIGHUPs are spread over (2)")
    rel.add_argument("--settle", type=float, default=60.0,
                     help="seconds to wait at most for queued reloads after a phase (60)")
    args = p.parse_args(argv)
    if not 1 <= getattr(args, "names", 1) <= 2_000_000:
        p.error("--names must be in 1..2000000")
    if not (0 < getattr(args, "rate", 1) <= 50_000 and 0 < args.seconds <= 120):
        p.error("--rate must be in (0, 50000] and --seconds in (0, 120]")
    if args.command == "flip" and not 1 <= args.flips <= 50:
        p.error("--flips must be in 1..50")
    if args.command == "reload" and not (1 <= args.records <= 1_000_000
                                         and 0 <= args.pool_members <= 20_000
                                         and 1 <= args.sighups <= 1000
                                         and args.lead < args.seconds):
        p.error("--records 1..1000000, --pool-members 0..20000, --sighups 1..1000, "
                "--lead below --seconds")
    return args


def run(args: argparse.Namespace) -> int:
    preflight(["taskset", "dnsperf"] + (["nsd", "nsd-checkconf"] if args.command == "flood"
                                        else []), [args.server_cpu, args.client_cpu])
    started = time.monotonic()
    info = run_info()  # the edgedns measured: the tree as it is when the run starts
    with tempfile.TemporaryDirectory(prefix="edgedns-stall-") as tmp:
        args.workdir = Path(tmp)
        result = {"flood": run_flood, "flip": run_flip, "reload": run_reload}[args.command](args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                if k != "workdir"}
    print(f"\n== stall {args.command}: edgedns {info['edgedns'].get('commit')}"
          f"{'+dirty' if info['edgedns'].get('dirty') else ''}, "
          f"{time.monotonic() - started:.0f} s")
    print(result.pop("table"))
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    write_json(args.json, info | {"command": args.command, "settings": settings} | result)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_stream"] and len(sys.argv) == 8:
        sys.exit(stream_child(*sys.argv[2:8]))
    arguments = parse_args(sys.argv[1:])
    sys.exit(main(lambda: run(arguments)))
