"""The server raises its soft open-files limit to the hard limit at start."""

from __future__ import annotations

import resource
import subprocess
import sys

from tests.support import REPO


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    code = ("import resource; from edgedns.server.limits import raise_open_files; "
            "print(raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, preexec_fn=lower,
                          capture_output=True, text=True, timeout=30, check=True)
    reported, in_force = map(int, done.stdout.split())
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert reported == in_force == want
