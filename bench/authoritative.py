#!/usr/bin/env python3
"""UDP throughput of edgedns against NSD, serving the same zone, measured with dnsperf.

Needs Python 3.10+, two CPUs, taskset and Debian's nsd and dnsperf
(`apt-get install -y nsd dnsperf`); no third-party Python package. Usage:

    python3 bench/authoritative.py                 # about 60-75 s at the defaults
    python3 bench/authoritative.py --seconds 20 --json results.json

What one run does, for NSD first and then edgedns (`python3 -m edgedns serve`):

1. starts the server on a free 127.0.0.1 port, pinned to CPU 0 (`taskset -c 0`); NSD gets a
   throw-away nsd.conf in a temp dir (one server process, RRL off, no database, foreground);
2. waits until it answers one query over UDP (raw socket, stdlib) and fails clearly if not;
3. warms it up with one pass over bench/queries.txt (edgedns compiles NXDOMAIN/NODATA
   answers on first use);
4. "max qps": dnsperf pinned to CPU 1 for --seconds, unthrottled but with at most
   --outstanding queries in flight (-c 8 -q 500 -T 1 by default);
5. "zero-loss qps": a short bisection over dnsperf -Q rates (--probe-seconds each, --probes
   steps) for the highest offered rate the server carries with 0 lost queries and at least
   98 % of the offered rate completed;
6. stops the server (SIGTERM to its process group, SIGKILL after 5 s).

Then it prints both servers side by side with the ratio edgedns / NSD, and with --json writes
the same figures (plus dnsperf's raw numbers, rcodes and the CPU use of each core) to a file.

Reading the output (bench/README.md has more):
  * "max qps" is what dnsperf got through with at most -q queries in flight; at saturation
    its latency is about outstanding / qps (Little's law), not a property of the server;
  * "server process CPU %" is the server's own CPU time (user + system) over the run, in % of
    one core. Near 100 %: the server was the bottleneck. Well below 100 % with the server core
    idle and dnsperf near 100 %: the load generator was the limit and the figure is a lower
    bound (on loopback the sender's core also pays for delivering each packet, so on a 2-core
    machine NSD usually ends up there). Below 100 % with the server core busy: other
    programs took part of it;
  * "qps per server CPU-s" = max qps / server CPU share: the server's efficiency, the figure
    least moved by either of those effects;
  * "zero-loss qps" is the best carried -Q rate, with the latency measured at that rate.
The script waits up to --quiet-wait s for idle CPUs before each measurement and warns when
it does not get them.

Everything is bounded: every subprocess has a timeout, and the servers are killed on exit,
on exceptions, on Ctrl-C and on SIGTERM. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ZONE_FILE = BENCH / "zones" / "bench.zone"
EDGEDNS_CONFIG = BENCH / "bench.yaml"
QUERY_FILE = BENCH / "queries.txt"
ZONE = "bench.lan"
PROBE_NAME = "host000.bench.lan"

SUSTAINED_FRACTION = 0.98
"""A -Q rate counts as carried when at least this share of it completes, with 0 lost."""

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
zone:
    name: {zone}
    zonefile: {zonefile}
"""


class BenchError(Exception):
    """A failure that ends the run with a one-line message."""


# --------------------------------------------------------------------------- processes


class Server:
    """A DNS server child in its own process group, pinned to one CPU."""

    def __init__(self, name: str, argv: list[str], cpu: int, port: int, log: Path,
                 cwd: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv], cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no reply"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with status {self.proc.returncode} "
                                 f"before answering; its log:\n{self.log_tail()}")
            try:
                rcode, ancount = query_udp(self.port, PROBE_NAME, 1, timeout=0.5)
            except OSError as exc:
                last = str(exc)
                time.sleep(0.1)
                continue
            if rcode == 0 and ancount >= 1:
                return
            raise BenchError(f"{self.name} answered {PROBE_NAME} A with rcode {rcode} and "
                             f"{ancount} answers (want NOERROR with an answer)")
        raise BenchError(f"{self.name} did not answer {PROBE_NAME} A on 127.0.0.1:{self.port} "
                         f"within {timeout:.0f} s ({last}); its log:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died during the run (status {self.proc.returncode});"
                             f" its log:\n{self.log_tail()}")
        try:
            rcode, ancount = query_udp(self.port, PROBE_NAME, 1, timeout=2.0)
        except OSError as exc:
            raise BenchError(f"{self.name} stopped answering: {exc}") from None
        if rcode != 0 or ancount < 1:
            raise BenchError(f"{self.name} answers rcode {rcode} / {ancount} answers now")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:]) or "    (empty)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # NSD's helpers (xfrd, server children) can outlive the main process briefly.
        _signal_group(self.proc.pid, signal.SIGKILL)
        self._log_file.close()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_nsd(port: int, cpu: int, workdir: Path) -> Server:
    nsd_dir = workdir / "nsd"
    (nsd_dir / "xfr").mkdir(parents=True)
    shutil.copy(ZONE_FILE, nsd_dir / ZONE_FILE.name)
    conf = nsd_dir / "nsd.conf"
    conf.write_text(NSD_CONF.format(port=port, dir=nsd_dir, zone=ZONE, zonefile=ZONE_FILE.name))
    check = subprocess.run(["nsd-checkconf", str(conf)], capture_output=True, text=True,
                           timeout=30)
    if check.returncode != 0:
        raise BenchError(f"nsd-checkconf rejects the generated config: {check.stderr.strip()}")
    return Server("NSD", ["nsd", "-d", "-c", str(conf)], cpu, port, nsd_dir / "stdout.log",
                  nsd_dir)


