#!/usr/bin/env python3
"""Health-engine benchmark: prober scale (2,000 members) and probing under query load.

Usage (from anywhere, as root for the raw ICMP socket; needs Debian's dnsperf and taskset):

    python3 bench/probers.py                      # all three runs, ~1.5 min on a quiet box
    python3 bench/probers.py --only icmp tcp      # just the 2,000-member runs
    python3 bench/probers.py --window 30 --json probers.json
    python3 bench/probers.py --only icmp --experiment rcvbuf drain   # try suggested fixes

It checks two promises of the health engine:

1. Scale ("icmp", "tcp"): 2,000 pool members (200 pools of 10) on distinct loopback
   addresses (127.1.0.1 … 127.1.7.208; Linux answers all of 127/8), checked every 1 s with a
   500 ms timeout, fall 2, rise 2: once with ICMP echo (raw socket, as root) and once with TCP
   connects to one listener bound to 0.0.0.0:PORT (a child pinned to CPU 1 that accepts and
   closes). Promise: every member stays up, and edgedns uses under 25 % of one core in the
   steady state (a --window of 20 s after a --warmup of 5 s).
2. Load ("load"): 200 ICMP-checked members beside the bench zone (bench/zones/bench.zone),
   10 s idle, then 20 s of dnsperf at saturation (pinned to CPU 1):
   `dnsperf -s 127.0.0.1 -p PORT -d bench/queries.txt -l 20 -c 8 -q 200 -t 2`.
   Promise: no healthy member is marked down, and the largest probe lateness
   (`Scheduler.max_lateness`) stays within the interval.
Start-up (the first --warmup seconds, when every target is probed at once) is reported apart.

How: edgedns runs as its own process (this file re-run in its internal `_serve` mode), pinned
to CPU 0 with taskset, on the event loop `edgedns serve` uses (uvloop when installed). That
child loads the generated config with `edgedns.config.load`, runs `edgedns.server.Server` on
a free loopback port (admin endpoint on a free port too), and
  - wraps `PoolSet.record` to see every probe result: failures and their reasons, the RTT of
    every successful probe, every up/down transition (so "members ever down" is exact);
  - once a second samples `Server.scheduler.max_lateness` (then resets it, so each second
    and each phase has its own maximum), the up/down counts, its own event-loop lag and the
    kernel's drop counters of its ICMP and UDP sockets, and prints one JSON line;
  - takes phase names on stdin from this script ("phase window"), so start-up, steady state,
    idle and load are reported apart; on "stop", SIGTERM, stdin EOF or its time limit it
    prints a JSON summary per phase and exits.
This script takes the child's CPU from /proc/PID/stat (utime + stime) over each measured
window, and each core's busy share from /proc/stat.

The machine may be shared: before each run the script waits (up to --quiet-wait s, default
300) until no other dnsperf or nsd process runs and the CPUs are nearly idle. A run is marked
CONTENDED when a dnsperf/nsd process ran at its start or during a measured window, or when
other user-space processes used more than --busy-limit % (25) of one core meanwhile.

--experiment applies fixes edgedns lacks to its ICMP socket from inside the child (socket
options, a draining reader), to show what they would change; such results say EXPERIMENT.

Traffic goes only to 127.0.0.0/8. Every loop is bounded in count and time; every child
(server, listener, dnsperf) runs in its own process group and is killed on exit, on errors,
on Ctrl-C and on SIGTERM; the children also exit on their own when this script's pipe to
them closes or their time limit passes. Stdlib, edgedns and dnspython only. Exit status: 0
when every promise held, 2 when one did not, 1 on errors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import re
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ZONE_FILE = BENCH / "zones" / "bench.zone"
QUERY_FILE = BENCH / "queries.txt"
SCALE_ZONE = "probe.lan"
LOAD_ZONE = "bench.lan"
CPU_PROMISE_PCT = 25.0
RUNS = ("icmp", "tcp", "load")


class BenchError(Exception):
    """A failure that ends the run with a one-line message."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# =========================================================================== child: server


