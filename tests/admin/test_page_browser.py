"""The status page in a real browser (Debian's headless Chromium): it draws what /status
says, as a person would see it, and a member that goes down shows as DOWN, on an open page
within 2 s of the decision. A screenshot of each run is kept next to the test's files."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.admin.browser import Browser
from tests.support import wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="needs Debian's chromium (apt-get install chromium)")


def browse(url: str, profile: Path, *, screenshot: Path | None = None) -> str:
    """The page's DOM after its script ran (or a screenshot of it), as headless Chromium
    sees it. --no-sandbox: CI runs as root, where Chromium's sandbox will not start."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000", "--window-size=420,900"]
    argv += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_page_shows_pools_and_members_and_a_member_going_down(edgedns_server,
                                                                   tmp_path) -> None:
    live = socket.create_server(("127.0.0.2", 0))
    port = live.getsockname()[1]
    srv = edgedns_server(f"""\
zones:
  site.lan:
    records:
      www: {{A: 192.0.2.1}}
    pools:
      web:
        check: {{type: tcp, port: {port}, interval: 200ms}}
        members: [127.0.0.2, 127.0.0.3]
""")
    wait_until(srv.server.pools.all_probed)
    srv.query("www.site.lan")  # something in the query table
    url = f"http://127.0.0.1:{srv.server.admin_port}/"
    profile = tmp_path / "chromium"
    dom = browse(url, profile)
    assert "web.site.lan.  1/2 healthy" in dom
    assert "answering: 127.0.0.2" in dom
    assert "reloads: 0 applied, 0 refused" in dom
    # Two polls within the page's time: the query table shows a rate per second.
    assert re.search(r"<td>site\.lan\.</td><td>NOERROR</td><td>\d+</td><td>\d+\.\d</td>",
                     dom), dom.split("Queries answered")[1][:400]
    assert '<td>127.0.0.2</td><td><span class="up">UP</span></td>' in dom
    assert '<td>127.0.0.3</td><td><span class="down">DOWN</span></td>' in dom
    browse(url, profile, screenshot=tmp_path / "status-page.png")
    assert (tmp_path / "status-page.png").stat().st_size > 10_000

    live.close()  # the last healthy member dies
    wait_until(lambda: not any(h.up for h in srv.server.pools.health.values()), within=5)
    decided = time.monotonic()
    dom = browse(url, profile)
    assert time.monotonic() - decided < 5  # a fresh look
    assert "web.site.lan.  0/2 healthy" in dom
    assert '<td>127.0.0.2</td><td><span class="down">DOWN</span></td>' in dom
    # The change is in the log, and the member's strip ends red.
    assert '<i class="d"></i></span>' in dom
    changes = dom.split("Health changes", 1)[1].split("Queries answered", 1)[0]
    assert "127.0.0.2" in changes and ">DOWN<" in changes
    browse(url, profile, screenshot=tmp_path / "status-page-down.png")


def test_an_open_page_shows_a_member_going_down_within_two_seconds(edgedns_server,
                                                                    tmp_path) -> None:
    live = socket.create_server(("127.0.0.2", 0))
    srv = edgedns_server(f"""\
zones:
  site.lan:
    pools:
      web:
        check: {{type: tcp, port: {live.getsockname()[1]}, interval: 200ms}}
        members: [127.0.0.2]
""")
    wait_until(srv.server.pools.all_probed)
    with Browser(CHROMIUM or "", tmp_path / "chromium") as browser:
        browser.open(f"http://127.0.0.1:{srv.server.admin_port}/")
        wait_until(lambda: re.search(r"web\.site\.lan\.\s+1/1 healthy", browser.text()),
                   within=10)
        live.close()
        wait_until(lambda: not srv.server.pools.health[
            next(iter(srv.server.pools.health))].up, within=5, step=0.005)
        decided = time.monotonic()
        shown = wait_until(lambda: re.search(r"web\.site\.lan\.\s+0/1 healthy",
                                             browser.text()), within=5, step=0.05)
        assert shown < 2.0, f"the open page showed it {shown:.2f} s after the decision"
        assert re.search(r"127\.0\.0\.2\s+DOWN", browser.text())
        assert time.monotonic() - decided < 5
        browser.screenshot(tmp_path / "status-page-live.png")
    assert (tmp_path / "status-page-live.png").stat().st_size > 10_000
