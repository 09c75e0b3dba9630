"""``edgedns status`` against a running server's admin endpoint (click's CliRunner; the server
runs on its own thread). The exit code is the contract monitoring and keepalived rely on:
0 all well, 1 a pool fully down, 2 edgedns cannot be asked or its health engine stalled."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from edgedns.cli import main
from tests.conftest import RunningServer
from tests.support import listener_on, wait_until

TOKEN = "s3cret-token-0123456789"

CONFIG = """\
{head}zones:
  example.lan:
    records:
      www: {{A: 192.0.2.1}}
    pools:
      app:
        check: {{type: tcp, port: {port}, interval: 5s, timeout: 1s}}
        members: [{members}]
"""


@pytest.fixture
def live_port() -> Iterator[int]:
    """A TCP port with a listener on 127.0.0.2 and none on 127.0.0.3 or 127.0.0.4."""
    with listener_on("127.0.0.2", ("127.0.0.3", "127.0.0.4")) as port:
        yield port


def start(edgedns_server, port: int, members: str, head: str = "") -> RunningServer:
    srv = edgedns_server(CONFIG.format(head=head, port=port, members=members))
    wait_until(srv.server.pools.all_probed)
    return srv


def status(srv: RunningServer, *args: str, env: dict | None = None) -> Result:
    url = f"http://127.0.0.1:{srv.server.admin_port}"
    return CliRunner().invoke(main, ["status", "--admin", url, *args], env=env)


def test_table_lists_pools_and_members_with_state_and_reason(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.2, 127.0.0.3")
    result = status(srv)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^pool app\.example\.lan\.\s+1/2 healthy .*\[ok\]$", out, re.M)
    up = next(line for line in out.splitlines() if line.strip().startswith("127.0.0.2"))
    down = next(line for line in out.splitlines() if line.strip().startswith("127.0.0.3"))
    assert " UP " in up and f"tcp 127.0.0.2:{live_port}:" in up and "ms" in up
    assert " DOWN " in down and f"tcp 127.0.0.3:{live_port}: " in down
    assert "refused" in down.lower()  # the probe's reason
    assert "ready" in out.splitlines()[0]


def test_json_prints_the_snapshot(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.2, 127.0.0.3")
    result = status(srv, "--json")
    assert result.exit_code == 0
    snap = json.loads(result.stdout)
    (pool,) = snap["pools"]
    assert pool["name"] == "app.example.lan."
    assert [(m["address"], m["up"]) for m in pool["members"]] == [
        ("127.0.0.2", True), ("127.0.0.3", False)]
    assert snap["zones"][0]["name"] == "example.lan."


def test_exit_0_when_every_pool_has_a_healthy_member(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.2, 127.0.0.3")
    result = status(srv)
    assert result.exit_code == 0
    assert result.stderr == ""


def test_exit_1_when_a_pool_is_fully_down(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.3, 127.0.0.4")
    result = status(srv)
    assert result.exit_code == 1
    assert "[DOWN]" in result.stdout
    assert "fully down: app.example.lan." in result.stderr


def test_exit_1_also_with_json(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.3")
    result = status(srv, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["pools"][0]["healthy"] == 0


def test_exit_2_when_the_admin_endpoint_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        result = CliRunner().invoke(
            main, ["status", "--admin", f"http://127.0.0.1:{port}", "--timeout", "2"])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr
    assert result.stdout == ""


def test_exit_2_without_the_token_it_needs_saying_how_to_give_it(edgedns_server, live_port):
    head = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n"
    srv = start(edgedns_server, live_port, "127.0.0.2", head)
    result = status(srv)
    assert result.exit_code == 2
    assert "answered 401" in result.stderr
    assert "--token T, EDGEDNS_ADMIN_TOKEN, or -c FILE" in result.stderr


def test_a_wrong_token_is_said_to_be_refused(edgedns_server, live_port):
    head = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n"
    srv = start(edgedns_server, live_port, "127.0.0.2", head)
    result = status(srv, "--token", "not-the-token-0123456789")
    assert result.exit_code == 2
    assert "answered 401" in result.stderr and "the token was refused" in result.stderr


def test_admin_accepts_a_bare_address_and_port(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.2")
    result = CliRunner().invoke(
        main, ["status", "--admin", f"127.0.0.1:{srv.server.admin_port}"])
    assert result.exit_code == 0, result.output
    assert "127.0.0.2" in result.stdout


def test_config_option_reads_the_admin_address_and_token(edgedns_server, live_port,
                                                          tmp_path):
    head = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n"
    srv = start(edgedns_server, live_port, "127.0.0.2", head)
    # The file a site would pass: the admin section with the address actually served.
    config = tmp_path / "site.yaml"
    config.write_text(f"admin: {{listen: 127.0.0.1:{srv.server.admin_port}, token: {TOKEN}}}\n"
                      "zones: {example.lan: {records: {www: {A: 192.0.2.1}}}}\n")
    result = CliRunner().invoke(main, ["status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "127.0.0.2" in result.stdout


def test_config_option_with_the_admin_endpoint_off_exits_2(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("admin: false\nzones: {example.lan: {records: {www: {A: 192.0.2.1}}}}\n")
    result = CliRunner().invoke(main, ["status", "-c", str(config)])
    assert result.exit_code == 2
    assert "turns the admin endpoint off" in result.stderr


def test_token_option_is_sent(edgedns_server, live_port):
    head = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n"
    srv = start(edgedns_server, live_port, "127.0.0.2", head)
    result = status(srv, "--token", TOKEN)
    assert result.exit_code == 0, result.output
    assert "127.0.0.2" in result.stdout


def test_token_from_the_environment(edgedns_server, live_port):
    head = f"admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}\n"
    srv = start(edgedns_server, live_port, "127.0.0.2", head)
    result = status(srv, env={"EDGEDNS_ADMIN_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output


def test_table_shows_a_failed_reload(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.2")
    srv.server.config.source.write_text("zones: {example.lan: {colour: blue}}\n")
    ok = asyncio.run_coroutine_threadsafe(srv.server.reload("test"), srv.loop).result(10)
    assert not ok
    result = status(srv)
    assert result.exit_code == 0  # the old config still serves a healthy pool
    assert re.search(r"^LAST RELOAD FAILED at \S+: .*colour: unknown key", result.stdout, re.M)


def test_exit_2_when_the_health_engine_is_stalled(edgedns_server, live_port):
    srv = start(edgedns_server, live_port, "127.0.0.2")
    asyncio.run_coroutine_threadsafe(
        srv.server.supervisor.stop("health-scheduler"), srv.loop).result(5)
    # The check runs every 5 s (+1 s timeout): stalled after 18 s without a result. Rather
    # than wait, put the last result that far back.
    srv.server.scheduler.last_result -= 60
    result = status(srv)
    assert result.exit_code == 2, result.output
    assert re.search(r"^HEALTH ENGINE STALLED: no probe result for \d", result.stdout, re.M)
    assert "health engine stalled" in result.stderr