def child_serve(argv: list[str]) -> int:
    """`probers.py _serve CONFIG PORT MAX_SECONDS LOOP`: run edgedns with instrumentation."""
    import asyncio
    import logging

    config_path, port, max_seconds, loop_kind = argv[0], int(argv[1]), float(argv[2]), argv[3]
    experiments = set(filter(None, argv[4].split(","))) if len(argv) > 4 else set()
    sys.path.insert(0, str(REPO))
    from edgedns import config as config_mod
    from edgedns.server import Server

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def emit(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    class Phase:
        def __init__(self, name: str, probes: int, now: float) -> None:
            self.name = name
            self.started = now
            self.ended = now
            self.probes_at_start = probes
            self.probes = 0
            self.results = 0
            self.failures = 0
            self.reasons: Counter[str] = Counter()
            self.rtts: list[float] = []
            self.went_down = 0
            self.went_up = 0
            self.down_targets: set[str] = set()
            self.lateness = 0.0
            self.loop_lag = 0.0
            self.min_up: int | None = None
            self.max_inflight = 0
            self.drops: dict[str, int] = {}
            """Socket drop counters at the start of the phase, then during it."""

        def summary(self) -> dict:
            rtts = sorted(self.rtts)

            def q(frac: float) -> float | None:
                if not rtts:
                    return None
                return round(rtts[min(len(rtts) - 1, int(frac * len(rtts)))] * 1000, 3)

            return {
                "seconds": round(self.ended - self.started, 2),
                "probes_started": self.probes,
                "results": self.results,
                "failures": self.failures,
                "failure_reasons": dict(self.reasons.most_common(5)),
                "went_down": self.went_down,
                "went_up": self.went_up,
                "members_ever_down": len(self.down_targets),
                "down_examples": sorted(self.down_targets)[:5],
                "max_lateness_ms": round(self.lateness * 1000, 3),
                "max_loop_lag_ms": round(self.loop_lag * 1000, 3),
                "min_up": self.min_up,
                "max_inflight": self.max_inflight,
                "socket_drops": self.drops,
                "rtt_ms": {"n": len(rtts), "min": q(0.0),
                           "median": round(statistics.median(rtts) * 1000, 3) if rtts else None,
                           "p99": q(0.99), "max": q(1.0)},
            }

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        listen = (f"127.0.0.1:{port}",)
        config = config_mod.load(config_path, listen)
        try:
            server = Server(config, listen)  # keeps the override across reloads
        except TypeError:
            server = Server(config)  # an edgedns without reloads
        health = server.pools.health
        scheduler = server.scheduler
        phases = [Phase("startup", 0, time.monotonic())]
        ever_down: set[str] = set()
        overall_lateness = 0.0
        stopping = asyncio.Event()
        original_record = server.pools.record

        def record(target, result):  # noqa: ANN001, ANN202 - PoolSet.record's signature
            changed = original_record(target, result)
            phase = phases[-1]
            phase.results += 1
            if result.ok:
                if result.rtt is not None:
                    phase.rtts.append(result.rtt)
            else:
                phase.failures += 1
                phase.reasons[result.reason[:60]] += 1
            if changed:
                if health[target].up:
                    phase.went_up += 1
                else:
                    phase.went_down += 1
                    phase.down_targets.add(target.address)
                    ever_down.add(target.address)
            return changed

        server.pools.record = record  # instance attribute: Server calls self.pools.record

        def sample(phase: Phase) -> tuple[int, float]:
            nonlocal overall_lateness
            late = scheduler.max_lateness
            scheduler.max_lateness = 0.0
            overall_lateness = max(overall_lateness, late)
            phase.lateness = max(phase.lateness, late)
            up = sum(1 for h in health.values() if h.up)
            phase.min_up = up if phase.min_up is None else min(phase.min_up, up)
            return up, late

        def close_phase(now: float) -> None:
            phase = phases[-1]
            sample(phase)
            phase.ended = now
            phase.probes = scheduler.probes_started - phase.probes_at_start
            drops = socket_drops()
            phase.drops = {k: v - phase.drops.get(k, 0) for k, v in drops.items()}
            return drops

        sockets: dict[int, str] = {}

        def socket_drops() -> dict[str, int]:
            """Kernel drop counters (receive buffer full) of the server's sockets."""
            return _socket_drops(sockets)

        def new_phase(name: str) -> None:
            now = time.monotonic()
            drops = close_phase(now)
            phases.append(Phase(name, scheduler.probes_started, now))
            phases[-1].drops = drops

        buffered = b""

        def on_stdin() -> None:
            nonlocal buffered
            try:
                data = os.read(0, 4096)
            except BlockingIOError:
                return
            if not data:
                stopping.set()
                loop.remove_reader(0)
                return
            buffered += data
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                words = line.decode(errors="replace").split()
                if words[:1] == ["phase"] and len(words) == 2:
                    new_phase(words[1])
                    emit({"phase": words[1]})
                elif words[:1] == ["stop"]:
                    stopping.set()

        async def ticker() -> None:
            # time.monotonic, not loop.time(): uvloop's clock has millisecond resolution.
            deadline = time.monotonic() + max_seconds
            next_tick = time.monotonic() + 1.0
            n = 0
            while not stopping.is_set() and time.monotonic() < deadline and n < 100_000:
                n += 1
                try:
                    await asyncio.wait_for(stopping.wait(),
                                           max(0.0, next_tick - time.monotonic()))
                    break
                except asyncio.TimeoutError:
                    pass
                lag = max(0.0, time.monotonic() - next_tick)
                next_tick += 1.0
                phase = phases[-1]
                phase.loop_lag = max(phase.loop_lag, lag)
                phase.max_inflight = max(phase.max_inflight, len(scheduler._running))
                up, late = sample(phase)
                emit({"tick": n, "phase": phase.name, "up": up, "down": len(health) - up,
                      "probes": scheduler.probes_started, "lateness_ms": round(late * 1000, 3),
                      "lag_ms": round(lag * 1000, 3), "ever_down": len(ever_down),
                      "drops": socket_drops()})
            stopping.set()

        await server.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        os.set_blocking(0, False)
        loop.add_reader(0, on_stdin)
        icmp = server._icmp
        kinds = sorted({"raw" if f.privileged else "ping"
                        for f in (icmp._families.values() if icmp else ())})
        for family in (icmp._families.values() if icmp else ()):
            sock = family.sock.sock
            sockets[os.fstat(sock.fileno()).st_ino] = f"icmpv{family.version}"
            # Experiments (--experiment): socket options edgedns does not set (yet). This runs
            # before the scheduler task's first turn, so the start-up burst sees them too.
            if "icmp-filter" in experiments and family.privileged and family.version == 4:
                # Linux ICMP_FILTER (SOL_RAW 255, option 1): pass only echo replies (type 0),
                # not the echo requests looped back to the socket nor other ICMP traffic.
                sock.setsockopt(255, 1, (0xFFFFFFFF & ~1).to_bytes(4, sys.byteorder))
            if "rcvbuf" in experiments:
                force = getattr(socket, "SO_RCVBUFFORCE", socket.SO_RCVBUF)
                sock.setsockopt(socket.SOL_SOCKET, force, 4 << 20)
            if "drain" in experiments and family.privileged and family.version == 4:
                loop.remove_reader(sock.fileno())
                loop.add_reader(sock.fileno(), _drain_reader(family, sock))
        udps = [listener.udp for listener in getattr(server, "_listeners", {}).values()]
        for udp in udps or getattr(server, "_udp", []):
            sockets[os.fstat(udp.sock.fileno()).st_ino] = "udp"
        phases[0].drops = socket_drops()
        emit({"ready": [str(e) for e in server.bound], "targets": len(health),
              "pools": len(server.pools.pools), "icmp_socket": kinds,
              "loop": type(loop).__module__.split(".")[0], "pid": os.getpid(),
              "experiments": sorted(experiments)})
        tick_task = loop.create_task(ticker())
        await stopping.wait()
        close_phase(time.monotonic())
        tick_task.cancel()
        await asyncio.gather(tick_task, return_exceptions=True)
        try:
            loop.remove_reader(0)
        except (ValueError, OSError):
            pass
        up = sum(1 for h in health.values() if h.up)
        summary = {
            "targets": len(health),
            "probes_started": scheduler.probes_started,
            "max_lateness_ms": round(overall_lateness * 1000, 3),
            "up": up, "down": len(health) - up,
            "members_ever_down": len(ever_down),
            "phases": {p.name: p.summary() for p in phases},
        }
        try:
            await asyncio.wait_for(server.stop(), 10)
        except asyncio.TimeoutError:
            summary["stop"] = "timed out after 10 s"
        emit({"summary": summary})

    if loop_kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            loop_kind = "asyncio"
        else:
            uvloop.run(serve())
            return 0
    asyncio.run(serve())
    return 0


def _drain_reader(family, sock: socket.socket):  # noqa: ANN001, ANN202 - edgedns's _Family
    """Experiment "drain": a reader for a raw IPv4 ICMP socket that reads up to 256 packets
    per wake-up with plain non-blocking recvfrom (no icmplib receive(), whose settimeout
    adds a poll() to every call) and matches echo replies like edgedns's _Family.readable."""
    sock.setblocking(False)
    pending = family.pending
    ident = family.ident
    unpack = struct.unpack_from

    def readable() -> None:
        for _ in range(256):
            try:
                packet, addr = sock.recvfrom(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 8 or packet[ihl] != 0:
                continue  # not an echo reply
            reply_id, sequence = unpack("!HH", packet, ihl + 4)
            if reply_id != ident:
                continue
            waiter = pending.get((addr[0], sequence))
            if waiter is not None and not waiter.done():
                waiter.set_result(time.monotonic())

    return readable


def _socket_drops(inodes: dict[int, str]) -> dict[str, int]:
    """Drop counters (last column of /proc/net/{raw,raw6,udp,udp6}) of the sockets whose
    inodes are given, summed per label."""
    out = {label: 0 for label in inodes.values()}
    for table in ("raw", "raw6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9].isdigit() and int(fields[9]) in inodes:
                out[inodes[int(fields[9])]] += int(fields[-1])
    return out


def raw_icmp_sockets() -> int:
    """Raw/ping ICMP sockets open on this host (each gets a copy of all ICMP traffic)."""
    try:
        return len(Path("/proc/net/raw").read_text().splitlines()) - 1
    except OSError:
        return 0


# =========================================================================== child: listener


def child_listen(argv: list[str]) -> int:
    """`probers.py _listen MAX_SECONDS`: accept TCP on 0.0.0.0:<free port> and close each
    connection at once; prints {"port": P} first and {"accepted": N} at the end."""
    max_seconds = float(argv[0])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))  # 127/8-wide: every loopback member address reaches it
    sock.listen(4096)
    sock.setblocking(False)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    accepted = 0
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "listen")
    os.set_blocking(0, False)
    sel.register(0, selectors.EVENT_READ, "stdin")
    deadline = time.monotonic() + max_seconds
    done = False
    while not done and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.data == "stdin":
                try:
                    data = os.read(0, 4096)
                except BlockingIOError:
                    continue
                if not data or b"stop" in data:
                    done = True
                continue
            for _ in range(512):
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                # Plain close (FIN), like a real server. A RST (SO_LINGER 0) can beat the
                # client's connect completion and fail its probe with ECONNRESET.
                conn.close()
                accepted += 1
    print(json.dumps({"accepted": accepted}), flush=True)
    return 0