def start_edgedns(port: int, cpu: int, workdir: Path) -> Server:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "edgedns", "serve", "-c", str(EDGEDNS_CONFIG),
            "--listen", f"127.0.0.1:{port}", "--log-level", "warning"]
    return Server("edgedns", argv, cpu, port, workdir / "edgedns.log", REPO, env)


def free_port() -> int:
    """A port free on both UDP and TCP at 127.0.0.1 (both servers bind both)."""
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


# --------------------------------------------------------------------------- DNS probe


def query_udp(port: int, name: str, qtype: int, timeout: float) -> tuple[int, int]:
    """Send one query to 127.0.0.1:`port`; return (rcode, ANCOUNT). Raises OSError."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
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


# --------------------------------------------------------------------------- CPU use


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                fields = line.split()
                values = [int(v) for v in fields[1:9]]
                idle = values[3] + values[4]
                out[fields[0]] = (sum(values) - idle, sum(values))
    return out


def busy_since(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    after = cpu_times()
    out = {}
    for cpu, (busy0, total0) in before.items():
        busy1, total1 = after[cpu]
        out[cpu] = round(100.0 * (busy1 - busy0) / max(1, total1 - total0), 1)
    return out


def session_cpu_seconds(sid: int) -> float:
    """User + system CPU seconds used so far by the live processes of session `sid`."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[3]) == sid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


BUSY_WARNINGS: list[float] = []
"""The busiest-core % of each wait for idle CPUs that gave up, and each foreign share."""
FOREIGN_LIMIT = 12.0
"""Server-core busy % above the server's own CPU % that hints at other programs (kernel
packet work not charged to the server accounts for ~5-10 % on an idle machine)."""


def wait_for_quiet(cpus: list[int], max_wait: float, threshold: float = 15.0) -> float:
    """Wait (up to `max_wait` s) until the benchmark's CPUs are idle; return their busiest %."""
    deadline = time.monotonic() + max_wait
    while True:
        before = cpu_times()
        time.sleep(0.5)
        busy = busy_since(before)
        worst = max(busy.get(f"cpu{c}", 0.0) for c in cpus)
        if worst < threshold or time.monotonic() >= deadline:
            if worst >= threshold:
                BUSY_WARNINGS.append(worst)
                log(f"  warning: CPUs not idle before measuring ({worst:.0f}% busy): "
                    "other programs are running; figures will be low and noisy")
            return worst
        time.sleep(0.5)


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
    cpu_busy: dict[str, float] = field(default_factory=dict)
    """Per-core busy % during the run (/proc/stat: any process, and softirq work)."""
    server_cpu_pct: float = 0.0
    """CPU time of the server's processes during the run, in % of one core."""
    client_cpu_pct: float = 0.0
    """CPU time of dnsperf during the run, in % of one core."""
    offered_qps: float | None = None


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def parse_dnsperf(text: str) -> PerfResult:
    def grab(pattern: str) -> str:
        match = re.search(pattern, text)
        if not match:
            raise BenchError(f"cannot find {pattern!r} in dnsperf's output:\n{text}")
        return match.group(1)

    rcodes = {}
    codes = re.search(r"Response codes:\s*(.*)", text)
    if codes:
        for code, count in re.findall(r"([A-Z]+) ([0-9]+) \(", codes.group(1)):
            rcodes[code] = int(count)
    lat = re.search(r"Average Latency \(s\):\s*" + _NUMBER + r".*max " + _NUMBER, text)
    return PerfResult(
        qps=float(grab(r"Queries per second:\s*" + _NUMBER)),
        sent=int(grab(r"Queries sent:\s*([0-9]+)")),
        completed=int(grab(r"Queries completed:\s*([0-9]+)")),
        lost=int(grab(r"Queries lost:\s*([0-9]+)")),
        latency_avg_ms=float(lat.group(1)) * 1000 if lat else float("nan"),
        latency_stddev_ms=float(grab(r"Latency StdDev \(s\):\s*" + _NUMBER)) * 1000
        if "Latency StdDev" in text else float("nan"),
        latency_max_ms=float(lat.group(2)) * 1000 if lat else float("nan"),
        rcodes=rcodes,
    )


