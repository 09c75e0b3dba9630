"""Draining a member without editing YAML: `edgedns drain` / `undrain` (and POST /drain,
/undrain on the admin endpoint). A drained member leaves answers with the next query, is
still probed, shows in /status, the table and metrics, and stays drained across a reload
and a restart (the state file in `state_dir`)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest
from click.testing import CliRunner

from edgedns import config as config_mod
from edgedns.cli import main
from tests.conftest import RunningServer
from tests.support import wait_until

TOKEN = "s3cret-token-0123456789"


def config_text(state_dir: Path, token: bool = False) -> str:
    admin = f"{{listen: 127.0.0.1:0, token: {TOKEN}}}" if token else "127.0.0.1:0"
    return f"""\
admin: {admin}
state_dir: {state_dir}
zones:
  site.lan:
    pools:
      web:
        check: {{type: none}}
        members: [10.0.0.1, 10.0.0.2]
"""


def answered(srv: RunningServer) -> list[str]:
    reply: dns.message.Message = srv.query("web.site.lan", "A")
    return sorted(rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
                  for rd in rrset)


def cli(srv: RunningServer, *args: str, token: str | None = None):
    extra = ["--token", token] if token else []
    return CliRunner().invoke(main, [*args[:1], "--admin",
                                     f"127.0.0.1:{srv.server.admin_port}", *extra, *args[1:]])


def test_drain_takes_a_member_out_of_answers_at_once_and_undrain_brings_it_back(
        edgedns_server, tmp_path) -> None:
    srv = edgedns_server(config_text(tmp_path / "state"))
    assert answered(srv) == ["10.0.0.1", "10.0.0.2"]
    result = cli(srv, "drain", "web.site.lan", "10.0.0.2")
    assert result.exit_code == 0, result.output
    assert result.stdout == "10.0.0.2 in web.site.lan: drained\n"
    assert answered(srv) == ["10.0.0.1"]  # the very next query
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{srv.server.admin_port}/metrics",
                                     timeout=5).read().decode()
    assert 'edgedns_member_drained{member="10.0.0.2",pool="web.site.lan."} 1.0' in metrics
    assert 'edgedns_member_drained{member="10.0.0.1",pool="web.site.lan."} 0.0' in metrics
    table = cli(srv, "status").stdout
    assert any(line.strip().startswith("10.0.0.2") and line.endswith("DRAINED")
               for line in table.splitlines())
    result = cli(srv, "undrain", "web.site.lan.", "10.0.0.2")
    assert result.exit_code == 0 and result.stdout == "10.0.0.2 in web.site.lan.: not drained\n"
    assert answered(srv) == ["10.0.0.1", "10.0.0.2"]


def test_a_drain_survives_a_reload_and_a_restart(edgedns_server, tmp_path) -> None:
    state = tmp_path / "state"
    srv = edgedns_server(config_text(state))
    assert cli(srv, "drain", "web.site.lan", "10.0.0.1").exit_code == 0
    assert asyncio.run_coroutine_threadsafe(srv.server.reload("test"), srv.loop).result(10)
    assert answered(srv) == ["10.0.0.2"]
    status = json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{srv.server.admin_port}/status", timeout=5).read())
    assert [m["drained"] for m in status["pools"][0]["members"]] == [True, False]
    srv.stop()
    restarted = RunningServer(config_mod.load(srv.server.config.source, ("127.0.0.1:0",)))
    try:
        assert answered(restarted) == ["10.0.0.2"]
    finally:
        restarted.stop()
    assert json.loads((state / "drained.json").read_text()) == {"web.site.lan.": ["10.0.0.1"]}


def test_an_unknown_pool_or_member_is_a_404_saying_which(edgedns_server, tmp_path) -> None:
    srv = edgedns_server(config_text(tmp_path / "state"))
    result = cli(srv, "drain", "web.site.lan", "10.0.0.9")
    assert result.exit_code == 2
    assert "answered 404 Not Found: 10.0.0.9 is no member of web.site.lan." in result.stderr
    result = cli(srv, "drain", "nope.site.lan", "10.0.0.1")
    assert "no pool nope.site.lan." in result.stderr


def test_drain_needs_the_token_when_one_is_set(edgedns_server, tmp_path) -> None:
    srv = edgedns_server(config_text(tmp_path / "state", token=True))
    assert cli(srv, "drain", "web.site.lan", "10.0.0.2").exit_code == 2
    assert answered(srv) == ["10.0.0.1", "10.0.0.2"]
    assert cli(srv, "drain", "web.site.lan", "10.0.0.2", token=TOKEN).exit_code == 0
    assert answered(srv) == ["10.0.0.1"]


def test_drain_is_a_post(edgedns_server, tmp_path) -> None:
    srv = edgedns_server(config_text(tmp_path / "state"))
    url = (f"http://127.0.0.1:{srv.server.admin_port}/drain?pool=web.site.lan"
           "&member=10.0.0.2")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=5)  # a GET
    assert info.value.code == 405
    assert answered(srv) == ["10.0.0.1", "10.0.0.2"]


def test_a_drained_member_shows_drained_in_its_strips(edgedns_server, tmp_path) -> None:
    live = socket.create_server(("127.0.0.1", 0))
    srv = edgedns_server(config_text(tmp_path / "state").replace(
        "{type: none}", f"{{type: tcp, port: {live.getsockname()[1]}, interval: 200ms}}")
        .replace("[10.0.0.1, 10.0.0.2]", "[127.0.0.1]"))
    try:
        wait_until(srv.server.pools.all_probed)
        assert cli(srv, "drain", "web.site.lan", "127.0.0.1").exit_code == 0
        time.sleep(1.1)  # /status is rebuilt at most once a second
        member = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{srv.server.admin_port}/status", timeout=5).read()
        )["pools"][0]["members"][0]
        assert member["drained"] and member["up"]  # still probed, and healthy
        assert member["heartbeat"][-1] == "r" and member["heartbeat_hour"][-1] == "r"
    finally:
        live.close()
