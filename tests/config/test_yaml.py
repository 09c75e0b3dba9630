"""Reading YAML: what is written is what is served (keys and numbers keep their text),
aliases cannot blow a small file up, and bad values are quoted briefly in errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgedns.config import ConfigError, load
from edgedns.config import yaml as yaml_file
from edgedns.dns import names

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
zones: {site.lan: {records: {www: {TXT: *i}}}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgedns.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def owners(tmp_path: Path, text: str, apex: str) -> set[str]:
    cfg = load(write(tmp_path, text))
    zone = next(z for z in cfg.zones if z.origin == names.from_text(apex))
    return {names.to_text(owner) for owner in zone.nodes}


@pytest.mark.parametrize("owner", ["1.10", "010", "on", "off", "yes", "null", "~", "1e3"])
def test_owner_names_are_read_as_written(tmp_path, owner) -> None:
    text = f"zones:\n  10.in-addr.arpa:\n    records:\n      {owner}: {{PTR: host.site.lan.}}\n"
    assert f"{owner}.10.in-addr.arpa." in owners(tmp_path, text, "10.in-addr.arpa.")


def test_a_ptr_owner_like_a_decimal_number_keeps_its_trailing_zero(tmp_path) -> None:
    text = "zones: {10.in-addr.arpa: {records: {1.10: {PTR: a.lan.}, 1.1: {PTR: b.lan.}}}}"
    assert {"1.10.10.in-addr.arpa.", "1.1.10.in-addr.arpa."} <= owners(
        tmp_path, text, "10.in-addr.arpa.")


def test_zone_and_pool_names_are_read_as_written(tmp_path) -> None:
    cfg = load(write(tmp_path, """
        zones:
          "010":
            pools:
              on: {check: {type: none}, members: [192.0.2.1]}
    """))
    assert [names.to_text(z.origin) for z in cfg.zones] == ["010."]
    assert [names.to_text(p.name) for p in cfg.pools] == ["on.010."]


def test_a_record_value_read_as_a_number_is_served_as_written(tmp_path) -> None:
    cfg = load(write(tmp_path, "zones: {site.lan: {records: {www: {TXT: 010, ttl: 0300}}}}"))
    txt = cfg.zones[0].get(names.from_text("www.site.lan."), 16)
    assert txt.rdatas == (b"\x03010",)
    assert txt.ttl == 300


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path) -> None:
    path = write(tmp_path, BOMB)
    assert len(BOMB) < 700
    with pytest.raises(ConfigError, match="aliases expand this document beyond"):
        load(path)


def test_an_alias_that_contains_itself_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        load(write(tmp_path, "a: &a [1, *a]\nzones: {site.lan: {}}\n"))


def test_modest_aliases_still_work(tmp_path) -> None:
    cfg = load(write(tmp_path, """
        defaults: {check: &quick {type: tcp, port: 80, interval: 200ms, timeout: 100ms}}
        zones:
          site.lan:
            pools:
              web: {check: *quick, members: [192.0.2.1]}
              api: {check: {<<: *quick, port: 8080}, members: [192.0.2.2]}
    """))
    ports = {names.to_text(p.name): p.members[0].check.port for p in cfg.pools}
    assert ports == {"web.site.lan.": 80, "api.site.lan.": 8080}


def test_a_long_bad_value_is_quoted_briefly(tmp_path) -> None:
    value = "x" * 5_000
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, f"zones: {{site.lan: {{records: {{www: {{A: {value}}}}}}}}}\n"))
    assert len(caught.value.message) < 300
    assert "(5002 characters)" in str(caught.value)


def test_source_text_is_the_written_form_of_numbers_only() -> None:
    data = yaml_file.load("a: 010\nb: 1.10\nc: text\nd: true\n", "x.yaml")
    assert [yaml_file.source_text(v) for v in data.values()] == ["010", "1.10", "text", "True"]
    assert data["a"] == 8 and data["b"] == 1.1