class Perf:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def argv(self, port: int, seconds: float | None, rate: float | None,
             passes: int | None = None) -> list[str]:
        a = self.args
        argv = ["taskset", "-c", str(a.client_cpu), "dnsperf", "-s", "127.0.0.1",
                "-p", str(port), "-d", str(QUERY_FILE), "-c", str(a.clients),
                "-T", str(a.threads), "-q", str(a.outstanding), "-t", str(a.timeout)]
        if seconds is not None:
            argv += ["-l", f"{seconds:g}"]
        if passes is not None:
            argv += ["-n", str(passes)]
        if rate is not None:
            argv += ["-Q", str(int(rate))]
        return argv

    def run(self, server: Server, seconds: float | None, rate: float | None = None,
            passes: int | None = None) -> PerfResult:
        argv = self.argv(server.port, seconds, rate, passes)
        limit = (seconds or 30) + self.args.timeout + 15
        before = cpu_times()
        server_before = session_cpu_seconds(server.proc.pid)
        client_before = children_cpu_seconds()
        wall_before = time.monotonic()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=limit,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BenchError(f"dnsperf did not finish within {limit:.0f} s: "
                             f"{' '.join(argv)}") from None
        busy = busy_since(before)
        wall = max(1e-6, time.monotonic() - wall_before)
        server_pct = 100 * (session_cpu_seconds(server.proc.pid) - server_before) / wall
        client_pct = 100 * (children_cpu_seconds() - client_before) / wall
        if done.returncode != 0:
            raise BenchError(f"dnsperf failed (status {done.returncode}): {' '.join(argv)}\n"
                             f"{done.stdout}{done.stderr}")
        result = parse_dnsperf(done.stdout)
        result.cpu_busy = busy
        result.server_cpu_pct = round(server_pct, 1)
        result.client_cpu_pct = round(client_pct, 1)
        result.offered_qps = rate
        return result


# --------------------------------------------------------------------------- measurement


def sustained(result: PerfResult, rate: float) -> bool:
    return result.lost == 0 and result.qps >= SUSTAINED_FRACTION * rate


def zero_loss_search(perf: Perf, server: Server, max_qps: float,
                     args: argparse.Namespace) -> tuple[float, list[dict]]:
    """Bisect -Q rates below 1.05 * max_qps (first probe at 0.75 * max_qps) for the highest
    one carried; returns it (0 when none was) and the probes."""
    lo, hi = 0.0, 1.05 * max_qps
    rate = 0.75 * max_qps
    probes: list[dict] = []
    for _ in range(args.probes):
        wait_for_quiet([args.server_cpu, args.client_cpu], min(5.0, args.quiet_wait))
        result = perf.run(server, args.probe_seconds, rate)
        ok = sustained(result, rate)
        probes.append({"offered_qps": round(rate), "qps": round(result.qps), "lost": result.lost,
                       "latency_avg_ms": result.latency_avg_ms, "ok": ok})
        log(f"  -Q {rate:9.0f}: {result.qps:9.0f} qps, {result.lost} lost, avg latency "
            f"{result.latency_avg_ms:.3f} ms -> {'carried' if ok else 'not carried'}")
        if ok:
            lo = rate
        else:
            hi = rate
        rate = (lo + hi) / 2 if lo else hi / 2
        server.check_alive()
    return lo, probes


def zero_loss_latency(r: dict) -> float:
    carried = [p for p in r["probes"] if p["ok"] and p["offered_qps"] == r["zero_loss_qps"]]
    return carried[-1]["latency_avg_ms"] if carried else float("nan")


