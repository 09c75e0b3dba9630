"""The command line, driven through click's CliRunner."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner

from edgedns import __version__
from edgedns.cli import main
from tests.support import EXAMPLES

EXAMPLE = EXAMPLES / "zones.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgedns.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_check_prints_ok_listen_and_a_line_per_zone_with_record_counts(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        listen: ["127.0.0.1:53", "[::1]:53"]
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
        "listen: 127.0.0.1:53, [::1]:53",
        "zone site.lan.: 2 names, 5 records (A=2 NS=1 SOA=1 TXT=1)",
        "zone b.lan.: 1 names, 2 records (NS=1 SOA=1)",
    ]


def test_check_of_the_example_config_summarises_zones_and_pools() -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "zone site.lan.: 11 names, 15 records (" in result.stdout
    assert "CNAME=2" in result.stdout
    assert "pool api.site.lan.: 2 members, policy all, checks tcp" in result.stdout
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
