"""Zones and shared settings from etcd, against a real three-member etcd cluster
(`tests.etcdlab`) and real ``edgedns serve`` nodes: push, serve, follow changes, refuse bad
documents naming their key, keep serving and restart from the cache while etcd is down,
survive a member's death and a compaction, pull back what was pushed.

Figures (how fast a change reaches every node) belong in bench/; here only that it does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
from click.testing import CliRunner

from edgedns import config as config_mod
from edgedns.cli import main
from edgedns.config.documents import Documents
from edgedns.etcd import source as etcd_source
from edgedns.etcd.client import EtcdClient, EtcdError, EtcdSettings
from tests.etcdlab import ETCD, EtcdCluster
from tests.support import free_port, wait_until

pytestmark = pytest.mark.skipif(ETCD is None, reason="needs etcd (apt-get install etcd-server)")

SITE = """\
forward: {upstreams: ['127.0.0.1:9'], timeout: 1s}
zones:
  site.lan:
    records:
      www: {A: 192.0.2.1}
      "1.10": {TXT: "010"}
  other.lan: {}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path / "etcd") as running:
        yield running


class Node:
    """``edgedns serve`` with a bootstrap file naming the cluster."""

    def __init__(self, work: Path, name: str, endpoints: list[str]) -> None:
        """A node called `name` in the registry too."""
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.port, self.admin = free_port(), free_port()
        self.bootstrap = self.dir / "bootstrap.yaml"
        self.bootstrap.write_text(textwrap.dedent(f"""\
            listen: [127.0.0.1:{self.port}]
            admin: 127.0.0.1:{self.admin}
            state_dir: state
            source: {{etcd: {{node: {name}, endpoints: [{', '.join(endpoints)}]}}}}
            """))
        self.log = self.dir / "log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Node:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgedns", "serve", "-c", str(self.bootstrap)],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        wait_until(lambda: self._admin_up(), within=15)
        return self

    def _admin_up(self) -> bool:
        try:
            self.status()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/status", timeout=5) as r:
            return json.loads(r.read())

    def answer(self, name: str, rdtype: str = "A") -> list[str]:
        reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1",
                              port=self.port, timeout=2)
        return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


def push(cluster: EtcdCluster, tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["push", "-c", str(path), "--etcd",
                                       ",".join(cluster.endpoints)])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_pushed_change_is_served_by_every_node(cluster, nodes, tmp_path) -> None:
    assert push(cluster, tmp_path, SITE).startswith("pushed 2 zones and the shared settings")
    nodes += [Node(tmp_path, f"n{i}", cluster.endpoints).start() for i in range(3)]
    assert all(node.answer("www.site.lan") == ["192.0.2.1"] for node in nodes)
    assert nodes[0].answer("1.10.site.lan", "TXT") == ['"010"']  # written as written
    push(cluster, tmp_path, SITE.replace("192.0.2.1", "192.0.2.2"))
    for node in nodes:
        wait_until(lambda node=node: node.answer("www.site.lan") == ["192.0.2.2"], within=5)
        # other.lan did not change: its zone was reused, and still answers after the swap
        assert node.answer("other.lan", "SOA")[0].startswith("ns1.other.lan. hostmaster.")
    etcd = nodes[1].status()["etcd"]
    assert etcd["connected"] and not etcd["from_cache"]
    assert etcd["serving_revision"] == etcd["watched_revision"]


def test_a_bad_document_is_refused_and_the_old_state_keeps_serving(cluster, nodes,
                                                                    tmp_path) -> None:
    push(cluster, tmp_path, SITE)
    nodes += [Node(tmp_path, f"n{i}", cluster.endpoints).start() for i in range(2)]
    client = EtcdClient(EtcdSettings(tuple(cluster.endpoints)))
    bad = "records: {www: {CNAME: web, A: 192.0.2.9}}"
    asyncio.run(client.replace_prefix("/edgedns/", {
        **asyncio.run(client.get_prefix("/edgedns/"))[1], "/edgedns/zones/site.lan": bad},
        None))
    for node in nodes:
        wait_until(lambda node=node: node.status()["last_reload"]["error"] is not None,
                   within=5)
        error = node.status()["last_reload"]["error"]
        assert error.startswith("etcd:/edgedns/zones/site.lan: records.www.CNAME: ")
        assert node.answer("www.site.lan") == ["192.0.2.1"]