# =========================================================================== parent: processes


class Child:
    """A child in its own process group, pinned to one CPU, JSON lines on stdout."""

    def __init__(self, name: str, argv: list[str], cpu: int, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._stopped = False
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, start_new_session=True, env=env, cwd=REPO,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        self.ticks: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if "tick" in obj:
                self.ticks.append(obj)
            else:
                self.lines.put(obj)

    def expect(self, key: str, timeout: float) -> dict:
        """The next non-tick line holding `key` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                obj = self.lines.get(timeout=min(0.5, left))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    time.sleep(0.2)  # let the reader thread deliver the last lines
                    if self.lines.empty():
                        raise BenchError(f"{self.name} exited with status "
                                         f"{self.proc.returncode}; its log:\n{self.log_tail()}"
                                         ) from None
                continue
            if key in obj:
                return obj
        raise BenchError(f"{self.name}: no '{key}' line within {timeout:.0f} s; its log:\n"
                         f"{self.log_tail()}")

    def send(self, line: str) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died (status {self.proc.returncode}); its log:\n"
                             f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "    (no log)"
        return "\n".join("    " + line for line in text[-lines:]) or "    (empty)"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.send("stop")
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        _signal_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


CHILDREN: list[Child] = []
"""Every child started; main() stops them all on the way out, whatever happened."""


def start_child(name: str, argv: list[str], cpu: int, log_path: Path) -> Child:
    child = Child(name, argv, cpu, log_path)
    CHILDREN.append(child)
    return child


def free_port() -> int:
    """A port free on both UDP and TCP at 127.0.0.1 (edgedns binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise BenchError("no port free on both UDP and TCP at 127.0.0.1")


# =========================================================================== parent: CPU, others


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads) in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def user_processes_cpu(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """{pid: (start time, CPU seconds)} of every user-space process not in `exclude` (kernel
    threads such as ksoftirqd are left out: on loopback their work is mostly our traffic)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        if pid in exclude:
            continue
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[6]) & 0x00200000:  # PF_KTHREAD
            continue
        out[pid] = (fields[19], (int(fields[11]) + int(fields[12])) / tick)
    return out


def core_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                values = [int(v) for v in line.split()[1:9]]
                idle = values[3] + values[4]
                out[line.split()[0]] = (sum(values) - idle, sum(values))
    return out


def core_busy(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    after = core_times()
    return {cpu: round(100.0 * (after[cpu][0] - b0) / max(1, after[cpu][1] - t0), 1)
            for cpu, (b0, t0) in before.items() if cpu in after}


def other_benchmarks(exclude: set[int]) -> list[str]:
    """Running dnsperf / nsd processes not started by us (what `pgrep -x` would list)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        state = text[text.rfind(")") + 2:][:1]
        if (name == "dnsperf" or name.startswith("nsd")) and state != "Z":
            pid = int(stat.parent.name)
            if pid not in exclude:
                found.append(f"{name}[{pid}]")
    return sorted(found)


def wait_for_quiet(max_wait: float, busy_limit: float) -> dict:
    """Wait up to `max_wait` s until no other dnsperf/nsd process runs and the machine's
    CPUs together are less than `busy_limit` % of one core busy (nothing of ours runs now)."""
    started = time.monotonic()
    others: list[str] = []
    busy = 0.0
    told = False
    for _ in range(int(max_wait) + 2):
        others = other_benchmarks(set())
        before = core_times()
        time.sleep(1.0)
        busy = sum(core_busy(before).values())
        if not others and busy < busy_limit:
            break
        if time.monotonic() - started >= max_wait:
            break
        if not told:
            names = ", ".join(others[:4]) or "none"
            log(f"  waiting for a quiet machine (other benchmarks: {names}; CPUs {busy:.0f}% "
                f"of one core busy), up to {max_wait:.0f} s")
            told = True
    waited = round(time.monotonic() - started, 1)
    if others or busy >= busy_limit:
        log(f"  warning: after {waited:.0f} s still {', '.join(others[:4]) or 'no benchmarks'}, "
            f"CPUs {busy:.0f}% busy: measuring under contention")
    raw = raw_icmp_sockets()
    if raw:
        log(f"  note: {raw} raw ICMP socket(s) already open on this host (another edgedns or "
            "ping?); each gets a copy of every probe packet")
    return {"waited_s": waited, "others_at_start": others, "busy_at_start_pct": round(busy, 1),
            "raw_icmp_sockets_before": raw}


def _reaped_children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Window:
    """CPU use of the server and of every core over a measured stretch of time, and whether
    anything else competed meanwhile: other dnsperf/nsd processes (polled by `poll`) and
    "background" CPU, what user-space processes other than ours used (those alive at the
    end of the window; kernel threads such as ksoftirqd are not counted)."""

    def __init__(self, pid: int, ours: set[int]) -> None:
        self.pid = pid
        self.ours = ours
        self.seen_others: set[str] = set()
        self.wall0 = time.monotonic()
        self.cpu0 = proc_cpu_seconds(pid)
        self.ours0 = self._ours_cpu()
        self.cores0 = core_times()
        self.others0 = user_processes_cpu(self._exclude())

    def _exclude(self) -> set[int]:
        return self.ours | {os.getpid()}

    def _ours_cpu(self) -> float:
        """CPU seconds of our live children plus those reaped already (dnsperf)."""
        total = _reaped_children_cpu()
        for pid in self.ours:
            try:
                total += proc_cpu_seconds(pid)
            except (OSError, ValueError, IndexError):
                pass
        return total

    def poll(self) -> None:
        self.seen_others.update(other_benchmarks(self.ours))

    def sleep(self, seconds: float, child: Child) -> None:
        deadline = time.monotonic() + seconds
        for _ in range(int(seconds * 2) + 4):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(0.5, left))
            child.check_alive()
            self.poll()

    def result(self) -> dict:
        wall = max(1e-6, time.monotonic() - self.wall0)
        self.poll()
        cores = core_busy(self.cores0)
        ours = 100.0 * (self._ours_cpu() - self.ours0) / wall
        others = 0.0
        for pid, (started, cpu) in user_processes_cpu(self._exclude()).items():
            before = self.others0.get(pid)
            others += cpu - (before[1] if before and before[0] == started else 0.0)
        background = 100.0 * others / wall
        return {"seconds": round(wall, 2),
                "cpu_pct": round(100.0 * (proc_cpu_seconds(self.pid) - self.cpu0) / wall, 1),
                "cores_busy_pct": cores,
                "ours_cpu_pct": round(ours, 1),
                "background_cpu_pct": round(background, 1),
                "kernel_and_unattributed_pct":
                    round(max(0.0, sum(cores.values()) - ours - background), 1),
                "other_benchmarks_seen": sorted(self.seen_others)}


# =========================================================================== configs


def member_address(prefix: int, i: int) -> str:
    """i-th member (from 1) on 127.<prefix>.x.y: 127.1.0.1 … 127.1.7.208 for 2,000."""
    if not 1 <= i < 65536:
        raise BenchError("at most 65,535 members per run")
    return f"127.{prefix}.{i >> 8}.{i & 255}"


def pools_yaml(members: int, pool_size: int, prefix: int, name_prefix: str) -> list[str]:
    lines = ["    pools:"]
    n_pools = (members + pool_size - 1) // pool_size
    width = len(str(n_pools))
    i = 1
    for p in range(n_pools):
        lines.append(f"      {name_prefix}{p:0{width}d}:")
        lines.append("        members:")
        for _ in range(min(pool_size, members - i + 1)):
            lines.append(f"          - {member_address(prefix, i)}")
            i += 1
    return lines


HEADER = ["# generated by bench/probers.py; listen is overridden",
          'listen: ["127.0.0.1:5353"]',
          'admin: "127.0.0.1:0"  # an admin endpoint as by default, on a free port',
          "defaults:"]


def check_yaml(args: argparse.Namespace, kind: str, port: int | None) -> str:
    port_part = f", port: {port}" if port is not None else ""
    return (f"  check: {{type: {kind}, interval: {args.interval}, timeout: {args.timeout}, "
            f"fall: 2, rise: 2{port_part}}}")


def scale_config(args: argparse.Namespace, kind: str, port: int | None) -> str:
    lines = [*HEADER, check_yaml(args, kind, port), "zones:", f"  {SCALE_ZONE}:", "    records:",
             "      ns1: {A: 127.0.0.1}", "    ns: [ns1]"]
    lines += pools_yaml(args.members, args.pool_size, 1, "pool")
    return "\n".join(lines) + "\n"


def load_config(args: argparse.Namespace) -> str:
    lines = [*HEADER, check_yaml(args, "icmp", None), "zones:", f"  {LOAD_ZONE}:",
             f"    file: {ZONE_FILE}"]
    lines += pools_yaml(args.load_members, args.pool_size, 2, "probepool")
    return "\n".join(lines) + "\n"


# =========================================================================== DNS, dnsperf


def check_answer(port: int, name: str, want_answers: int, timeout: float = 20.0) -> None:
    """Query `name` A until it is answered with at least `want_answers` records."""
    import dns.exception
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    last = "no reply"
    for _ in range(200):
        if time.monotonic() >= deadline:
            break
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                                  timeout=1.0)
        except (dns.exception.DNSException, OSError) as exc:
            last = str(exc) or type(exc).__name__
            time.sleep(0.1)
            continue
        count = sum(len(rrset) for rrset in reply.answer)
        if reply.rcode() == 0 and count >= want_answers:
            return
        last = f"rcode {reply.rcode()}, {count} answers"
        time.sleep(0.1)
    raise BenchError(f"{name} A on 127.0.0.1:{port}: {last} (want {want_answers} answers)")


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def parse_dnsperf(text: str) -> dict:
    def grab(pattern: str) -> str:
        match = re.search(pattern, text)
        if not match:
            raise BenchError(f"cannot find {pattern!r} in dnsperf's output:\n{text}")
        return match.group(1)

    lat = re.search(r"Average Latency \(s\):\s*" + _NUMBER + r".*max " + _NUMBER, text)
    return {"qps": float(grab(r"Queries per second:\s*" + _NUMBER)),
            "sent": int(grab(r"Queries sent:\s*([0-9]+)")),
            "completed": int(grab(r"Queries completed:\s*([0-9]+)")),
            "lost": int(grab(r"Queries lost:\s*([0-9]+)")),
            "latency_avg_ms": round(float(lat.group(1)) * 1000, 3) if lat else None,
            "latency_max_ms": round(float(lat.group(2)) * 1000, 3) if lat else None}


