"""The command line, driven through click's CliRunner."""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import dns.exception
import dns.message
import dns.query
from click.testing import CliRunner

from edgedns import __version__
from edgedns.cli import main
from edgedns.config import Endpoint
from edgedns.pools.health import icmp
from edgedns.server import lifecycle, limits
from tests.support import EXAMPLES, REPO, free_port, wait_until

EXAMPLE = EXAMPLES / "zones.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgedns.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_check_prints_ok_listen_and_a_line_per_zone_with_record_counts(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        listen: ["127.0.0.1:5300", "[::1]:5300"]
        zones:
          site.lan:
            records:
              www: {A: [192.0.2.1, 192.0.2.2], TXT: hello}
          b.lan: {}
    """)
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path}: OK",
        "listen: 127.0.0.1:5300, [::1]:5300",
        "zone site.lan.: 2 names, 5 records (A=2 NS=1 SOA=1 TXT=1)",
        "zone b.lan.: 1 names, 2 records (NS=1 SOA=1)",
        "forward: off (names outside the zones get REFUSED)",
    ]


def test_check_of_the_example_config_summarises_zones_and_pools() -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "zone site.lan.: 11 names, 15 records (" in result.stdout
    assert "CNAME=2" in result.stdout
    assert "pool api.site.lan.: 2 members, policy all, checks http" in result.stdout
    assert "zone 0.0.127.in-addr.arpa.: 6 names, 7 records (NS=1 SOA=1 PTR=5)" in result.stdout


def test_check_of_a_bad_config_exits_non_zero_with_file_and_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "zones: {site.lan: {records: {www: {CNAME: web, A: 192.0.2.1}}}}\n")
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {path}: zones.site.lan.records.www.CNAME: "
        "CNAME at www.site.lan. cannot coexist with other data (found A)\n"
    )


def test_check_of_a_missing_config_exits_non_zero_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 1
    assert f"Error: {path}: cannot read: No such file or directory" in result.stderr


def test_check_requires_the_config_option() -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2
    assert "Missing option '-c' / '--config'" in result.stderr


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"edgedns, version {__version__}\n"


def test_serve_with_a_bad_config_exits_non_zero_before_serving(tmp_path: Path) -> None:
    path = write(tmp_path, "zones: {site.lan: {ttl: soon}}\n")
    result = CliRunner().invoke(main, ["serve", "-c", str(path)])
    assert result.exit_code == 1
    assert f"Error: {path}: zones.site.lan.ttl: 'soon' is not a TTL" in result.stderr


# --- serve: --admin, and start-up failures said plainly --------------------------------------


SERVE_CONFIG = """\
    admin: 127.0.0.1:{admin}
    zones:
      site.lan:
        records:
          www: {{A: 192.0.2.1}}
    """


def serve_process(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edgedns", "serve", "-c", str(config), *args],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def admin_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    return err


def test_serve_admin_option_moves_the_admin_endpoint_and_keeps_it_across_reloads(
        tmp_path: Path) -> None:
    in_file, on_command_line = free_port(), free_port()
    config = write(tmp_path, SERVE_CONFIG.format(admin=in_file))
    proc = serve_process(config, "--listen", f"127.0.0.1:{free_port()}",
                         "--admin", f"127.0.0.1:{on_command_line}")
    try:
        wait_until(lambda: admin_answers(on_command_line), within=15)
        assert not admin_answers(in_file)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert admin_answers(on_command_line) and not admin_answers(in_file)
    finally:
        err = stop(proc)
    assert "reloaded (SIGHUP)" in err


def test_serve_admin_off_serves_no_admin_endpoint(tmp_path: Path) -> None:
    in_file, dns_port = free_port(), free_port()
    config = write(tmp_path, SERVE_CONFIG.format(admin=in_file))
    proc = serve_process(config, "--listen", f"127.0.0.1:{dns_port}", "--admin", "off")
    try:
        wait_until(lambda: udp_answers(dns_port), within=15)
        assert not admin_answers(in_file)
    finally:
        stop(proc)


def udp_answers(port: int) -> bool:
    query = dns.message.make_query("www.site.lan", "A")
    try:
        return bool(dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5).answer)
    except (dns.exception.Timeout, OSError):
        return False


def test_serve_on_a_taken_port_says_so_and_announces_no_shutdown(tmp_path: Path) -> None:
    config = write(tmp_path, SERVE_CONFIG.format(admin=free_port()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve_process(config, "--listen", f"127.0.0.1:{port}")
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert (f"Error: cannot serve: cannot bind TCP 127.0.0.1:{port}: Address already in use "
            "(another server listens there") in err
    assert "shutting down" not in err


def test_a_privileged_port_refused_names_the_two_usual_fixes() -> None:
    error = lifecycle._bind_error(PermissionError(errno.EACCES, "Permission denied"), "UDP",
                                  Endpoint("0.0.0.0", 53))
    message = str(error)
    assert error.errno == errno.EACCES
    assert message.startswith("[Errno 13] cannot bind UDP 0.0.0.0:53: Permission denied; ")
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in message
    assert "setcap cap_net_bind_service+ep" in message
    assert "listen on a port above 1023" in message


# --- check: warnings and the forwarding summary ----------------------------------------------


def test_check_warns_of_a_cname_mx_or_srv_target_that_does_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        zones:
          site.lan:
            records:
              www: {CNAME: webb}
              "@": {MX: "10 mial"}
              _http._tcp: {SRV: "0 0 80 www"}
              ok: {CNAME: www}
              "*.wild": {A: 192.0.2.9}
              via-wild: {CNAME: x.wild}
              away: {CNAME: www.example.com.}
        """)
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: www.site.lan. CNAME webb.site.lan.: no such name in zone site.lan.; "
        "clients get NXDOMAIN",
        "warning: site.lan. MX mial.site.lan.: no such name in zone site.lan.; clients get "
        "NXDOMAIN",
    ]


