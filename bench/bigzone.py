#!/usr/bin/env python3
"""A big zone: how long checking and starting take, and the memory it costs, beside NSD.

Needs Python 3.10+, Debian's nsd and GNU time; only the standard library here (edgedns
runs with --python, default this interpreter). All traffic goes to 127.0.0.1.

    python3 bench/bigzone.py [--records 1000000] [--python .venv/bin/python] [--json FILE]

A master file of --records A records (`h<i> A 10.x.y.z`, plus SOA, NS and the NS's address)
is generated once into a temp dir. Then, each measured --repeats times (the median is shown):
- check: `nsd-checkzone` against `edgedns check -c` on a config serving that file: wall time
  and peak RSS of the command (getrusage of the child);
- start: `nsd -d` against `edgedns serve`: wall time from the start until `h<last> A` is
  answered, and the server's RSS once it answers (NSD: its largest process, the one serving;
  its processes share most of that memory).
The promises: edgedns within 5 x NSD's time and 3 x NSD's RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def write_zone(path: Path, apex: str, records: int) -> None:
    with path.open("w") as out:
        out.write(f"$ORIGIN {apex}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n"
                  "@ NS ns1\nns1 A 192.0.2.53\n")
        for i in range(records):
            out.write(f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")


def timed_command(argv: list[str], limit: float) -> tuple[float, int]:
    """(wall seconds, the command's own peak RSS in KiB, from GNU time) of a command run to
    completion; raises when it fails."""
    start = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True,
                          timeout=limit, env=common.python_env())
    took = time.monotonic() - start
    if done.returncode != 0:
        raise common.BenchError(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return took, int(done.stderr.strip().splitlines()[-1])


def measure_start(name: str, argv: list[str], port: int, last: str, work: Path,
                  limit: float) -> tuple[float, int]:
    start = time.monotonic()
    proc = common.Proc(name, argv, work / f"{name}-{port}.log", cwd=work)
    try:
        common.wait_answer(proc, port, last, timeout=limit)
        took = time.monotonic() - start
        time.sleep(0.5)  # settled: NSD's server child has forked
        return took, max(common.session_rss_kib(proc.pid), default=0)
    finally:
        proc.stop()


def run(args: argparse.Namespace) -> int:
    common.preflight(["nsd", "nsd-checkzone", "time"])
    apex = "big.lan"
    last = f"h{args.records - 1}.{apex}"
    results: dict = {"info": common.run_info(), "records": args.records}
    with tempfile.TemporaryDirectory(prefix="edgedns-bigzone-") as tmp:
        work = Path(tmp)
        zone = work / "big.zone"
        common.log(f"writing {args.records} records to {zone}")
        write_zone(zone, apex, args.records)
        config = work / "big.yaml"
        config.write_text(f"admin: false\nreload_interval: 0\nzones:\n  {apex}:\n"
                          f"    file: {zone}\n")
        rows = {}
        for label, argv in (("nsd check", ["nsd-checkzone", apex, str(zone)]),
                            ("edgedns check", [args.python, "-m", "edgedns", "check", "-c",
                                               str(config)])):
            rows[label] = [timed_command(argv, args.limit) for _ in range(args.repeats)]
        for label, (argv_fn, port) in {
            "nsd start": (lambda port: ["nsd", "-d", "-c", _nsd_conf(work, zone, apex, port)],
                          common.free_port()),
            "edgedns start": (lambda port: [args.python, "-m", "edgedns", "serve", "-c",
                                            str(config), "--listen", f"127.0.0.1:{port}",
                                            "--log-level", "warning"], common.free_port()),
        }.items():
            rows[label] = [measure_start(label.split()[0], argv_fn(port), port, last, work,
                                         args.limit) for _ in range(args.repeats)]
    table = {label: (statistics.median(s[0] for s in samples),
                     statistics.median(s[1] for s in samples)) for label, samples in rows.items()}
    results["median"] = {k: {"seconds": v[0], "rss_kib": v[1]} for k, v in table.items()}
    print(f"\n== bigzone: {args.records} records, edgedns {results['info']['edgedns']}")
    print(f"{'':18}{'seconds':>10}{'RSS MiB':>10}")
    for label, (seconds, rss) in table.items():
        print(f"{label:18}{seconds:10.2f}{rss / 1024:10.0f}")
    for what in ("check", "start"):
        nsd, ours = table[f"nsd {what}"], table[f"edgedns {what}"]
        time_ratio, rss_ratio = ours[0] / nsd[0], ours[1] / nsd[1]
        results[f"{what}_ratios"] = {"time": time_ratio, "rss": rss_ratio}
        verdict = "holds" if time_ratio <= 5 and rss_ratio <= 3 else "FAILS"
        print(f"{what}: edgedns/NSD time {time_ratio:.2f} (promise <= 5), RSS {rss_ratio:.2f} "
              f"(promise <= 3): {verdict}")
    common.write_json(args.json, results)
    return 0


def _nsd_conf(work: Path, zone: Path, apex: str, port: int) -> str:
    nsd_dir = work / f"nsd-{port}"
    (nsd_dir / "xfr").mkdir(parents=True, exist_ok=True)
    conf = common.NSD_CONF.format(port=port, dir=nsd_dir)
    conf += f"zone:\n    name: {apex}\n    zonefile: {zone}\n"
    path = nsd_dir / "nsd.conf"
    path.write_text(conf)
    return str(path)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter edgedns runs with (this one)")
    parser.add_argument("--limit", type=float, default=300.0,
                        help="seconds any one command may take (300)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    args = parser.parse_args()
    if os.sep in args.python:  # the servers run from a temp dir
        args.python = os.path.abspath(args.python)
    return args


if __name__ == "__main__":
    sys.exit(common.main(lambda: run(parse_args())))
