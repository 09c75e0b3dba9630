"""Test hosts in network namespaces: real hosts whose ICMP, TCP and links go down and up.

``NetnsLab(n)`` builds `n` namespaces, each joined to the root namespace by a veth pair on
its own /30 from 198.18.0.0/15 (RFC 2544 benchmarking space): root side ``198.18.X.1/30``,
namespace side ``198.18.X.2/30`` (`Host.address`, what a pool member is). Use it as a
context manager, or through the `netns_lab` pytest fixture (a factory: ``netns_lab(2)``)::

    with NetnsLab(2) as lab:
        a, b = lab.hosts
        lab.silence_icmp(a)            # a stops answering pings ...
        lab.unsilence_icmp(a)          # ... and answers again
        lab.start_tcp_listener(b, 8080)
        lab.stop_tcp_listener(b, 8080)
        lab.unplug(b)                  # b vanishes from its link ...
        lab.plug(b)                    # ... and is back
        lab.remove_link(a)             # a vanishes for good: its veth pair is deleted

Needs root and iproute2 (`available()` says why not). Only the standard library is used, so
`bench/` can use it too.

Traffic never leaves the machine. Besides the hosts, a lab makes a "sink" namespace joined
by one more veth pair, and routes every host's /30 to it at a high metric: while a host's
veth exists its connected route wins; once `remove_link` deletes it, probes to the host go
into the sink (where nobody answers ARP, so they time out as for an unplugged host) instead
of following the root namespace's default route out of the box.

Names carry the pid and a random tag, so parallel runs do not clash; the /30s are picked,
under a lock file, from blocks no route or address of the root namespace overlaps. Teardown
(`close`, also on errors halfway through building) stops the listeners and deletes every
namespace, link and route the lab made, and only those.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tests.labbase import Lab, available
from tests.lanlab import in_netns

NETWORK = ipaddress.ip_network("198.18.0.0/15")
BLOCKS = NETWORK.num_addresses // 4
"""/30 blocks in NETWORK; block k is 198.18.0.0 + 4k."""
SINK_METRIC = 4242
LOCK_FILE = "/run/lock/edgedns-netns.lock"
ICMP_SYSCTL = "/proc/sys/net/ipv4/icmp_echo_ignore_all"
_CLONE_NEWNET = 0x40000000
_COMMAND_TIMEOUT = 10.0

_LISTENER = """\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    conn.close()
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` in the root namespace; raises with ip's message when `check` fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True,
                          timeout=_COMMAND_TIMEOUT)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


@dataclass
class Host:
    index: int
    netns: str
    """Namespace name."""
    root_if: str
    """Root-namespace end of the veth pair."""
    ns_if: str
    """Namespace end of the veth pair."""
    block: ipaddress.IPv4Network
    """The /30 joining this host to the root namespace."""
    listeners: dict[int, subprocess.Popen[str]] = field(default_factory=dict)
    _icmp_fd: int | None = None

    @property
    def address(self) -> str:
        """The host's address (namespace side)."""
        return str(self.block.network_address + 2)

    @property
    def gateway(self) -> str:
        """The root namespace's address on this host's link."""
        return str(self.block.network_address + 1)


class NetnsLab(Lab):
    """`count` namespace hosts; see the module docstring."""

    def __init__(self, count: int) -> None:
        if not 1 <= count <= 64:
            raise ValueError("a lab has 1 to 64 hosts")
        self.count = count
        self.tag = secrets.token_hex(3)
        self.prefix = f"edgedns-{os.getpid()}-{self.tag}"
        self.hosts: list[Host] = []
        self.sink_netns = f"{self.prefix}-sink"
        self.sink_if = f"ed{self.tag}k"
        self._namespaces: list[str] = []
        self._links: list[str] = []
        self._extra_routes: list[str] = []
        self._closed = False

    # -- building and teardown --------------------------------------------------------------

    def _build(self) -> None:
        reason = available()
        if reason:
            raise RuntimeError(reason)
        os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
        with open(LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # pick blocks and claim them by adding routes
            self._add_netns(self.sink_netns)
            self._add_veth(self.sink_if, "sink0", self.sink_netns)
            ip("-n", self.sink_netns, "link", "set", "sink0", "up")
            for index, block in enumerate(self._free_blocks()):
                host = Host(index, f"{self.prefix}-h{index}", f"ed{self.tag}r{index}",
                            f"lan{index}", block)
                self.hosts.append(host)
                # The sink route first, so no moment exists where the block is unrouted.
                ip("route", "add", str(block), "dev", self.sink_if, "metric", str(SINK_METRIC))
                self._add_netns(host.netns)
                self._add_veth(host.root_if, host.ns_if, host.netns)
                ip("addr", "add", f"{host.gateway}/30", "dev", host.root_if)
                ip("link", "set", host.root_if, "up")
                ip("-n", host.netns, "addr", "add", f"{host.address}/30", "dev", host.ns_if)
                ip("-n", host.netns, "link", "set", host.ns_if, "up")
                ip("-n", host.netns, "link", "set", "lo", "up")
        self.wait_reachable()

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)

    def _add_veth(self, root_if: str, ns_if: str, netns: str) -> None:
        ip("link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", netns)
        self._links.append(root_if)
        ip("link", "set", root_if, "up")

    def _free_blocks(self) -> list[ipaddress.IPv4Network]:
        """`count` consecutive /30s of NETWORK that nothing in the root namespace overlaps."""
        used = _root_networks()
        for _ in range(200):
            start = secrets.randbelow(BLOCKS - self.count)
            blocks = [
                ipaddress.ip_network(f"{NETWORK.network_address + 4 * (start + i)}/30")
                for i in range(self.count)
            ]
            if not any(b.overlaps(u) for b in blocks for u in used):
                return blocks
        raise RuntimeError(f"no {self.count} free /30 blocks in {NETWORK}")

    def wait_reachable(self, timeout: float = 5.0) -> None:
        """Wait until each host's link is up on both ends (veths need a moment)."""
        deadline = time.monotonic() + timeout
        for host in self.hosts:
            while True:
                state = ip("-j", "link", "show", "dev", host.root_if).stdout
                if json.loads(state)[0].get("operstate") == "UP":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{host.root_if} did not come up")
                time.sleep(0.01)

    def close(self) -> None:
        """Stop listeners, delete every namespace and link made; never raises for a part
        already gone. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for host in self.hosts:
            for port in list(host.listeners):
                try:
                    self.stop_tcp_listener(host, port)
                except Exception as exc:  # keep tearing down
                    errors.append(f"listener {host.netns}:{port}: {exc}")
            if host._icmp_fd is not None:
                os.close(host._icmp_fd)
                host._icmp_fd = None
        # Deleting a namespace deletes the veth ends in it, and with them their peers here;
        # deleting the sink link deletes the sink routes. Remove leftovers explicitly anyway.
        for name in reversed(self._namespaces):
            done = ip("netns", "del", name, check=False)
            if done.returncode != 0 and name in _netns_names():
                errors.append(f"netns del {name}: {done.stderr.strip()}")
        for link in self._links:
            if ip("link", "show", "dev", link, check=False).returncode == 0:
                done = ip("link", "del", link, check=False)
                if done.returncode != 0:
                    errors.append(f"link del {link}: {done.stderr.strip()}")
        for host in self.hosts:
            ip("route", "del", str(host.block), "metric", str(SINK_METRIC), check=False)
        for route in self._extra_routes:
            ip("route", "del", route, check=False)
        if errors:
            print("netns lab teardown: " + "; ".join(errors), file=sys.stderr)

    # -- acting on hosts --------------------------------------------------------------------

    def run(self, host: Host, *cmd: str, check: bool = True,
            timeout: float = _COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside `host`'s namespace (``ip netns exec``)."""
        done = subprocess.run(["ip", "netns", "exec", host.netns, *cmd], capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"in {host.netns}: {' '.join(cmd)}: "
                               f"{done.stderr.strip() or done.returncode}")
        return done

    def silence_icmp(self, host: Host) -> float:
        """`host` stops answering echo requests; returns the `time.monotonic()` it did."""
        return self._icmp_ignore(host, True)

    def unsilence_icmp(self, host: Host) -> float:
        """`host` answers echo requests again; returns the `time.monotonic()` it did."""
        return self._icmp_ignore(host, False)

    def _icmp_ignore(self, host: Host, ignore: bool) -> float:
        # Same as `ip netns exec NS sysctl -w net.ipv4.icmp_echo_ignore_all=1`, through a
        # file opened once inside the namespace: the write takes effect at once, where the
        # command takes ~50 ms to start, which would blur failover timings.
        if host._icmp_fd is None:
            try:
                host._icmp_fd = _open_in_netns(host.netns, ICMP_SYSCTL)
            except OSError:
                self.run(host, "sysctl", "-qw", f"net.ipv4.icmp_echo_ignore_all={int(ignore)}")
                return time.monotonic()
        os.pwrite(host._icmp_fd, b"1\n" if ignore else b"0\n", 0)
        return time.monotonic()

    def start_tcp_listener(self, host: Host, port: int) -> float:
        """Listen on `host`:`port` (accept and close at once) in a subprocess inside the
        namespace; returns the `time.monotonic()` it was listening."""
        if port in host.listeners:
            raise RuntimeError(f"{host.netns} already listens on {port}")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, sys.executable, "-c", _LISTENER,
             host.address, str(port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        host.listeners[port] = proc
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(_COMMAND_TIMEOUT)
        if not line or line[0].strip() != "ready":
            self.stop_tcp_listener(host, port)
            raise RuntimeError(f"TCP listener on {host.address}:{port} did not start")
        return time.monotonic()

    def stop_tcp_listener(self, host: Host, port: int) -> float:
        """Kill the listener on `host`:`port`; returns the `time.monotonic()` it was gone."""
        proc = host.listeners.pop(port)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return time.monotonic()

    def add_addresses(self, host: Host, count: int) -> list[str]:
        """`count` more addresses for `host` (on its loopback, from a free block of NETWORK),
        routed to it from the root namespace; removed with the lab. For many pool members
        without a namespace each."""
        bits = max(count - 1, 1).bit_length()
        with open(LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _root_networks()
            for _ in range(200):
                size = 1 << bits
                start = secrets.randbelow(NETWORK.num_addresses // size) * size
                block = ipaddress.ip_network(f"{NETWORK.network_address + start}/{32 - bits}")
                if not any(block.overlaps(u) for u in used):
                    break
            else:
                raise RuntimeError(f"no free /{32 - bits} in {NETWORK}")
            ip("route", "add", str(block), "via", host.address, "dev", host.root_if)
            self._extra_routes.append(str(block))
        addresses = [str(block.network_address + i) for i in range(count)]
        for address in addresses:
            ip("-n", host.netns, "addr", "add", f"{address}/32", "dev", "lo")
        return addresses

    def drop_icmp(self, host: Host, percent: int) -> None:
        """`host` drops that share of the ICMP packets it receives, at random (nftables
        `numgen random`): a lossy link, for echo requests to every address it holds."""
        rules = ("table inet edgedns_loss {\n chain input {\n"
                 "  type filter hook input priority 0;\n"
                 f"  meta l4proto icmp numgen random mod 100 < {percent} drop\n }}\n}}\n")
        done = subprocess.run(["ip", "netns", "exec", host.netns, "nft", "-f", "-"],
                              input=rules, capture_output=True, text=True,
                              timeout=_COMMAND_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"nft in {host.netns}: {done.stderr.strip()}")

    def unplug(self, host: Host) -> float:
        """Take `host`'s end of its link down: it vanishes (nothing answers, no ICMP error
        comes back: probes time out), until `plug`. Returns the `time.monotonic()` it did."""
        ip("-n", host.netns, "link", "set", host.ns_if, "down")
        return time.monotonic()

    def plug(self, host: Host) -> float:
        """Bring `host`'s link back after `unplug`; returns the `time.monotonic()` it did."""
        ip("-n", host.netns, "link", "set", host.ns_if, "up")
        return time.monotonic()

    def remove_link(self, host: Host) -> float:
        """Delete `host`'s veth pair: the host vanishes (its traffic goes to the sink).
        Returns the `time.monotonic()` it was gone."""
        ip("link", "del", host.root_if)
        return time.monotonic()


def _open_in_netns(netns: str, path: str) -> int:
    """Open `path` (a /proc/sys/net file) for writing as seen from inside `netns`."""
    return in_netns(netns, lambda: os.open(path, os.O_WRONLY))


def _root_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 route destination and address prefix of the root namespace in NETWORK."""
    found = []
    routes = json.loads(ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    addrs = json.loads(ip("-j", "-4", "addr", "show").stdout or "[]")
    texts = [r.get("dst", "") for r in routes]
    texts += [f"{a['local']}/{a['prefixlen']}" for link in addrs for a in link.get("addr_info", [])]
    for text in texts:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue  # "default" and the like
        if net.version == 4 and net.overlaps(NETWORK):
            found.append(net)
    return found


def _netns_names() -> set[str]:
    out = ip("-j", "netns", "list", check=False).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


try:
    import pytest
except ImportError:  # bench/ uses this module without pytest
    pass
else:

    @pytest.fixture
    def netns_lab() -> Iterator[Callable[[int], NetnsLab]]:
        """Factory fixture: ``netns_lab(n)`` → a built `NetnsLab`, torn down after the test."""
        labs: list[NetnsLab] = []

        def build(count: int) -> NetnsLab:
            lab = NetnsLab(count)
            labs.append(lab)  # before building: close() also cleans a half-built lab
            lab.__enter__()
            return lab

        yield build
        for lab in labs:
            lab.close()