def test_check_summarises_forwarding(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        zones:
          site.lan: {records: {www: {A: 192.0.2.1}}}
        forward:
          upstreams: ["192.0.2.53"]
          zones:
            corp.example: {upstreams: ["192.0.2.10"], timeout: 1s}
        """)
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "forward default: 192.0.2.53:53 (sequential, timeout 2s)" in result.stdout
    assert "forward corp.example.: 192.0.2.10:53 (sequential, timeout 1s)" in result.stdout


def test_check_says_forwarding_is_off_without_forward() -> None:
    result = CliRunner().invoke(main, ["check", "-c", str(EXAMPLE)])
    assert "forward: off (names outside the zones get REFUSED)" in result.stdout


def test_check_warns_when_icmp_checks_could_not_run_here(tmp_path: Path, monkeypatch) -> None:
    def denied(version: int, raw: bool) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(icmp, "open_socket", denied)
    path = write(tmp_path, """\
        zones:
          site.lan: {pools: {web: {members: [192.0.2.1]}}}
        """)
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0
    assert "warning: ICMP checks cannot run as this user, so serve will refuse: ICMP health " \
           "checks need a raw or a ping socket" in result.stdout


def test_check_warns_of_a_port_this_user_may_not_bind(tmp_path: Path, monkeypatch) -> None:
    start = tmp_path / "start"
    start.write_text("1024\n")
    status = tmp_path / "status"
    status.write_text("CapEff:\t0000000000000000\n")  # no capabilities
    monkeypatch.setattr(limits, "UNPRIVILEGED_PORT_START", str(start))
    monkeypatch.setattr(limits, "PROC_STATUS", str(status))
    monkeypatch.setattr(limits.os, "geteuid", lambda: 1000)
    path = write(tmp_path, """\
        listen: ["127.0.0.1:53", "127.0.0.1:5300"]
        zones:
          site.lan: {records: {www: {A: 192.0.2.1}}}
        """)
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert [line for line in result.stdout.splitlines() if line.startswith("warning:")] == [
        "warning: listen 127.0.0.1:53: this user may not bind port 53; serve will fail unless "
        "run as root or with CAP_NET_BIND_SERVICE"]


def test_a_process_with_cap_net_bind_service_may_bind_port_53(tmp_path, monkeypatch) -> None:
    status = tmp_path / "status"
    status.write_text("CapEff:\t0000000000000400\n")  # bit 10
    monkeypatch.setattr(limits, "PROC_STATUS", str(status))
    monkeypatch.setattr(limits.os, "geteuid", lambda: 1000)
    assert limits.may_bind(53)


# --- serve: log levels ------------------------------------------------------------------------


def serve_log(tmp_path: Path, level: str, extra: str = "", query: bool = False) -> str:
    """stderr of `serve --log-level LEVEL` over about a second, a query asked if `query`."""
    port = free_port()
    config = tmp_path / "edgedns.yaml"
    config.write_text(textwrap.dedent(SERVE_CONFIG.format(admin=free_port())) + extra)
    proc = serve_process(config, "--listen", f"127.0.0.1:{port}", "--log-level", level)
    try:
        wait_until(lambda: proc.poll() is not None or udp_answers(port), within=15)
        assert proc.poll() is None, proc.communicate()[1]
        if query:
            udp_answers(port)
        time.sleep(0.8)
    finally:
        err = stop(proc)
    return err


def test_log_level_warning_still_shows_the_start_up_summary_and_the_query_log(
        tmp_path: Path) -> None:
    err = serve_log(tmp_path, "warning", "query_log: true\n", query=True)
    assert "INFO edgedns.summary: serving 1 zones on 127.0.0.1:" in err
    assert "INFO edgedns.querylog: client=127.0.0.1 name=www.site.lan. type=A" in err
    assert "INFO edgedns.summary: shutting down" in err


def test_log_level_debug_shows_every_probe_result(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        check_port = listener.getsockname()[1]
        err = serve_log(tmp_path, "debug", f"""\
    pools:
      app:
        check: {{type: tcp, port: {check_port}, interval: 200ms}}
        members: [127.0.0.1]
""")
    assert f"DEBUG edgedns.pools.pool: probe tcp 127.0.0.1:{check_port}: connected in " in err


def test_log_level_error_hides_the_rest(tmp_path: Path) -> None:
    err = serve_log(tmp_path, "error")
    assert "edgedns.summary: serving" in err
    assert "open files limit" in err  # a summary line too
    assert "edgedns.server.lifecycle" not in err and "edgedns.pools" not in err
