"""Shared fixtures: a real edgedns server on an ephemeral loopback port, queried with dnspython.

`edgedns_server(yaml_text)` writes the config to a temp dir, starts `Server` on
its own event loop in a background thread (port 0: the kernel picks a port free on UDP and
TCP), and returns a `RunningServer` with `.query()` helpers. Servers stop at test teardown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from edgedns import config as config_mod
from edgedns.server.lifecycle import Server
from tests.support import loop_errors

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: builds network namespaces and raw sockets"
)


@pytest.fixture(autouse=True)
def no_unhandled_loop_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test during which an event loop logged an unhandled exception (unless it is
    marked `makes_loop_errors`: the tests of this guard itself)."""
    with loop_errors() as logged:
        yield
    if logged and request.node.get_closest_marker("makes_loop_errors") is None:
        pytest.fail("the event loop logged unhandled exceptions:\n" + "\n".join(logged))


class RunningServer:
    def __init__(self, cfg: config_mod.Config) -> None:
        self.loop = asyncio.new_event_loop()
        if cfg.admin == config_mod.AdminSettings():
            # The default admin port would clash between servers; tests get a free one.
            loopback = config_mod.Endpoint("127.0.0.1", 0)
            cfg = dataclasses.replace(cfg, admin=config_mod.AdminSettings(loopback))
        self.server = Server(cfg, ("127.0.0.1:0",))
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.server.start())
            except BaseException as exc:  # reported to the test thread below
                failure.append(exc)
                started.set()
                return
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.server.stop())
            self.loop.close()

        self.thread = threading.Thread(target=run, name="edgedns-test-server", daemon=True)
        self.thread.start()
        if not started.wait(30):
            raise RuntimeError("server did not start within 30 s")
        if failure:
            raise failure[0]
        endpoint = self.server.bound[0]
        self.host, self.port = endpoint.host, endpoint.port

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def query(
        self,
        qname: str,
        rdtype: str | int = "A",
        *,
        tcp: bool = False,
        timeout: float = 2.0,
        **make_kwargs,
    ) -> dns.message.Message:
        """Send one query made by `dns.message.make_query(qname, rdtype, **make_kwargs)`."""
        make_kwargs.setdefault("use_edns", False)
        q = dns.message.make_query(qname, rdtype, **make_kwargs)
        return self.send(q, tcp=tcp, timeout=timeout)

    def send(
        self, q: dns.message.Message, *, tcp: bool = False, timeout: float = 2.0
    ) -> dns.message.Message:
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, timeout=timeout)
        return dns.query.udp(q, self.host, port=self.port, timeout=timeout, ignore_trailing=True)


@pytest.fixture
def edgedns_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``edgedns_server(yaml_text, files={"name.zone": text})`` → RunningServer."""
    running: list[RunningServer] = []

    def start(yaml_text: str, files: dict[str, str] | None = None) -> RunningServer:
        for name, text in (files or {}).items():
            (tmp_path / name).write_text(textwrap.dedent(text))
        path = tmp_path / "edgedns.yaml"
        text = textwrap.dedent(yaml_text)
        if "admin:" not in text:
            text += "\nadmin: 127.0.0.1:0\n"  # the default port would clash between servers
        if "state_dir:" not in text:
            text += f"\nstate_dir: {tmp_path / 'state'}\n"  # never the machine's own
        path.write_text(text)
        cfg = config_mod.load(path, ("127.0.0.1:0",))
        srv = RunningServer(cfg)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()
