"""Hooks (`notify: {command, url}`): events for member and pool changes, drains and reloads
reach a real command (JSON on stdin, EDGEDNS_* variables) and a real HTTP endpoint; a hook
that hangs never delays an answer, and a storm of events keeps the queue bounded and says
what it dropped."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgedns import config as config_mod
from edgedns.server import hooks
from tests.support import wait_until


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hook.py"
    path.write_text(f"#!{sys.executable}\n" + body)
    path.chmod(0o755)
    return path


RECORDER = """\
import json, os, sys
event = json.load(sys.stdin)
event["env_event"] = os.environ["EDGEDNS_EVENT"]
with open(sys.argv[0] + ".log", "a") as out:
    out.write(json.dumps(event) + "\\n")
"""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[dict]]]:
    """An HTTP endpoint on 127.0.0.1 keeping every JSON body POSTed to it."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", got
    server.shutdown()
    server.server_close()


def pool_config(port: int, notify: str) -> str:
    return f"""\
reload_interval: 0
notify: {notify}
zones:
  site.lan:
    records:
      www: {{A: 192.0.2.1}}
    pools:
      web:
        check: {{type: tcp, port: {port}, interval: 100ms, timeout: 100ms, fall: 1, rise: 1}}
        members: [127.0.0.1]
"""


def recorded(hook: Path) -> list[dict]:
    log = Path(str(hook) + ".log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_member_and_its_pool_going_down_reach_the_command_and_the_url(
        edgedns_server, tmp_path, collector) -> None:
    url, posted = collector
    hook = script(tmp_path, RECORDER)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    srv = edgedns_server(pool_config(port, f"{{command: {hook}, url: '{url}'}}"))
    wait_until(srv.server.pools.all_probed)
    listener.close()  # the only member dies: the pool is down

    def events(got: list[dict]) -> list[str]:
        return [e["event"] for e in got]

    wait_until(lambda: events(posted) == ["member_down", "pool_down"], within=5)
    wait_until(lambda: events(recorded(hook)) == ["member_down", "pool_down"], within=5)
    down, pool_down = recorded(hook)
    assert (down["pool"], down["member"], down["env_event"]) == (
        "web.site.lan.", "127.0.0.1", "member_down")
    assert down["check"] == f"tcp 127.0.0.1:{port}" and down["reason"]
    assert (pool_down["healthy"], pool_down["members"]) == (0, 1)
    assert posted[0] == {k: v for k, v in down.items() if k != "env_event"}


def test_drains_and_reloads_are_events_too(edgedns_server, tmp_path, collector) -> None:
    url, posted = collector
    srv = edgedns_server(f"""\
reload_interval: 0
notify: {{url: '{url}'}}
zones:
  site.lan:
    pools:
      web: {{check: {{type: none}}, members: [10.0.0.1, 10.0.0.2]}}
""")

    def on_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, srv.loop).result(10)

    async def drain() -> None:
        srv.server.drain_member("web.site.lan", "10.0.0.2", True)

    on_loop(drain())
    assert on_loop(srv.server.reload("test"))
    srv.server.config.source.write_text("zones: {site.lan: {colour: blue}}\n")
    assert not on_loop(srv.server.reload("test"))
    wait_until(lambda: len(posted) == 3, within=5)
    assert [e["event"] for e in posted] == ["member_drained", "reload_applied",
                                            "reload_refused"]
    assert posted[0]["member"] == "10.0.0.2"
    assert "colour: unknown key" in posted[2]["error"]


def test_a_hanging_hook_never_delays_answers_and_a_storm_is_bounded(
        edgedns_server, tmp_path) -> None:
    hook = script(tmp_path, "import time\ntime.sleep(60)\n")
    srv = edgedns_server(f"""\
reload_interval: 0
notify: {{command: {hook}}}
zones:
  site.lan:
    records:
      www: {{A: 192.0.2.1}}
    pools:
      web: {{check: {{type: none}}, members: [10.0.0.1]}}
""")

    async def storm() -> None:
        for i in range(1_200):  # 1,200 events, one after the other
            srv.server.drain_member("web.site.lan", "10.0.0.1", i % 2 == 0)

    asyncio.run_coroutine_threadsafe(storm(), srv.loop).result(30)
    started = time.monotonic()
    assert srv.query("www.site.lan").answer
    assert time.monotonic() - started < 0.5
    hooks_ = srv.server.hooks
    assert hooks_.queue.qsize() <= hooks.QUEUE
    assert hooks_.dropped >= 1_200 - hooks.QUEUE - 1  # one may be in the hanging command


@pytest.mark.parametrize(("notify", "path", "message"), [
    ("{}", "notify", "give a command, a url, or both"),
    ("{url: 'ftp://x'}", "notify.url", "'ftp://x': must be an http:// or https:// URL"),
    ("{command: /bin/true, mail: x}", "notify.mail", "unknown key"),
])
def test_bad_notify_settings_are_refused_at_their_key(tmp_path, notify, path, message) -> None:
    config = tmp_path / "edgedns.yaml"
    config.write_text(f"notify: {notify}\nzones: {{site.lan: {{}}}}\n")
    with pytest.raises(config_mod.ConfigError) as info:
        config_mod.load(config)
    assert info.value.path == path and info.value.message.startswith(message)


def test_a_relative_command_is_relative_to_the_config(tmp_path) -> None:
    config = tmp_path / "edgedns.yaml"
    config.write_text("notify: {command: ./hooks/on-change}\nzones: {site.lan: {}}\n")
    assert config_mod.load(config).notify.command == str(tmp_path / "hooks" / "on-change")
