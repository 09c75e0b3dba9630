"""A reload that changes a dead member's check never serves it, whichever check types it
moves between: the member keeps its DOWN state until the new check's first verdict. The
dead member is a real host in a network namespace that answers nothing: ICMP silenced, no
listener (TCP and HTTP connects are refused). The pool answers NODATA while it is down."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from edgedns.dns import names
from tests import netns
from tests.conftest import needs_root
from tests.server.test_reload import config_path, write

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` command"),
]

netns_lab = netns.netns_lab  # the fixture

CHECKS = {"icmp": "type: icmp", "tcp": "type: tcp, port: 8080", "http": "type: http, port: 80"}
POOL = names.from_text("app.example.lan.")


def config(check: str, member: str) -> str:
    return f"""\
admin: 127.0.0.1:0
reload_interval: 0
zones:
  example.lan:
    records:
      www: {{A: 192.0.2.1}}
    pools:
      app:
        when_all_down: nodata
        check: {{{check}, interval: 500ms, timeout: 100ms, fall: 2}}
        members: [{member}]
"""


@pytest.mark.parametrize(("before", "after"), [
    (a, b) for a in CHECKS for b in CHECKS if a != b])
def test_a_dead_member_stays_out_when_its_check_type_changes(edgedns_server, netns_lab,
                                                             before, after):
    lab = netns_lab(1)
    (dead,) = lab.hosts
    lab.silence_icmp(dead)
    srv = edgedns_server(config(CHECKS[before], dead.address))
    deadline = time.monotonic() + 5
    while not srv.server.pools.all_probed() or any(
            h.up for h in srv.server.pools.health.values()):
        assert time.monotonic() < deadline, "the dead member was not found down within 5 s"
        time.sleep(0.02)

    write(config_path(srv), config(CHECKS[after], dead.address))

    async def reload_and_answer() -> tuple[bool, bool]:
        ok = await srv.server.reload("test")
        # In the same event-loop turn as the swap: before the new check's first verdict.
        return ok, srv.server.pools.selection(POOL, 4).nodata

    ok, nodata = asyncio.run_coroutine_threadsafe(reload_and_answer(), srv.loop).result(10)
    assert ok
    assert nodata, "the dead member was served right after the reload"
    ended = time.monotonic() + 1.0  # and through the new check's first verdicts
    while time.monotonic() < ended:
        assert srv.query("app.example.lan").answer == []
        time.sleep(0.05)
    assert srv.server.icmp.versions == ({4} if after == "icmp" else set())
