"""Answers keep flowing while the control plane works: reloads of a large config (direct,
by the file watcher, or a storm of SIGHUPs) lose no query, a zone file still being written
never replaces served data, and a reload refused for a missing file succeeds once the file
appears. Every wait is bounded; clients give up on a query after 1 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.support import REPO, free_port, wait_until

RECORDS = 20_000


def big_zone(path: Path, serial: int, address: str, records: int = RECORDS) -> None:
    """A zone of `records` A records plus `www`, written in place (not atomically)."""
    lines = ["$ORIGIN big.lan.", "$TTL 300", f"@ SOA ns1 hostmaster {serial} 3600 600 86400 30",
             "@ NS ns1", "ns1 A 192.0.2.53", f"www A {address}"]
    lines += [f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(records)]
    path.write_text("\n".join(lines) + "\n")


def config(tmp_path: Path, interval: str = "0") -> Path:
    path = tmp_path / "edgedns.yaml"
    path.write_text(f"admin: false\nreload_interval: {interval}\n"
                    "zones:\n  big.lan:\n    file: big.zone\n")
    return path


class Stream:
    """Threads asking names that exist in every version of the zone, counting failures."""

    def __init__(self, port: int, names: list[str], threads: int = 2) -> None:
        self.port = port
        self.names = names
        self.failures: list[str] = []
        self.answered = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, seed: int) -> None:
        i = seed
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            name = self.names[i % len(self.names)]
            i += 1
            query = dns.message.make_query(name, "A", use_edns=False)
            start = time.monotonic()
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=1.0)
            except (dns.exception.DNSException, OSError) as exc:
                self.failures.append(f"{name}: {exc!r}")
                continue
            self.slowest = max(self.slowest, time.monotonic() - start)
            if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
                self.failures.append(f"{name}: {dns.rcode.to_text(reply.rcode())}")
            self.answered += 1


def serve(path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedns", "serve", "-c", str(path), "--listen",
         f"127.0.0.1:{port}", "--log-level", "info"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def answering() -> bool:
        assert proc.poll() is None, proc.stderr.read()
        try:
            q = dns.message.make_query("www.big.lan", "A")
            return bool(dns.query.udp(q, "127.0.0.1", port=port, timeout=0.3).answer)
        except (dns.exception.Timeout, OSError):
            return False

    wait_until(answering, within=60, step=0.1)
    return proc, port


def www(port: int) -> str:
    reply = dns.query.udp(dns.message.make_query("www.big.lan", "A"), "127.0.0.1", port=port,
                          timeout=1.0)
    return reply.answer[0][0].address


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    return err


def test_reloads_of_a_large_config_lose_no_query(tmp_path) -> None:
    big_zone(tmp_path / "big.zone", 1, "192.0.2.1")
    proc, port = serve(config(tmp_path))
    try:
        names = ["www.big.lan", "h17.big.lan", "h19999.big.lan"]
        with Stream(port, names) as stream:
            for generation in range(2, 5):
                big_zone(tmp_path / "big.zone", generation, f"192.0.2.{generation}")
                os.kill(proc.pid, signal.SIGHUP)
                wait_until(lambda g=generation: www(port) == f"192.0.2.{g}", within=30)
            # Enough queries to mean something, however quick the reloads were.
            wait_until(lambda: stream.answered > 100, within=10)
        assert stream.failures == []
    finally:
        log = stop(proc)
    assert log.count("reloaded (SIGHUP)") == 3, log


def test_a_storm_of_sighups_is_coalesced_and_loses_no_query(tmp_path) -> None:
    big_zone(tmp_path / "big.zone", 1, "192.0.2.1")
    proc, port = serve(config(tmp_path))
    try:
        big_zone(tmp_path / "big.zone", 2, "192.0.2.2")
        with Stream(port, ["www.big.lan", "h5.big.lan"]) as stream:
            for _ in range(100):  # 100 SIGHUPs in 2 s, as a looping config tool sends them
                os.kill(proc.pid, signal.SIGHUP)
                time.sleep(0.02)
            wait_until(lambda: www(port) == "192.0.2.2", within=30)
            time.sleep(1.0)
        assert stream.failures == []
    finally:
        log = stop(proc)
    reloads = log.count("reloaded (SIGHUP")
    assert 1 <= reloads < 50, log  # each reload takes a while: most signals join one


def test_a_zone_file_still_being_written_never_replaces_served_data(tmp_path) -> None:
    zone = tmp_path / "big.zone"
    big_zone(zone, 1, "192.0.2.1", records=2_000)
    proc, port = serve(config(tmp_path, interval="300ms"))
    try:
        full = zone.read_text().replace("192.0.2.1", "192.0.2.2").replace(" 1 3600", " 2 3600")
        with Stream(port, ["www.big.lan", "h1999.big.lan"]) as stream:
            # A slow writer: the new version arrives in pieces, 100 ms apart, for 2 s; the
            # served names sit at the end of the file, so a half-read file would lose them.
            with zone.open("w") as out:
                pieces = [full[i:i + len(full) // 20] for i in range(0, len(full),
                                                                     len(full) // 20)]
                for piece in pieces:
                    out.write(piece)
                    out.flush()
                    time.sleep(0.1)
            wait_until(lambda: www(port) == "192.0.2.2", within=5)
        assert stream.failures == []
    finally:
        log = stop(proc)
    assert "refused" not in log, log


def test_a_reload_refused_for_a_missing_file_succeeds_when_it_appears(tmp_path) -> None:
    big_zone(tmp_path / "big.zone", 1, "192.0.2.1", records=10)
    path = config(tmp_path, interval="200ms")
    proc, port = serve(path)
    try:
        path.write_text(path.read_text() + "  later.lan:\n    file: later.zone\n")
        time.sleep(1.0)  # the watcher refuses it: later.zone does not exist yet
        (tmp_path / "later.zone").write_text(
            "$ORIGIN later.lan.\n@ 300 SOA ns1 hostmaster 1 3600 600 86400 30\n"
            "@ 300 NS ns1\nwww 300 A 198.51.100.7\n")

        def later_answers() -> bool:
            q = dns.message.make_query("www.later.lan", "A")
            reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=1.0)
            return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)

        wait_until(later_answers, within=5)
    finally:
        log = stop(proc)
    assert "cannot read" in log and "later.zone" in log, log
