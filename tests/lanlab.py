"""A LAN in network namespaces: a switch (a Linux bridge in a namespace of its own) and hosts
that each plug one port, ``eth0``, into it. For VRRP: hosts elect a master and move a
virtual address between them, and a client on the same LAN keeps asking it.

    with LanLab(["a", "b", "client"]) as lab:
        lab.address("a")                 # 198.19.0.11 (IPv6: lab.address6("a"))
        proc = lab.popen("a", "edgedns", "serve", "-c", path)
        lab.port_down("a")               # a's cable pulled: its link loses carrier
        lab.port_up("a")
        sock = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)

Every address lives inside the lab's own namespaces (198.19.0.0/24 and 2001:2::/64, from
the benchmarking ranges), so nothing the root namespace holds can clash with it, and
several labs can run at once. Names carry the pid and a random tag; `close` deletes every
namespace (and with them every link) the lab made. Needs root and iproute2; only the
standard library is used, so `bench/` can use it too.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.labbase import Lab

_CLONE_NEWNET = 0x40000000
_TIMEOUT = 10.0
T = TypeVar("T")


class LanLab(Lab):
    def __init__(self, hosts: list[str]) -> None:
        self.tag = secrets.token_hex(3)
        self.prefix = f"edl-{os.getpid()}-{self.tag}"
        self.switch = f"{self.prefix}-sw"
        self.hosts = list(hosts)
        self._namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return f"198.19.0.{11 + self.hosts.index(host)}"

    def address6(self, host: str) -> str:
        return f"2001:2::{11 + self.hosts.index(host):x}"

    def port(self, host: str) -> str:
        """The switch's port (veth end) that `host` is plugged into."""
        return f"p{self.hosts.index(host)}"

    def _build(self) -> None:
        for netns in [self.switch] + [self.netns(h) for h in self.hosts]:
            _ip("netns", "add", netns)
            self._namespaces.append(netns)
            self.exec_ns(netns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                         "net.ipv6.conf.default.accept_dad=0")
            _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts:
            netns, port = self.netns(host), self.port(host)
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", netns)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", netns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", netns, "addr", "add", f"{self.address6(host)}/64", "dev", "eth0",
                "nodad")
            _ip("-n", netns, "link", "set", "eth0", "up")

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=_TIMEOUT)
        for netns in reversed(self._namespaces):
            _ip("netns", "del", netns, check=False)
        self._namespaces.clear()

    def exec_ns(self, netns: str, *cmd: str, check: bool = True, timeout: float = _TIMEOUT
                ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {netns}: "
                               f"{done.stderr.strip() or done.returncode}")
        return done

    def exec(self, host: str, *cmd: str, check: bool = True, timeout: float = _TIMEOUT
             ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in `host`'s namespace and wait for it (at most `timeout` seconds)."""
        return self.exec_ns(self.netns(host), *cmd, check=check, timeout=timeout)

    def popen(self, host: str, *cmd: str, **kwargs: Any) -> subprocess.Popen:
        """Start `cmd` in `host`'s namespace; killed by `close` if still running."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns(host), *cmd], **kwargs)
        self.processes.append(proc)
        return proc

    def port_down(self, host: str) -> None:
        """Pull `host`'s cable: its switch port goes down, so its eth0 loses carrier."""
        _ip("-n", self.switch, "link", "set", self.port(host), "down")

    def port_up(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self.port(host), "up")

    def holds(self, host: str, address: str) -> bool:
        """Whether `address` is configured on `host`'s eth0."""
        out = self.exec(host, "ip", "-o", "addr", "show", "dev", "eth0").stdout
        return any(f" {address}/" in line for line in out.splitlines())

    def socket(self, host: str, family: int, kind: int) -> socket.socket:
        """A socket opened inside `host`'s namespace (it stays there wherever it is used)."""
        return in_netns(self.netns(host), lambda: socket.socket(family, kind))

    def drop_dns(self, host: str, port: int) -> None:
        """`host` silently drops every DNS query to `port` (UDP and TCP, loopback too): its
        DNS server stops answering while its process lives."""
        self._drop(host, "edl_dns", [["udp", "dport", str(port)], ["tcp", "dport", str(port)]])

    def undrop_dns(self, host: str) -> None:
        self.exec(host, "nft", "delete", "table", "inet", "edl_dns")

    def drop_vrrp(self, host: str) -> None:
        """`host` drops every VRRP packet it receives: with it on both hosts, the hosts no
        longer hear each other while clients still reach both (a split)."""
        self._drop(host, "edl_vrrp", [["meta", "l4proto", "112"]])

    def undrop_vrrp(self, host: str) -> None:
        self.exec(host, "nft", "delete", "table", "inet", "edl_vrrp")

    def _drop(self, host: str, table: str, matches: list[list[str]]) -> None:
        self.exec(host, "nft", "add", "table", "inet", table)
        self.exec(host, "nft", "add", "chain", "inet", table, "input",
                  "{ type filter hook input priority 0; }")
        for match in matches:
            self.exec(host, "nft", "add", "rule", "inet", table, "input", *match, "drop")


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """`fn()` run on a short-lived thread that has joined `netns` (setns affects only the
    calling thread); what it opens stays in that namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[Any] = []

    def worker() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=worker, name=f"setns-{netns}")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_TIMEOUT)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


class Asker:
    """A LAN client that asks `name` TXT of `server` every `every` seconds, as a stub resolver
    would: its socket is connected, so only replies from the address it asked count. Each
    host's zone says who it is in that TXT record, so `answered_by` tells who answered.

    Runs two threads (send, receive) until `stop`; bounded by `limit` queries."""

    def __init__(self, sock: socket.socket, server: tuple[str, int], name: str,
                 every: float = 0.02, limit: int = 60000) -> None:
        self.sock = sock
        self.server = server
        self.every = every
        self.limit = min(limit, 65536)
        self.question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + \
            b"\0" + b"\x00\x10\x00\x01"
        self.sent: list[float] = []
        self.answers: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._closing = False
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]

    def start(self) -> Asker:
        self.sock.connect(self.server)
        self.sock.settimeout(0.2)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, linger: float = 0.3) -> None:
        """Stop asking; replies still arriving within `linger` seconds count."""
        self._stop.set()
        self._threads[0].join()
        threading.Event().wait(linger)
        self._closing = True
        self._threads[1].join()
        self.sock.close()

    def _send(self) -> None:
        clock = time.monotonic
        start = clock()
        for index in range(self.limit):
            due = start + index * self.every
            if self._stop.wait(max(due - clock(), 0)):
                return
            self.sent.append(clock())
            try:
                self.sock.send(index.to_bytes(2, "big") + b"\0\0\0\x01\0\0\0\0\0\0"
                               + self.question)
            except OSError:
                pass  # no route while the address moves: counts as unanswered

    def _receive(self) -> None:
        while not self._closing:
            try:
                reply = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                continue  # ICMP port unreachable from a host that lost the address
            if len(reply) < 12:
                continue
            index = int.from_bytes(reply[:2], "big")
            self.answers.setdefault(index, (time.monotonic(), _first_txt(reply)))

    def outages(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """Seconds from each first unanswered query sent in [since, until) to the next
        answered one; a run still unanswered at the end counts to the last query sent."""
        out, first_lost = [], None
        for index, sent in enumerate(self.sent):
            if sent < since or (first_lost is None and sent >= until):
                continue
            if index in self.answers:
                if first_lost is not None:
                    out.append(sent - first_lost)
                    first_lost = None
            elif first_lost is None:
                first_lost = sent
        if first_lost is not None:
            out.append(self.sent[-1] - first_lost + self.every)
        return out

    def answered_by(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        """How many queries sent in [since, until) each host answered."""
        counts: dict[str, int] = {}
        for index, sent in enumerate(self.sent):
            if since <= sent < until and index in self.answers:
                who = self.answers[index][1]
                counts[who] = counts.get(who, 0) + 1
        return counts


def _first_txt(reply: bytes) -> str:
    """The first TXT string of the answer section ("" when there is none)."""
    if int.from_bytes(reply[6:8], "big") == 0:
        return ""
    pos = 12
    while reply[pos]:  # the question's name, written by us uncompressed
        pos += reply[pos] + 1
    pos += 5
    pos += 2 if reply[pos] & 0xC0 == 0xC0 else len(reply)  # the answer's owner: a pointer
    rdata = pos + 10
    return reply[rdata + 1:rdata + 1 + reply[rdata]].decode(errors="replace")


DNS_PORT = 5300
VIP = "198.19.0.100"
VIP6 = "2001:2::100"


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll `condition` every 20 ms; raise TimeoutError naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within}s: {what}")
        time.sleep(0.02)


def vrrp_yaml(priority: int, addresses: str = f"[{VIP}]", extra: str = "") -> str:
    """A `vrrp` section on eth0, virtual router 51, every other key at its default."""
    return textwrap.dedent(f"""\
        vrrp:
          interface: eth0
          virtual_router_id: 51
          priority: {priority}
          addresses: {addresses}
        """) + textwrap.indent(textwrap.dedent(extra), "  ")


ZONES = """\
zones:
  site.lan:
    records:
      who: {TXT: "%s"}
"""


class EdgednsHost:
    """``edgedns serve`` on one host of the lab: DNS on every address, port `DNS_PORT`,
    zone site.lan whose ``who`` TXT names the host (see `Asker`), admin on its loopback."""

    def __init__(self, lab: LanLab, name: str, work: Path, vrrp: str | None,
                 python: str = sys.executable, extra: str = "", port: int = DNS_PORT,
                 zones: str = ZONES) -> None:
        """`extra`: more top-level YAML; `zones`: the `zones` section, ``%s`` standing for
        the host's name."""
        self.lab, self.name, self.python = lab, name, python
        self.config = work / f"{name}.yaml"
        self.log = work / f"{name}.log"
        text = f"""\
            listen: ["0.0.0.0:{port}", "[::]:{port}"]
            admin: 127.0.0.1:9153
            reload_interval: 0
            state_dir: {work / name}
            """
        self.config.write_text(textwrap.dedent(text) + zones.replace("%s", name) + extra
                               + (vrrp or ""))
        self.proc: subprocess.Popen | None = None

    def start(self) -> EdgednsHost:
        before = self.log.read_text().count("serving") if self.log.exists() else 0
        self.proc = self.lab.popen(self.name, self.python, "-m", "edgedns", "serve", "-c",
                                   str(self.config), stdout=self.log.open("a"),
                                   stderr=subprocess.STDOUT)
        wait_for(lambda: self.log.read_text().count("serving") > before, 10,
                 f"edgedns serving on {self.name} (see {self.log})")
        return self

    def signal(self, sig: int) -> None:
        """Send `sig`; for SIGKILL and SIGTERM, wait until the process has gone."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(timeout=10)

    def get(self, path: str) -> bytes:
        """The body of GET `path` from the host's admin endpoint."""
        sock = self.lab.socket(self.name, socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(5)
            sock.connect(("127.0.0.1", 9153))
            sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1]

    def status(self) -> dict:
        """/status from the host's admin endpoint (rebuilt at most once a second)."""
        return json.loads(self.get("/status"))

    def router(self) -> dict:
        return self.status()["vrrp"]["routers"][0]

    def state(self) -> str:
        return self.router()["state"]


KEEPALIVED = """\
global_defs {{
  router_id {name}
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int {interval}
  version {version}
  nopreempt
{auth}
  virtual_ipaddress {{
    {vip}
  }}
}}
"""


def start_keepalived(lab: LanLab, host: str, work: Path, priority: int, version: int = 3,
                     auth_pass: str | None = None, vip: str = f"{VIP}/32") -> subprocess.Popen:
    """keepalived's VRRP process on `host` for the same virtual router as `vrrp_yaml`,
    logging to ``keepalived-HOST.log`` in `work`."""
    conf = work / f"keepalived-{host}.conf"
    auth = (f"  authentication {{\n    auth_type PASS\n    auth_pass {auth_pass}\n  }}"
            if auth_pass else "")
    conf.write_text(KEEPALIVED.format(name=host, priority=priority, version=version,
                                      interval="0.1" if version == 3 else "1", auth=auth,
                                      vip=vip))
    return lab.popen(host, "keepalived", "-n", "-l", "-D", "-P", "-f", str(conf),
                     "-p", str(work / f"k-{host}.pid"), "-r", str(work / f"kv-{host}.pid"),
                     stdout=(work / f"keepalived-{host}.log").open("w"),
                     stderr=subprocess.STDOUT)


def runnable_by_others(path: str) -> bool:
    """Whether a user other than root can execute `path` (every directory above it
    searchable by others, the file executable by others)."""
    real = Path(os.path.realpath(path))
    if not real.exists() or not real.stat().st_mode & 0o001:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in real.parents)