def dnsperf_argv(args: argparse.Namespace, port: int) -> list[str]:
    return ["taskset", "-c", str(args.client_cpu), "dnsperf", "-s", "127.0.0.1",
            "-p", str(port), "-d", str(QUERY_FILE), "-l", f"{args.load_seconds:g}",
            "-c", str(args.clients), "-q", str(args.outstanding), "-t", "2"]


# =========================================================================== runs


def server_argv(args: argparse.Namespace, config: Path, port: int, max_seconds: float) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "_serve", str(config), str(port),
            f"{max_seconds:g}", args.loop, ",".join(args.experiment)]


def finish_server(server: Child) -> dict:
    server.send("stop")
    summary = server.expect("summary", 30)["summary"]
    server.stop()
    return summary


def run_scale(kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    log(f"[{kind}] {args.members} members, {kind} checks every {args.interval}, "
        f"timeout {args.timeout}")
    quiet = wait_for_quiet(args.quiet_wait, args.busy_limit)
    budget = args.warmup + args.window + 60
    listener = None
    listen_port = None
    if kind == "tcp":
        listener = start_child("listener", [sys.executable, str(Path(__file__).resolve()),
                                            "_listen", f"{budget + 30:g}"],
                               args.client_cpu, workdir / f"{kind}-listener.log")
        listen_port = listener.expect("port", 15)["port"]
        log(f"  TCP listener on 0.0.0.0:{listen_port} (CPU {args.client_cpu})")
    config = workdir / f"{kind}.yaml"
    config.write_text(scale_config(args, kind, listen_port))
    port = free_port()
    server = start_child(f"edgedns ({kind})", server_argv(args, config, port, budget),
                         args.server_cpu, workdir / f"{kind}-server.log")
    ready = server.expect("ready", 60)
    log(f"  edgedns pid {ready['pid']} on 127.0.0.1:{port}: {ready['targets']} targets in "
        f"{ready['pools']} pools, loop {ready['loop']}, icmp socket {ready['icmp_socket']}")
    check_answer(port, f"pool{0:0{len(str(ready['pools']))}d}.{SCALE_ZONE}",
                 min(args.pool_size, args.members))
    ours = {server.proc.pid} | ({listener.proc.pid} if listener else set())
    warm = Window(server.proc.pid, ours)
    warm.sleep(args.warmup, server)
    warm_result = warm.result()
    server.send("phase window")
    log(f"  steady state: measuring {args.window:g} s")
    window = Window(server.proc.pid, ours)
    window.sleep(args.window, server)
    measured = window.result()
    server.send("phase after")
    summary = finish_server(server)
    accepted = None
    if listener is not None:
        listener.send("stop")
        accepted = listener.expect("accepted", 10)["accepted"]
        listener.stop()
    result = {"kind": kind, "members": args.members, "ready": ready, "quiet": quiet,
              "warmup": warm_result, "window": measured,
              "server": summary, "listener_accepted": accepted,
              "ticks": server.ticks}
    result["contended"] = contended(args, quiet, measured)
    phases = summary["phases"]
    ph = phases.get("window", {})
    interval_ms = parse_seconds(args.interval) * 1000
    result["promise"] = {
        "all_up_steady": all(phases[p]["members_ever_down"] == 0 for p in ("window", "after")
                             if p in phases),
        "cpu_under_25pct": measured["cpu_pct"] < CPU_PROMISE_PCT,
        "lateness_within_interval": ph.get("max_lateness_ms", 1e9) < interval_ms,
        "all_up_at_startup": phases["startup"]["members_ever_down"] == 0,
    }
    log(f"  CPU {measured['cpu_pct']:.1f}% of one core, window lateness max "
        f"{ph.get('max_lateness_ms')} ms, ever down {summary['members_ever_down']}, "
        f"failures {sum(p['failures'] for p in summary['phases'].values())}")
    return result


def run_load(args: argparse.Namespace, workdir: Path) -> dict:
    log(f"[load] {args.load_members} ICMP members + zone {LOAD_ZONE}, dnsperf "
        f"{args.load_seconds:g} s")
    quiet = wait_for_quiet(args.quiet_wait, args.busy_limit)
    config = workdir / "load.yaml"
    config.write_text(load_config(args))
    port = free_port()
    budget = args.warmup + args.idle_seconds + args.load_seconds + args.after_seconds + 90
    server = start_child("edgedns (load)", server_argv(args, config, port, budget),
                         args.server_cpu, workdir / "load-server.log")
    ready = server.expect("ready", 60)
    log(f"  edgedns pid {ready['pid']} on 127.0.0.1:{port}: {ready['targets']} targets, "
        f"loop {ready['loop']}")
    check_answer(port, f"host000.{LOAD_ZONE}", 1)
    check_answer(port, f"probepool{0:0{len(str(ready['pools']))}d}.{LOAD_ZONE}",
                 min(args.pool_size, args.load_members))
    ours = {server.proc.pid}
    Window(server.proc.pid, ours).sleep(args.warmup, server)
    server.send("phase idle")
    log(f"  idle: {args.idle_seconds:g} s")
    idle = Window(server.proc.pid, ours)
    idle.sleep(args.idle_seconds, server)
    idle_result = idle.result()
    server.send("phase load")
    argv = dnsperf_argv(args, port)
    log(f"  load: {' '.join(argv[3:])}")
    perf_log = workdir / "dnsperf.out"
    with open(perf_log, "wb") as out:
        perf = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ours.add(perf.pid)
        load = Window(server.proc.pid, ours)
        limit = args.load_seconds + 20
        deadline = time.monotonic() + limit
        for _ in range(int(limit * 2) + 4):
            if perf.poll() is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
            load.poll()
        if perf.poll() is None:
            raise BenchError(f"dnsperf did not finish within {limit:.0f} s")
        load_result = load.result()
    finally:
        if perf.poll() is None:
            _signal_group(perf.pid, signal.SIGKILL)
            perf.wait(5)
    text = perf_log.read_text(errors="replace")
    if perf.returncode != 0:
        raise BenchError(f"dnsperf failed (status {perf.returncode}):\n{text[-2000:]}")
    load_result["dnsperf"] = parse_dnsperf(text)
    server.check_alive()
    server.send("phase after")
    Window(server.proc.pid, ours).sleep(args.after_seconds, server)
    summary = finish_server(server)
    phases = summary["phases"]
    interval_ms = parse_seconds(args.interval) * 1000
    result = {"kind": "load", "members": args.load_members, "ready": ready, "quiet": quiet,
              "idle": idle_result, "load": load_result, "server": summary,
              "dnsperf_argv": " ".join(argv[3:]).replace(f"-p {port}", "-p PORT"),
              "ticks": server.ticks}
    result["contended"] = (contended(args, quiet, idle_result)
                           or contended(args, None, load_result))
    result["promise"] = {
        "none_down_under_load": all(phases[p]["members_ever_down"] == 0
                                    for p in ("idle", "load", "after") if p in phases),
        "lateness_within_interval":
            phases.get("load", {}).get("max_lateness_ms", 1e9) < interval_ms,
        "none_down_at_startup": phases["startup"]["members_ever_down"] == 0,
    }
    log(f"  {load_result['dnsperf']['qps']:.0f} qps, server CPU {load_result['cpu_pct']:.0f}%, "
        f"lateness max idle {phases.get('idle', {}).get('max_lateness_ms')} ms / load "
        f"{phases.get('load', {}).get('max_lateness_ms')} ms, ever down "
        f"{summary['members_ever_down']}")
    return result


def contended(args: argparse.Namespace, quiet: dict | None, window: dict) -> bool:
    return bool((quiet and (quiet["others_at_start"]
                            or quiet["busy_at_start_pct"] >= args.busy_limit))
                or window["other_benchmarks_seen"]
                or window["background_cpu_pct"] >= args.busy_limit)


def parse_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * (0.001 if match.group(2) == "ms" else 1.0)


# =========================================================================== report


def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def rtt_text(rtt: dict) -> str:
    if not rtt or rtt.get("n", 0) == 0:
        return "-"
    return (f"{rtt['min']:.2f}/{rtt['median']:.2f}/{rtt['p99']:.2f}/{rtt['max']:.1f}")


def report(results: dict) -> str:
    server_core = f"cpu{results['settings']['server_cpu']}"
    client_core = f"cpu{results['settings']['client_cpu']}"
    cols: list[tuple[str, dict, dict, dict]] = []  # (title, run, its window, server phase)
    for kind in ("icmp", "tcp"):
        r = results["runs"].get(kind)
        if r:
            cols.append((f"{kind} x{r['members']}", r, r["window"],
                         r["server"]["phases"].get("window", {})))
    r = results["runs"].get("load")
    if r:
        for phase in ("idle", "load"):
            title = f"{'dnsperf' if phase == 'load' else 'idle'} x{r['members']}"
            cols.append((title, r, r[phase], r["server"]["phases"].get(phase, {})))

    def per_s(ph: dict) -> str:
        return fmt(ph.get("probes_started", 0) / max(1e-6, ph.get("seconds") or 1), 0)

    def drops(ph: dict) -> str:
        d = {k: v for k, v in ph.get("socket_drops", {}).items() if v}
        return ",".join(f"{k} {v}" for k, v in d.items()) or "0"

    rows = [
        ("measured s", lambda r, w, ph: fmt(w["seconds"])),
        ("edgedns CPU % 1 core", lambda r, w, ph: fmt(w["cpu_pct"])),
        (f"{server_core} / {client_core} busy %", lambda r, w, ph:
            f"{fmt(w['cores_busy_pct'].get(server_core), 0)} / "
            f"{fmt(w['cores_busy_pct'].get(client_core), 0)}"),
        ("other processes CPU %", lambda r, w, ph: fmt(w["background_cpu_pct"])),
        ("probes started /s", lambda r, w, ph: per_s(ph)),
        ("max lateness ms", lambda r, w, ph: fmt(ph.get("max_lateness_ms"), 2)),
        ("max loop lag ms", lambda r, w, ph: fmt(ph.get("max_loop_lag_ms"), 2)),
        ("RTT ms min/med/p99/max", lambda r, w, ph: rtt_text(ph.get("rtt_ms", {}))),
        ("probe failures", lambda r, w, ph: fmt(ph.get("failures"))),
        ("members ever down", lambda r, w, ph: fmt(ph.get("members_ever_down"))),
        ("socket drops", lambda r, w, ph: drops(ph)),
        ("dnsperf qps", lambda r, w, ph: fmt(w.get("dnsperf", {}).get("qps"), 0)),
        ("start-up: lateness ms", lambda r, w, ph:
            fmt(r["server"]["phases"]["startup"]["max_lateness_ms"], 1)),
        ("start-up: failures", lambda r, w, ph:
            fmt(r["server"]["phases"]["startup"]["failures"])),
        ("start-up: ever down", lambda r, w, ph:
            fmt(r["server"]["phases"]["startup"]["members_ever_down"])),
        ("contended", lambda r, w, ph: "CONTENDED" if r["contended"] else "no"),
    ]
    width = 24
    cells = [[fn(r, w, ph) for _, r, w, ph in cols] for _, fn in rows]
    colw = max([14] + [len(t) + 2 for t, *_ in cols] + [len(c) + 2 for row in cells for c in row])
    out = [f"{'':{width}}" + "".join(f"{t:>{colw}}" for t, *_ in cols)]
    for (label, _), row in zip(rows, cells, strict=True):
        out.append(f"{label:{width}}" + "".join(f"{c:>{colw}}" for c in row))
    out.append("")
    for kind, r in results["runs"].items():
        verdicts = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in r["promise"].items())
        out.append(f"promise {kind}: {verdicts}")
    return "\n".join(out)