def measure(name: str, server: Server, perf: Perf, args: argparse.Namespace) -> dict:
    log(f"{name}: waiting for it to answer on 127.0.0.1:{server.port}")
    server.wait_ready(args.start_timeout)
    log(f"{name}: warm-up (one pass over {QUERY_FILE.name})")
    perf.run(server, None, passes=1)
    server.check_alive()
    idle = wait_for_quiet([args.server_cpu, args.client_cpu], args.quiet_wait)
    log(f"{name}: max qps, {args.seconds:g} s unthrottled")
    best = perf.run(server, args.seconds)
    server.check_alive()
    log(f"  {best.qps:.0f} qps, {best.lost} lost, avg latency {best.latency_avg_ms:.3f} ms, "
        f"CPU: server {best.server_cpu_pct:.0f}%, dnsperf {best.client_cpu_pct:.0f}%; "
        f"cores busy: cpu{args.server_cpu} {best.cpu_busy.get(f'cpu{args.server_cpu}')}%, "
        f"cpu{args.client_cpu} {best.cpu_busy.get(f'cpu{args.client_cpu}')}%")
    foreign = best.cpu_busy.get(f"cpu{args.server_cpu}", 0.0) - best.server_cpu_pct
    if foreign > FOREIGN_LIMIT:
        BUSY_WARNINGS.append(foreign)
        log(f"  warning: the server core was {foreign:.0f}% busy with work other than the "
            "server's own process: other programs shared it")
    log(f"{name}: zero-loss search, {args.probes} x {args.probe_seconds:g} s")
    zero_loss, probes = zero_loss_search(perf, server, best.qps, args)
    return {"max": asdict(best), "qps_per_cpu_s": round(per_cpu_second(best)),
            "zero_loss_qps": round(zero_loss),
            "zero_loss_capped": bool(probes) and all(p["ok"] for p in probes),
            "probes": probes, "busy_before_pct": idle}


def per_cpu_second(result: PerfResult) -> float:
    """Replies per second of the server's own CPU time: its efficiency, which holds up when
    other programs steal part of its core or the client cannot saturate it."""
    return result.qps / max(0.01, result.server_cpu_pct / 100)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def report(results: dict, args: argparse.Namespace) -> str:
    nsd, ed = results["servers"]["nsd"], results["servers"]["edgedns"]
    sc, cc = f"cpu{args.server_cpu}", f"cpu{args.client_cpu}"
    rows = [
        ("max qps", lambda r: f"{r['max']['qps']:.0f}", True),
        ("  lost", lambda r: f"{r['max']['lost']} / {r['max']['sent']}", False),
        ("  avg latency ms", lambda r: f"{r['max']['latency_avg_ms']:.3f}", True),
        ("  max latency ms", lambda r: f"{r['max']['latency_max_ms']:.3f}", True),
        ("  server process CPU %", lambda r: f"{r['max']['server_cpu_pct']:.0f}", False),
        ("  qps per server CPU-s", lambda r: f"{r['qps_per_cpu_s']}", True),
        ("  dnsperf CPU %", lambda r: f"{r['max']['client_cpu_pct']:.0f}", False),
        (f"  {sc} (server) busy %", lambda r: f"{r['max']['cpu_busy'].get(sc, 0):.0f}", False),
        (f"  {cc} (client) busy %", lambda r: f"{r['max']['cpu_busy'].get(cc, 0):.0f}", False),
        ("zero-loss qps",
         lambda r: f"{r['zero_loss_qps']}{'+' if r.get('zero_loss_capped') else ''}", True),
        ("  avg latency ms", lambda r: f"{zero_loss_latency(r):.3f}", True),
    ]
    width = 22
    out = [f"{'':{width}} {'NSD':>12} {'edgedns':>12} {'edgedns/NSD':>12}"]
    for label, fmt, with_ratio in rows:
        a, b = fmt(nsd), fmt(ed)
        r = ""
        if with_ratio:
            try:
                r = ratio(float(b.rstrip("+")), float(a.rstrip("+")))
            except ValueError:
                r = ""
        out.append(f"{label:{width}} {a:>12} {b:>12} {r:>12}")
    return "\n".join(out)