def test_node_local_keys_in_etcd_are_refused_naming_the_key(cluster, tmp_path) -> None:
    client = EtcdClient(EtcdSettings(tuple(cluster.endpoints)))
    asyncio.run(client.replace_prefix("/edgedns/", {
        "/edgedns/settings": "listen: ['0.0.0.0:53']", "/edgedns/zones/a.lan": "{}"}, None))
    node = Node(tmp_path, "n0", cluster.endpoints)
    result = CliRunner().invoke(main, ["check", "-c", str(node.bootstrap)])
    assert result.exit_code == 1
    assert "etcd:/edgedns/settings: listen: is node-local" in result.output


def test_with_etcd_down_nodes_serve_and_a_restarted_node_uses_its_cache(cluster, nodes,
                                                                       tmp_path) -> None:
    push(cluster, tmp_path, SITE)
    node = Node(tmp_path, "n0", cluster.endpoints).start()
    nodes.append(node)
    for i in range(3):
        cluster.stop(i)
    assert node.answer("www.site.lan") == ["192.0.2.1"]
    node.stop()
    node.start()  # etcd is unreachable: the cache of the last good documents serves
    assert node.answer("www.site.lan") == ["192.0.2.1"]
    etcd = node.status()["etcd"]
    assert etcd["from_cache"] and not etcd["connected"] and etcd["cache_age_seconds"] >= 0
    assert "no etcd endpoint answered" in etcd["last_error"]
    for i in range(3):
        cluster.start(i, wait=False)
    cluster.wait_healthy()
    push(cluster, tmp_path, SITE.replace("192.0.2.1", "192.0.2.3"))
    wait_until(lambda: node.answer("www.site.lan") == ["192.0.2.3"], within=10)
    wait_until(lambda: not node.status()["etcd"]["from_cache"], within=5)


def test_one_member_of_three_down_changes_nothing(cluster, nodes, tmp_path) -> None:
    push(cluster, tmp_path, SITE)
    node = Node(tmp_path, "n0", cluster.endpoints).start()
    nodes.append(node)
    cluster.stop(0)  # the first endpoint: the one the node was using
    push(cluster, tmp_path, SITE.replace("192.0.2.1", "192.0.2.4"))
    wait_until(lambda: node.answer("www.site.lan") == ["192.0.2.4"], within=10)


def test_a_watch_from_a_compacted_revision_reads_the_prefix_again(cluster, tmp_path) -> None:
    settings = EtcdSettings(tuple(cluster.endpoints))
    client = EtcdClient(settings)

    async def scenario() -> Documents:
        old, _ = await client.get_prefix("/edgedns/")
        await client.replace_prefix("/edgedns/", {"/edgedns/zones/a.lan": "{}"}, None)
        latest = await client.replace_prefix("/edgedns/", {"/edgedns/zones/b.lan": "{}"},
                                             None)
        await client._post("/v3/kv/compaction", {"revision": str(latest), "physical": True})
        seen: asyncio.Future[Documents] = asyncio.get_running_loop().create_future()
        state = etcd_source.Follow()
        task = asyncio.create_task(etcd_source.follow(
            settings, Documents(old, {}), state,
            lambda docs: seen.done() or seen.set_result(docs)))
        try:
            documents = await asyncio.wait_for(seen, 10)
        finally:
            task.cancel()
        assert state.compactions == 1
        return documents

    documents = asyncio.run(scenario())
    assert documents.documents == {"/edgedns/zones/b.lan": "{}"}


def test_a_push_guarded_by_an_old_read_fails(cluster) -> None:
    client = EtcdClient(EtcdSettings(tuple(cluster.endpoints)))

    async def scenario() -> None:
        read, _ = await client.get_prefix("/edgedns/")
        await client.replace_prefix("/edgedns/", {"/edgedns/zones/a.lan": "{}"}, None)
        with pytest.raises(EtcdError, match="changed after revision"):
            await client.replace_prefix("/edgedns/", {"/edgedns/zones/b.lan": "{}"}, read)

    asyncio.run(scenario())