# =========================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS),
                   help="runs to do (default: icmp tcp load)")
    p.add_argument("--members", type=int, default=2000,
                   help="members in the scale runs (default 2000)")
    p.add_argument("--load-members", type=int, default=200,
                   help="ICMP members in the load run (default 200)")
    p.add_argument("--pool-size", type=int, default=10, help="members per pool (default 10)")
    p.add_argument("--interval", default="1s", help="check interval (default 1s)")
    p.add_argument("--timeout", default="500ms", help="check timeout (default 500ms)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds after start-up before measuring (default 5)")
    p.add_argument("--window", type=float, default=20.0,
                   help="steady-state CPU window of the scale runs, s (default 20)")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="load run: idle stretch before dnsperf, s (default 10)")
    p.add_argument("--load-seconds", type=float, default=20.0,
                   help="load run: dnsperf -l (default 20)")
    p.add_argument("--after-seconds", type=float, default=3.0,
                   help="load run: stretch watched after dnsperf, s (default 3)")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c (default 8)")
    p.add_argument("--outstanding", type=int, default=200, help="dnsperf -q (default 200)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU for edgedns (default 0)")
    p.add_argument("--client-cpu", type=int, default=1,
                   help="CPU for dnsperf and the TCP listener (default 1)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop of the server (default uvloop, as `edgedns serve`)")
    p.add_argument("--experiment", nargs="+", default=[],
                   choices=("icmp-filter", "rcvbuf", "drain"),
                   help="try fixes edgedns lacks, set on its ICMP socket by the bench: "
                        "icmp-filter (Linux ICMP_FILTER: echo replies only), rcvbuf (4 MiB "
                        "receive buffer), drain (read up to 256 packets per wake-up with "
                        "plain recvfrom). Results are then NOT edgedns as shipped.")
    p.add_argument("--quiet-wait", type=float, default=300.0,
                   help="seconds to wait for other dnsperf/nsd processes to end (default 300)")
    p.add_argument("--busy-limit", type=float, default=25.0,
                   help="CPU of other processes (%% of one core, all together) above which a "
                        "run counts as contended (default 25)")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep configs and logs in DIR instead of a temporary directory")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    try:
        interval, timeout = parse_seconds(args.interval), parse_seconds(args.timeout)
    except ValueError as exc:
        p.error(str(exc))
    if not (0.1 <= interval and 0 < timeout <= interval):
        p.error("need interval >= 100ms and 0 < timeout <= interval")
    if not (1 <= args.members < 65536 and 1 <= args.load_members < 65536
            and args.pool_size >= 1):
        p.error("members must be 1..65535, pool size at least 1")
    for name in ("warmup", "window", "idle_seconds", "load_seconds", "after_seconds"):
        if not 0 < getattr(args, name) <= 600:
            p.error(f"--{name.replace('_', '-')} must be in (0, 600]")
    if not 0 <= args.quiet_wait <= 3600:
        p.error("--quiet-wait must be in [0, 3600]")
    return args