def rcode_mismatch(results: dict) -> str | None:
    shares = {}
    for name, r in results["servers"].items():
        codes = r["max"]["rcodes"]
        total = sum(codes.values()) or 1
        shares[name] = {k: v / total for k, v in codes.items()}
    keys = set(shares["nsd"]) | set(shares["edgedns"])
    for k in sorted(keys):
        a, b = shares["nsd"].get(k, 0.0), shares["edgedns"].get(k, 0.0)
        if abs(a - b) > 0.01:
            return f"{k}: NSD {a:.1%} vs edgedns {b:.1%}"
    return None


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0,
                   help="length of each unthrottled max-qps run (default 10)")
    p.add_argument("--probe-seconds", type=float, default=3.0,
                   help="length of each -Q run of the zero-loss search (default 3)")
    p.add_argument("--probes", type=int, default=5,
                   help="-Q runs in the zero-loss search, per server (default 5)")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c (default 8)")
    p.add_argument("--threads", type=int, default=1, help="dnsperf -T (default 1)")
    p.add_argument("--outstanding", type=int, default=500,
                   help="dnsperf -q, queries in flight at most (default 500)")
    p.add_argument("--timeout", type=float, default=2.0,
                   help="dnsperf -t, seconds before a query counts as lost (default 2)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU for the server (default 0)")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU for dnsperf (default 1)")
    p.add_argument("--start-timeout", type=float, default=30.0,
                   help="seconds a server may take to answer its first query (default 30)")
    p.add_argument("--quiet-wait", type=float, default=10.0,
                   help="seconds to wait for idle CPUs before each max-qps run (default 10; "
                        "5 at most before each -Q probe)")
    p.add_argument("--only", choices=("nsd", "edgedns"),
                   help="measure one server only (no ratio)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.probe_seconds <= 0 or args.probes < 0:
        p.error("--seconds and --probe-seconds must be positive, --probes at least 0")
    return args


def preflight(args: argparse.Namespace) -> None:
    needed = ["taskset", "dnsperf"]
    if args.only != "edgedns":
        needed += ["nsd", "nsd-checkconf"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y nsd dnsperf "
                         "util-linux")
    cpus = os.sched_getaffinity(0)
    for cpu in (args.server_cpu, args.client_cpu):
        if cpu not in cpus:
            raise BenchError(f"CPU {cpu} is not available (have {sorted(cpus)}); "
                             "use --server-cpu / --client-cpu")
    if args.server_cpu == args.client_cpu:
        log("warning: server and dnsperf share one CPU; figures measure both together")
    for path in (ZONE_FILE, EDGEDNS_CONFIG, QUERY_FILE):
        if not path.is_file():
            raise BenchError(f"{path} is missing (bench/gen_data.py writes the data files)")


def tool_versions() -> dict[str, str]:
    out = {}
    for name, argv in (("nsd", ["nsd", "-v"]), ("dnsperf", ["dnsperf", "-h"])):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"[Vv]ersion ([0-9][0-9.]*)", done.stdout + done.stderr)
        if match:
            out[name] = match.group(1)
    return out


def run(args: argparse.Namespace) -> int:
    preflight(args)
    perf = Perf(args)
    results: dict = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                 "kernel": platform.release(), "python": platform.python_version()},
        "tools": tool_versions(),
        "dnsperf": " ".join(perf.argv(0, args.seconds, None)[3:]).replace("-p 0 ", ""),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "servers": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgedns-bench-") as tmp:
        workdir = Path(tmp)
        plan = [("nsd", start_nsd), ("edgedns", start_edgedns)]
        for key, start in plan:
            if args.only and key != args.only:
                continue
            server = start(free_port(), args.server_cpu, workdir)
            try:
                results["servers"][key] = measure(server.name, server, perf, args)
            finally:
                server.stop()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["busy_warnings"] = len(BUSY_WARNINGS)

    servers = results["servers"]
    if len(servers) == 2:
        nsd, ed = servers["nsd"], servers["edgedns"]
        results["ratio"] = {
            "max_qps": round(ed["max"]["qps"] / nsd["max"]["qps"], 4),
            "qps_per_cpu_s": round(ed["qps_per_cpu_s"] / nsd["qps_per_cpu_s"], 4),
            "zero_loss_qps": round(ed["zero_loss_qps"] / nsd["zero_loss_qps"], 4)
            if nsd["zero_loss_qps"] else None,
        }
        print()
        print(report(results, args))
        if any(r.get("zero_loss_capped") for r in servers.values()):
            print("+ every -Q probe was carried: the real limit lies above the search range "
                  "(1.05 x max qps),\n  which the load generator set")
        mismatch = rcode_mismatch(results)
        if mismatch:
            print(f"\nwarning: the servers' rcode mix differs ({mismatch}): "
                  "they do not answer the same")
    else:
        for key, r in servers.items():
            print(f"\n{key}: max {r['max']['qps']:.0f} qps ({r['max']['lost']} lost, "
                  f"avg latency {r['max']['latency_avg_ms']:.3f} ms), "
                  f"zero-loss {r['zero_loss_qps']} qps")
    if BUSY_WARNINGS:
        print(f"\nwarning: other programs kept the CPUs busy around {len(BUSY_WARNINGS)} "
              "measurement(s); these figures are low and noisy: rerun on an idle machine")
    print(f"\n{results['dnsperf']}; {results['elapsed_s']} s in all")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
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
        print("interrupted; servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