def test_pull_writes_back_what_was_pushed(cluster, tmp_path) -> None:
    push(cluster, tmp_path, SITE + "listen: [127.0.0.1:5399]\n")
    out = tmp_path / "pulled.yaml"
    result = CliRunner().invoke(main, ["pull", "--etcd", ",".join(cluster.endpoints),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    pulled = config_mod.load(out)
    original = config_mod.load(tmp_path / "site.yaml")
    assert ({z.origin: z for z in pulled.zones} == {z.origin: z for z in original.zones})
    assert pulled.forward == original.forward
    assert "listen" not in out.read_text()  # node-local: not in etcd


def test_every_node_registers_and_the_fleet_shows_who_lags(cluster, nodes, tmp_path) -> None:
    push(cluster, tmp_path, SITE)
    nodes += [Node(tmp_path, f"n{i}", cluster.endpoints).start() for i in range(3)]
    fleet = ["status", "--fleet", "--etcd", ",".join(cluster.endpoints)]
    wait_until(lambda: CliRunner().invoke(main, fleet).output.count("  node n") == 3,
               within=10)
    result = CliRunner().invoke(main, fleet)
    assert result.exit_code == 0, result.output
    assert "3 nodes" in result.output and "LAGGING" not in result.output
    nodes[2].proc.send_signal(signal.SIGSTOP)  # n2 stops following
    try:
        push(cluster, tmp_path, SITE.replace("192.0.2.1", "192.0.2.5"))
        wait_until(lambda: nodes[0].answer("www.site.lan") == ["192.0.2.5"], within=5)
        time.sleep(3.5)  # a heartbeat of n0 and n1 with the new revision
        result = CliRunner().invoke(main, fleet)
        assert result.exit_code == 1
        lines = {line.split()[1]: line for line in result.output.splitlines()
                 if line.startswith("  node ")}
        assert "LAGGING" in lines["n2"] and "LAGGING" not in lines["n0"]
        assert "lagging behind revision" in result.output
        page = nodes[0].status()["etcd"]
        wait_until(lambda: any(n["node"] == "n2" and n["lagging"]
                               for n in nodes[0].status()["etcd"]["fleet"]), within=5)
        assert page["node"] == "n0"
    finally:
        nodes[2].proc.send_signal(signal.SIGCONT)
    nodes[1].stop()  # stopped on purpose: out of the registry at once, not after the lease
    assert "  node n1 " not in CliRunner().invoke(main, fleet).output


@pytest.mark.skipif(shutil.which("etcdctl") is None,
                    reason="needs etcdctl (apt-get install etcd-client)")
def test_a_cluster_with_authentication(cluster, nodes, tmp_path) -> None:
    etcdctl = ["etcdctl", "--endpoints", ",".join(cluster.endpoints)]
    subprocess.run([*etcdctl, "user", "add", "root:s3cret", "--interactive=false"],
                   check=True, capture_output=True, timeout=30)
    subprocess.run([*etcdctl, "auth", "enable"], check=True, capture_output=True, timeout=30)
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    args = ["push", "-c", str(path), "--etcd", ",".join(cluster.endpoints), "--user", "root"]
    refused = CliRunner().invoke(main, args, env={"EDGEDNS_ETCD_PASSWORD": "wrong"})
    assert refused.exit_code == 1 and "authentication failed" in refused.output
    good = {"EDGEDNS_ETCD_PASSWORD": "s3cret"}
    assert CliRunner().invoke(main, args, env=good).exit_code == 0
    node = Node(tmp_path, "n0", cluster.endpoints)
    node.bootstrap.write_text(node.bootstrap.read_text().replace(
        "node: n0,", "node: n0, username: root, password: s3cret,"))
    nodes.append(node.start())
    assert node.answer("www.site.lan") == ["192.0.2.1"]
    path.write_text(SITE.replace("192.0.2.1", "192.0.2.6"))
    assert CliRunner().invoke(main, args, env=good).exit_code == 0
    wait_until(lambda: node.answer("www.site.lan") == ["192.0.2.6"], within=5)
    unauthorised = CliRunner().invoke(main, ["pull", "--etcd", ",".join(cluster.endpoints),
                                             "-o", str(tmp_path / "x.yaml")])
    assert unauthorised.exit_code == 1 and "user name is empty" in unauthorised.output


def test_a_cluster_that_speaks_tls_with_client_certificates(tmp_path, nodes) -> None:
    with EtcdCluster(tmp_path / "etcd-tls", tls=True) as secure:
        tls = (f"tls: {{ca: {secure.ca}, cert: {secure.client_cert}, "
               f"key: {secure.client_key}}}, ")
        settings = EtcdSettings(tuple(secure.endpoints), ca=str(secure.ca),
                                cert=str(secure.client_cert), key=str(secure.client_key))
        asyncio.run(EtcdClient(settings).replace_prefix(
            "/edgedns/", {"/edgedns/zones/site.lan": "records: {www: {A: 192.0.2.7}}"}, None))
        node = Node(tmp_path, "n0", secure.endpoints)
        node.bootstrap.write_text(node.bootstrap.read_text().replace("node: n0,",
                                                                     "node: n0, " + tls))
        nodes.append(node.start())
        assert node.answer("www.site.lan") == ["192.0.2.7"]
        assert node.status()["etcd"]["connected"]
        plain = EtcdClient(EtcdSettings(tuple(secure.endpoints), ca=str(secure.ca)))
        with pytest.raises(EtcdError):  # no client certificate: refused
            asyncio.run(plain.get_prefix("/edgedns/"))
