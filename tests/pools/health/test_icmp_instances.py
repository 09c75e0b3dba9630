"""Two edgedns instances that are both PID 1 (each in its own PID namespace, as containers
on the host network are) probe the same hosts over ICMP. The old identifier was the PID, so
each took the other's replies as its own. Now each socket's identifier is random and a
kernel filter passes it only its own replies: neither instance sees one of the other's."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.metrics import scrape
from tests.support import REPO, free_port

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="PID namespaces and raw ICMP need root"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare"),
]

TARGETS = [f"127.0.8.{i}" for i in range(1, 21)]




def test_two_pid_1_instances_never_see_each_others_replies(tmp_path: Path) -> None:
    instances = []
    try:
        for n in range(2):
            admin = free_port()
            config = tmp_path / f"edgedns-{n}.yaml"
            config.write_text(f"""\
admin: 127.0.0.1:{admin}
zones:
  pool.lan:
    records:
      ns1: {{A: 127.0.0.1}}
    pools:
      app:
        check: {{interval: 300ms, timeout: 300ms}}  # no late reply, even on a busy machine
        members: [{", ".join(TARGETS)}]
""")
            log = (tmp_path / f"edgedns-{n}.log").open("wb")
            proc = subprocess.Popen(
                ["unshare", "--pid", "--kill-child=SIGTERM", "--mount-proc", sys.executable, "-c",
                 "import os, sys; print(os.getpid(), flush=True); from edgedns.cli import "
                 "main; sys.argv = ['edgedns', 'serve', '-c', sys.argv[1], '--listen', "
                 "sys.argv[2]]; main()", str(config), f"127.0.0.1:{free_port()}"],
                cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
            instances.append((proc, admin, log))
        pids = [proc.stdout.readline().strip() for proc, _, _ in instances]
        assert pids == ["1", "1"]
        deadline = time.monotonic() + 10
        while True:
            try:
                seen = [scrape(admin) for _, admin, _ in instances]
                if all(m["edgedns_probes_total"] >= 3 * len(TARGETS) for m in seen):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the instances did not probe within 10 s"
            time.sleep(0.2)
        for m in seen:
            assert m["edgedns_pool_healthy_members"] == len(TARGETS), m
            assert m["edgedns_icmp_replies_unmatched_total"] == 0, m
            assert m["edgedns_icmp_replies_foreign_total"] == 0, m
    finally:
        for proc, _, log in instances:
            # To the whole group: unshare passes no SIGTERM on to its child.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            log.close()
