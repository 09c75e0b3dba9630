"""A real etcd cluster for tests: three members of Debian's etcd-server on loopback ports,
data in a temporary directory, started and stopped by the test.

    with EtcdCluster(tmp_path) as cluster:
        cluster.endpoints          # ["http://127.0.0.1:P1", ...]
        cluster.stop(0)            # member 0 down (SIGTERM) ...
        cluster.start(0)           # ... and back with its data
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.labbase import Lab

ETCD = shutil.which("etcd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdCluster(Lab):
    def __init__(self, work: Path, members: int = 3, tls: bool = False) -> None:
        """With `tls`, clients must speak https and show a certificate signed by the
        cluster's CA (`ca`, `client_cert`, `client_key`, made with openssl)."""
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        if tls:
            self._make_certificates()
        self.names = [f"m{i}" for i in range(members)]
        self.client_ports = [_free_port() for _ in self.names]
        self.peer_ports = [_free_port() for _ in self.names]
        self.procs: list[subprocess.Popen | None] = [None] * members

    @property
    def endpoints(self) -> list[str]:
        scheme = "https" if self.tls else "http"
        return [f"{scheme}://127.0.0.1:{port}" for port in self.client_ports]

    @property
    def ca(self) -> Path:
        return self.work / "ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.work / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.work / "client-key.pem"

    def _make_certificates(self) -> None:
        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

        w = self.work
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=edgedns test CA", "-keyout", str(w / "ca-key.pem"), "-out", str(self.ca))
        for name, extension in (("server", "subjectAltName=IP:127.0.0.1"),
                                ("client", "extendedKeyUsage=clientAuth")):
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", str(w / f"{name}-key.pem"), "-out", str(w / f"{name}.csr"))
            (w / f"{name}.ext").write_text(extension + "\n")
            openssl("x509", "-req", "-in", str(w / f"{name}.csr"), "-CA", str(self.ca),
                    "-CAkey", str(w / "ca-key.pem"), "-CAcreateserial", "-days", "2",
                    "-extfile", str(w / f"{name}.ext"), "-out", str(w / f"{name}.pem"))

    def _build(self) -> None:
        for i in range(len(self.names)):
            self.start(i, wait=False)
        self.wait_healthy()

    def start(self, index: int, wait: bool = True) -> None:
        assert ETCD is not None
        cluster = ",".join(f"{name}=http://127.0.0.1:{port}"
                           for name, port in zip(self.names, self.peer_ports, strict=True))
        name = self.names[index]
        self.procs[index] = subprocess.Popen(
            [ETCD, "--name", name, "--data-dir", str(self.work / name),
             "--listen-client-urls", self.endpoints[index],
             "--advertise-client-urls", self.endpoints[index],
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[index]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[index]}",
             "--initial-cluster", cluster, "--initial-cluster-token", "edgedns-test",
             "--heartbeat-interval", "50", "--election-timeout", "500",
             # Room for one push of 1,000 zones (defaults: 128 operations, 1.5 MiB).
             "--max-txn-ops", "4096", "--max-request-bytes", str(32 << 20),
             *(["--cert-file", str(self.work / "server.pem"), "--key-file",
                str(self.work / "server-key.pem"), "--trusted-ca-file", str(self.ca),
                "--client-cert-auth"] if self.tls else [])],
            stdout=(self.work / f"{name}.log").open("a"), stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy([index])

    def stop(self, index: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
        self.procs[index] = None

    def _client_tls(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def close(self) -> None:
        for i in range(len(self.names)):
            proc = self.procs[i]
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
            self.procs[i] = None

    def wait_healthy(self, members: list[int] | None = None, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        for i in members if members is not None else range(len(self.names)):
            while True:
                try:
                    with urllib.request.urlopen(f"{self.endpoints[i]}/health", timeout=2,
                                                context=self._client_tls()) as r:
                        if b'"true"' in r.read():
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    log = (self.work / f"{self.names[i]}.log").read_text()[-2000:]
                    raise TimeoutError(f"etcd member {i} not healthy within {within}s: {log}")
                time.sleep(0.1)