def preflight(args: argparse.Namespace) -> None:
    needed = ["taskset"] + (["dnsperf"] if "load" in args.only else [])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y dnsperf util-linux")
    cpus = os.sched_getaffinity(0)
    for cpu in (args.server_cpu, args.client_cpu):
        if cpu not in cpus:
            raise BenchError(f"CPU {cpu} is not available (have {sorted(cpus)})")
    if ("icmp" in args.only or "load" in args.only) and os.geteuid() != 0:
        log("note: not root; ICMP checks use an unprivileged ping socket if the sysctl "
            "net.ipv4.ping_group_range allows it")
    for path in (ZONE_FILE, QUERY_FILE):
        if not path.is_file():
            raise BenchError(f"{path} is missing (bench/gen_data.py writes it)")
    try:
        import dns.message  # noqa: F401
    except ImportError:
        raise BenchError("dnspython is missing: pip install dnspython") from None


def run(args: argparse.Namespace) -> int:
    preflight(args)
    results: dict = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                 "kernel": platform.release(), "python": platform.python_version()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgedns-probers-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for kind in RUNS:
            if kind not in args.only:
                continue
            if kind == "load":
                results["runs"][kind] = run_load(args, workdir)
            else:
                results["runs"][kind] = run_scale(kind, args, workdir)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print()
    print(report(results))
    if args.experiment:
        print(f"\nEXPERIMENT {' '.join(args.experiment)}: the bench changed edgedns's ICMP "
              "socket; these are not the figures of edgedns as shipped")
    contended = [k for k, r in results["runs"].items() if r["contended"]]
    if contended:
        print(f"\nCONTENDED: other dnsperf/nsd processes or background CPU load (see the table) "
              f"during {', '.join(contended)}; "
              "those figures are pessimistic")
    print(f"\n{results['date']}, {results['elapsed_s']} s in all; CPU % is utime+stime of the "
          "edgedns process over the window; RTT/lateness from the server's own probes")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    ok = all(all(r["promise"].values()) for r in results["runs"].values())
    return 0 if ok else 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        return child_serve(argv[1:])
    if argv[:1] == ["_listen"]:
        return child_listen(argv[1:])
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; children stopped", file=sys.stderr)
        return 130
    finally:
        for child in CHILDREN:
            try:
                child.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                _signal_group(child.proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
