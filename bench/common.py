"""What the bench scripts share: child processes, ports, DNS probes, dnsperf, CPU accounting.

Every child (server, listener, dnsperf) runs in its own session, optionally pinned to one CPU
with taskset, and is registered in `PROCS`; `main` stops them all on the way out (normal
exit, `BenchError`, Ctrl-C, SIGTERM). Only the standard library is used.

`python3 bench/common.py listen MAX_SECONDS` is the TCP listener children run: it accepts on
0.0.0.0:<free port> (so every 127/8 address reaches it), closes each connection at once,
prints {"port": P} first and {"accepted": N} when stdin closes or MAX_SECONDS pass.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))  # bench/ shares helpers with tests/ (standard library ones)

from tests.metrics import scrape  # noqa: E402,F401 (the bench scripts import it from here)

ZONE_FILE = BENCH / "zones" / "bench.zone"
QUERY_FILE = BENCH / "queries.txt"
BENCH_ZONE = "bench.lan"


class BenchError(Exception):
    """A failure that ends the run with a one-line message."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes

PROCS: list[Proc] = []
"""Every child started; `main` stops them all, whatever happened."""


def python_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Proc:
    """A child in its own session, pinned to `cpu` when given, output in `log`. With
    `json_lines`, stdin is a pipe (closing it asks the child to stop) and every JSON line on
    its stdout is appended to `lines`."""

    def __init__(self, name: str, argv: list[str], log: Path, cpu: int | None = None,
                 json_lines: bool = False, cwd: Path = REPO) -> None:
        self.name = name
        self.log = log
        self.lines: list[dict] = []
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        pipe = subprocess.PIPE if json_lines else None
        self.proc = subprocess.Popen(
            (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv, cwd=cwd,
            env=python_env(), stdin=pipe or subprocess.DEVNULL, stdout=pipe or self._log_file,
            stderr=self._log_file, start_new_session=True)
        self.pid = self.proc.pid
        PROCS.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True) if json_lines else None
        if self._reader is not None:
            self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            try:
                self.lines.append(json.loads(raw))
            except ValueError:
                pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}; "
                             f"its log:\n{self.log_tail()}")

    def expect(self, key: str, timeout: float) -> dict:
        """The first JSON line holding `key`, waiting up to `timeout` s for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if key in line:
                    return line
            if not self.alive():
                time.sleep(0.2)  # let the reader deliver the last lines
                if not any(key in line for line in self.lines):
                    self.check_alive()
            time.sleep(0.05)
        raise BenchError(f"{self.name}: no {key!r} within {timeout:.0f} s; its log:\n"
                         f"{self.log_tail()}")

    def wait(self, timeout: float, every: Callable[[], None] | None = None) -> int:
        """Wait for the child to exit (calling `every` each 0.5 s); BenchError after
        `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                raise BenchError(f"{self.name} did not finish within {timeout:.0f} s")
            time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
            if every is not None:
                every()
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "    (no log)"
        return "\n".join("    " + line for line in text[-lines:]) or "    (empty)"

    def stop(self) -> None:
        """Close stdin, SIGTERM the group, SIGKILL it after 5 s (and any stragglers, such as
        NSD's helpers), then close the files. Safe to call twice."""
        if self not in PROCS:
            return
        PROCS.remove(self)
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self._reader is not None:
            self._reader.join(2)  # the last lines
        self._log_file.close()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    for proc in list(reversed(PROCS)):
        try:
            proc.stop()
        except Exception:  # noqa: BLE001 - keep stopping the others
            _signal_group(proc.pid, signal.SIGKILL)


def free_port() -> int:
    """A port free on both UDP and TCP at 127.0.0.1 (DNS servers bind both)."""
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


def start_edgedns(config: Path, port: int, log: Path, cpu: int | None = None,
                  log_level: str | None = "warning", name: str = "edgedns") -> Proc:
    argv = [sys.executable, "-m", "edgedns", "serve", "-c", str(config),
            "--listen", f"127.0.0.1:{port}"]
    return Proc(name, argv + (["--log-level", log_level] if log_level else []), log, cpu)


NSD_CONF = """\
server:
    server-count: 1
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    rrl-ratelimit: 0
    hide-version: yes
    hide-identity: yes
    refuse-any: no
    username: ""
    chroot: ""
    database: ""
    verbosity: 1
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}/xfr"
    logfile: "{dir}/nsd.log"
remote-control:
    control-enable: no
"""


def start_nsd(zones: dict[str, Path], port: int, workdir: Path, cpu: int | None = None,
              rrl: bool = False) -> Proc:
    """NSD in the foreground serving `zones` (apex → master file) on 127.0.0.1:`port`: one
    server process, RRL off unless `rrl` (then NSD's defaults), no database, its files in a
    fresh directory under `workdir`."""
    nsd_dir = workdir / f"nsd-{port}"
    (nsd_dir / "xfr").mkdir(parents=True)
    conf = NSD_CONF.format(port=port, dir=nsd_dir)
    if rrl:
        conf = conf.replace("    rrl-ratelimit: 0\n", "")
    for apex, path in zones.items():
        shutil.copy(path, nsd_dir / f"{apex}.zone")
        conf += f"zone:\n    name: {apex}\n    zonefile: {apex}.zone\n"
    (nsd_dir / "nsd.conf").write_text(conf)
    check = subprocess.run(["nsd-checkconf", str(nsd_dir / "nsd.conf")], capture_output=True,
                           text=True, timeout=30)
    if check.returncode != 0:
        raise BenchError(f"nsd-checkconf rejects the generated config: {check.stderr.strip()}")
    return Proc("NSD", ["nsd", "-d", "-c", str(nsd_dir / "nsd.conf")], nsd_dir / "stdout.log",
                cpu, cwd=nsd_dir)


def start_tcp_listener(log: Path, max_seconds: float, cpu: int | None = None) -> tuple[Proc, int]:
    """The accept-and-close TCP listener (this file's `listen` mode); returns it and its port."""
    proc = Proc("TCP listener", [sys.executable, str(Path(__file__).resolve()), "listen",
                                 f"{max_seconds:g}"], log, cpu, json_lines=True)
    return proc, proc.expect("port", 15)["port"]


def _listen(max_seconds: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))  # noqa: S104 - every 127/8 member address must reach it
    sock.listen(4096)
    sock.setblocking(False)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(0, selectors.EVENT_READ)
    accepted = 0
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj == 0:
                if not os.read(0, 4096):
                    deadline = 0
                continue
            for _ in range(512):
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                conn.close()  # a FIN, like a real server (an RST can fail the probe)
                accepted += 1
    print(json.dumps({"accepted": accepted}), flush=True)
    return 0


# --------------------------------------------------------------------------- DNS


def make_query(name: str, qtype: int = 1, qid: int = 0, flags: int = 0,
               edns_payload: int | None = None) -> bytes:
    """A query in wire form (unframed); with `edns_payload`, an OPT record advertising it."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    arcount = 0 if edns_payload is None else 1
    packet = (struct.pack("!HHHHHH", qid, flags, 1, 0, 0, arcount) + qname
              + struct.pack("!HH", qtype, 1))
    if edns_payload is not None:
        packet += b"\x00" + struct.pack("!HHIH", 41, edns_payload, 0, 0)
    return packet


def session_rss_kib(sid: int) -> list[int]:
    """The RSS of each process of session `sid` (NSD forks its server), in KiB."""
    sizes = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != sid:
                continue
            with open(f"/proc/{entry}/status") as f:
                sizes.append(next(int(line.split()[1]) for line in f
                                  if line.startswith("VmRSS:")))
        except (ProcessLookupError, PermissionError, FileNotFoundError, StopIteration):
            continue
    return sizes


def query_udp(port: int, name: str, qtype: int = 1, timeout: float = 1.0) -> tuple[int, int]:
    """One query to 127.0.0.1:`port`; (rcode, ANCOUNT) of the reply. Raises OSError."""
    qid = random.randrange(65536)
    packet = make_query(name, qtype, qid, flags=0x0100)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.send(packet)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                raise OSError("timed out") from None
            if len(reply) >= 12 and struct.unpack_from("!H", reply)[0] == qid:
                flags, _, ancount = struct.unpack_from("!HHH", reply, 2)
                if not flags & 0x8000:
                    raise OSError("reply without the QR bit")
                return flags & 0x0F, ancount


def wait_answer(proc: Proc, port: int, name: str, min_answers: int = 1,
                timeout: float = 30.0) -> None:
    """Poll `name` A until it is answered NOERROR with at least `min_answers` records."""
    deadline = time.monotonic() + timeout
    last = "no reply"
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            rcode, count = query_udp(port, name, 1, 0.5)
        except OSError as exc:
            last = str(exc)
        else:
            if rcode == 0 and count >= min_answers:
                return
            last = f"rcode {rcode}, {count} answers"
        time.sleep(0.1)
    raise BenchError(f"{proc.name} on 127.0.0.1:{port}: {name} A gave {last} (want "
                     f"{min_answers}+ answers) for {timeout:.0f} s; its log:\n{proc.log_tail()}")


# --------------------------------------------------------------------------- CPU


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                values = [int(v) for v in line.split()[1:9]]
                out[line.split()[0]] = (sum(values) - values[3] - values[4], sum(values))
    return out


def busy_since(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    after = cpu_times()
    return {cpu: round(100.0 * (after[cpu][0] - b0) / max(1, after[cpu][1] - t0), 1)
            for cpu, (b0, t0) in before.items() if cpu in after}


def proc_table() -> dict[int, tuple[int, int, str, str, float]]:
    """User-space processes: pid → (ppid, session, name, start time, CPU seconds)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        f = text[text.rfind(")") + 2:].split()
        if int(f[6]) & 0x00200000 or f[0] == "Z":  # kernel thread, zombie
            continue
        out[int(stat.parent.name)] = (int(f[1]), int(f[3]), name, f[19],
                                      (int(f[11]) + int(f[12])) / tick)
    return out


def _ours(pid: int, row: tuple) -> bool:
    me = os.getpid()
    return pid == me or row[0] == me or any(row[1] == p.pid for p in PROCS)


def other_benchmarks(table: dict | None = None) -> list[str]:
    """Running dnsperf / nsd processes that are not ours."""
    table = proc_table() if table is None else table
    return sorted(f"{row[2]}[{pid}]" for pid, row in table.items()
                  if (row[2] == "dnsperf" or row[2].startswith("nsd")) and not _ours(pid, row))


def session_cpu_seconds(sid: int, table: dict | None = None) -> float:
    table = proc_table() if table is None else table
    return sum(row[4] for row in table.values() if row[1] == sid)


def reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(cpus: list[int], max_wait: float, threshold: float = 15.0) -> dict:
    """Wait up to `max_wait` s until no other dnsperf/nsd runs and each of `cpus` is under
    `threshold` % busy; warns when it gives up."""
    started = time.monotonic()
    told = False
    while True:
        others = other_benchmarks()
        before = cpu_times()
        time.sleep(0.5)
        busy = busy_since(before)
        worst = max(busy.get(f"cpu{c}", 0.0) for c in cpus)
        quiet = not others and worst < threshold
        if quiet or time.monotonic() - started >= max_wait:
            break
        if not told:
            log(f"  waiting up to {max_wait:.0f} s for idle CPUs (busiest {worst:.0f}%; other "
                f"benchmarks: {', '.join(others[:4]) or 'none'})")
            told = True
        time.sleep(0.5)
    if not quiet:
        log(f"  warning: CPUs not idle ({worst:.0f}% busy; {', '.join(others[:4]) or 'no other'}"
            " benchmarks): other programs are running, figures will be low and noisy")
    return {"waited_s": round(time.monotonic() - started, 1), "busy_pct": worst,
            "others": others, "quiet": quiet}


class Window:
    """CPU use over a stretch of time: of the sessions of our `procs`, of our reaped
    children (dnsperf), of each core, and of every other user-space process ("background";
    kernel threads such as ksoftirqd are left out: on loopback their work is mostly ours)."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.wall0 = time.monotonic()
        self.cores0 = cpu_times()
        self.table0 = proc_table()
        self.reaped0 = reaped_children_cpu()
        self.others_seen: set[str] = set()

    def poll(self) -> None:
        self.others_seen.update(other_benchmarks())

    def result(self) -> dict:
        wall = max(1e-6, time.monotonic() - self.wall0)
        table = proc_table()
        cores = busy_since(self.cores0)
        self.others_seen.update(other_benchmarks(table))

        def used(pid: int, row: tuple) -> float:
            before = self.table0.get(pid)
            return row[4] - (before[4] if before and before[3] == row[3] else 0.0)

        background = sum(used(pid, row) for pid, row in table.items() if not _ours(pid, row))
        return {
            "seconds": round(wall, 2),
            "cpu_pct": {p.name: round(100 * sum(used(pid, row) for pid, row in table.items()
                                                 if row[1] == p.pid) / wall, 1)
                        for p in self.procs},
            "reaped_cpu_pct": round(100 * (reaped_children_cpu() - self.reaped0) / wall, 1),
            "cores_busy_pct": cores,
            "background_cpu_pct": round(100 * background / wall, 1),
            "other_benchmarks": sorted(self.others_seen),
        }


# --------------------------------------------------------------------------- dnsperf


@dataclass
class PerfResult:
    qps: float
    sent: int
    completed: int
    lost: int
    latency_avg_ms: float
    latency_stddev_ms: float
    latency_max_ms: float
    rcodes: dict[str, int]
    latency_ms: dict[str, float] = field(default_factory=dict)
    """With -v: percentiles of every reply's latency (p50, p90, p99, p99.9)."""
    window: dict = field(default_factory=dict)
    """`Window.result()` over the run."""
    offered_qps: float | None = None


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def parse_dnsperf(text: str) -> PerfResult:
    def grab(pattern: str) -> str:
        match = re.search(pattern, text)
        if not match:
            raise BenchError(f"cannot find {pattern!r} in dnsperf's output:\n{text[-3000:]}")
        return match.group(1)

    codes = re.search(r"Response codes:\s*(.*)", text)
    rcodes = {code: int(n) for code, n in re.findall(r"([A-Z]+) ([0-9]+) \(",
                                                     codes.group(1))} if codes else {}
    lat = re.search(r"Average Latency \(s\):\s*" + _NUMBER + r".*max " + _NUMBER, text)
    std = re.search(r"Latency StdDev \(s\):\s*" + _NUMBER, text)
    # -v: one line per reply, "> RCODE NAME TYPE SECONDS"
    each = sorted(float(s) * 1000 for s in re.findall(r"^> \S+ \S+ \S+ ([0-9.]+)$", text, re.M))
    return PerfResult(
        qps=float(grab(r"Queries per second:\s*" + _NUMBER)),
        sent=int(grab(r"Queries sent:\s*([0-9]+)")),
        completed=int(grab(r"Queries completed:\s*([0-9]+)")),
        lost=int(grab(r"Queries lost:\s*([0-9]+)")),
        latency_avg_ms=float(lat.group(1)) * 1000 if lat else float("nan"),
        latency_stddev_ms=float(std.group(1)) * 1000 if std else float("nan"),
        latency_max_ms=float(lat.group(2)) * 1000 if lat else float("nan"),
        rcodes=rcodes,
        latency_ms={f"p{q:g}": round(each[min(len(each) - 1, int(q / 100 * len(each)))], 4)
                    for q in (50, 90, 99, 99.9)} | {"median": round(statistics.median(each), 4)}
        if each else {},
    )


def dnsperf_argv(port: int, queries: Path, clients: int = 8, threads: int = 1,
                 outstanding: int = 500, timeout: float = 2.0, seconds: float | None = None,
                 rate: float | None = None, passes: int | None = None,
                 verbose: bool = False) -> list[str]:
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-c",
            str(clients), "-T", str(threads), "-q", str(outstanding), "-t", f"{timeout:g}"]
    if seconds is not None:
        argv += ["-l", f"{seconds:g}"]
    if passes is not None:
        argv += ["-n", str(passes)]
    if rate is not None:
        argv += ["-Q", str(int(rate))]
    return argv + (["-v"] if verbose else [])


def run_dnsperf(argv: list[str], log: Path, cpu: int | None, limit: float,
                watch: list[Proc] = (), during: Callable[[], None] | None = None) -> PerfResult:
    """Run dnsperf to its end (at most `limit` s), measuring CPU use meanwhile (`watch`: the
    servers); `during` is called every 0.5 s."""
    window = Window(list(watch))
    perf = Proc("dnsperf", argv, log, cpu)
    try:
        status = perf.wait(limit, lambda: (window.poll(), during and during()))
    finally:
        perf.stop()
    text = log.read_text(errors="replace")
    if status != 0:
        raise BenchError(f"dnsperf failed (status {status}): {' '.join(argv)}\n{text[-2000:]}")
    result = parse_dnsperf(text)
    result.window = window.result()
    result.offered_qps = next((float(argv[i + 1]) for i, a in enumerate(argv) if a == "-Q"),
                              None)
    return result


# --------------------------------------------------------------------------- results, main


def run_info() -> dict:
    """Date, host, tool versions and the edgedns commit measured (dirty: edgedns/ differs)."""
    out: dict = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                          "kernel": platform.release(), "python": platform.python_version()},
                 "tools": {}, "edgedns": {}}
    for name, argv in (("nsd", ["nsd", "-v"]), ("dnsperf", ["dnsperf", "-h"]),
                       ("commit", ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
                       ("dirty", ["git", "-C", str(REPO), "status", "--porcelain", "edgedns"])):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if name in ("commit", "dirty"):
            out["edgedns"][name] = done.stdout.strip() if name == "commit" else bool(done.stdout)
        elif match := re.search(r"[Vv]ersion ([0-9][0-9.]*)", done.stdout + done.stderr):
            out["tools"][name] = match.group(1)
    return out


def write_json(path: Path | None, results: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {path}")


def preflight(tools: list[str], cpus: list[int] = ()) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y nsd dnsperf "
                         "util-linux iproute2")
    have = os.sched_getaffinity(0)
    for cpu in cpus:
        if cpu not in have:
            raise BenchError(f"CPU {cpu} is not available (have {sorted(have)})")


def one_pool_yaml(members: list[str], admin: int | None = None, pool_keys: str = "") -> str:
    """A config serving zone pool.lan with one pool, `app`, of `members`: every check
    setting at its default unless `pool_keys` (YAML lines, indented 8 spaces) says more."""
    return (f"admin: {f'127.0.0.1:{admin}' if admin else 'false'}\n"
            "zones:\n  pool.lan:\n    records:\n      ns1: {A: 127.0.0.1}\n"
            f"    pools:\n      app:\n{pool_keys}        members: [{', '.join(members)}]\n")


def lab_main(script: str, run: Callable[[], int]) -> None:
    """Exit with `run`'s status (through `main`), or 2 when network-namespace labs cannot be
    built here (tests/netns.py says why)."""
    from tests.labbase import available

    reason = available()
    if reason:
        print(f"{script}: {reason}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(run))


def main(run: Callable[[], int]) -> int:
    """Run `run` with SIGTERM turned into Ctrl-C; every child is stopped on the way out."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; children stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    if sys.argv[1:2] == ["listen"] and len(sys.argv) == 3:
        sys.exit(_listen(float(sys.argv[2])))
    sys.exit(__doc__)