def script_python() -> str | None:
    """A Python that keepalived's unprivileged script user can run, or None."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if runnable_by_others(candidate):
            return os.path.realpath(candidate)
    return None


_INSTALLED = """\
set -e
mount -t tmpfs -o mode=755 tmpfs /opt
mkdir -p /opt/edgedns/bin
cat > /opt/edgedns/bin/edgedns-alive <<END
#!$PYTHON
import sys
sys.path.insert(0, "$REPO")
from edgedns.vip.selfcheck import main
sys.exit(main())
END
chmod 755 /opt/edgedns/bin/edgedns-alive
if ! getent passwd keepalived_script >/dev/null; then
    cp /etc/passwd "$WORK/passwd"
    echo "keepalived_script:x:64999:64999::/nonexistent:/usr/sbin/nologin" >> "$WORK/passwd"
    mount --bind "$WORK/passwd" /etc/passwd
fi
exec keepalived "$@"
"""


def keepalived_as_installed(work: Path, python: str, repo: Path) -> list[str]:
    """The command prefix that runs keepalived as on a host where edgedns is installed in
    /opt/edgedns and the user keepalived_script exists: in private mount and PID
    namespaces (nothing of this host changes), /opt holds an ``edgedns-alive`` like pip's
    (running `python` on the checkout at `repo`), and /etc/passwd gains the user if it
    lacks it. PID 1 of its own namespace also spares keepalived 2.2.7's --config-test the
    self-kill it does on scripts with a non-root user (fixed in 2.2.8)."""
    wrapper = work / "keepalived-installed.sh"
    wrapper.write_text(_INSTALLED)
    return ["env", f"PYTHON={python}", f"REPO={repo}", f"WORK={work}", "unshare", "-m",
            "-p", "-f", "--mount-proc", "sh", str(wrapper)]
