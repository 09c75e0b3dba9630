"""etcd documents as config (`edgedns.config.documents`): how documents make a tree, how a
bootstrap file merges with them, and errors that name the etcd key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgedns import config as config_mod
from edgedns.config import documents
from edgedns.config.documents import Documents
from edgedns.config.reader import ConfigError

BOOT = "listen: [127.0.0.1:5399]\nsource: {etcd: {endpoints: [127.0.0.1:2379]}}\n"


def load(tmp_path: Path, docs: dict[str, str], boot: str = BOOT) -> config_mod.Config:
    path = tmp_path / "bootstrap.yaml"
    path.write_text(boot)
    return config_mod.load(path, documents=Documents(7, docs))


def test_zones_and_settings_come_from_the_documents(tmp_path: Path) -> None:
    config = load(tmp_path, {"/edgedns/zones/site.lan": "records: {www: {A: 192.0.2.1}}",
                             "/edgedns/settings": "query_log: true"})
    assert [str(e) for e in config.listen] == ["127.0.0.1:5399"]  # the bootstrap's
    assert config.query_log and len(config.zones) == 1
    assert config.etcd is not None and config.etcd.endpoints == ("http://127.0.0.1:2379",)
    assert config.documents is not None and config.documents.revision == 7


def test_an_error_in_a_zone_names_its_key_and_the_path_inside(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"/edgedns/zones/site.lan": "records: {www: {A: nope}}"})
    assert str(info.value).startswith("etcd:/edgedns/zones/site.lan: records.www.A: ")


def test_an_error_in_the_settings_names_that_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"/edgedns/zones/a.lan": "{}", "/edgedns/settings": "query_log: 7"})
    assert str(info.value).startswith("etcd:/edgedns/settings: query_log: ")


def test_yaml_errors_and_strangers_under_the_prefix_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^etcd:/edgedns/zones/a\.lan: not valid YAML"):
        load(tmp_path, {"/edgedns/zones/a.lan": "records: [unclosed"})
    with pytest.raises(ConfigError, match=r"^etcd:/edgedns/notes: not an edgedns document"):
        load(tmp_path, {"/edgedns/zones/a.lan": "{}", "/edgedns/notes": "hello"})


def test_a_bootstrap_file_may_not_list_zones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {}, BOOT + "zones: {a.lan: {}}\n")
    assert info.value.path == "zones" and "edgedns push" in info.value.message


def test_push_refuses_zones_read_from_files_on_this_node() -> None:
    with pytest.raises(ConfigError) as info:
        documents.from_tree("/edgedns/", {"zones": {"a.lan": {"file": "a.zone"}}}, "f.yaml")
    assert info.value.path == "zones.a.lan.file"


def test_push_splits_a_file_into_zone_documents_and_shared_settings() -> None:
    made, left = documents.from_tree("/x/", {"listen": ["127.0.0.1:53"], "query_log": True,
                                             "zones": {"a.lan": {}, "b.lan": None}}, "f")
    assert made == {"/x/zones/a.lan": "{}\n", "/x/zones/b.lan": "{}\n",
                    "/x/settings": "query_log: true\n"}
    assert left == ["listen"]


def test_a_memo_rebuilds_only_the_zone_whose_document_changed(tmp_path: Path) -> None:
    memo = documents.Memo()
    docs = {f"/edgedns/zones/z{i}.lan": f"records: {{www: {{A: 192.0.2.{i}}}}}"
            for i in range(1, 4)}
    path = tmp_path / "bootstrap.yaml"
    path.write_text(BOOT)
    first = config_mod.load(path, documents=Documents(1, docs), memo=memo)
    assert memo.reused == 0
    docs["/edgedns/zones/z2.lan"] = "records: {www: {A: 192.0.2.99}}"
    second = config_mod.load(path, documents=Documents(2, docs), memo=memo)
    assert memo.reused == 2
    assert [a is b for a, b in zip(first.zones, second.zones, strict=True)] == [
        True, False, True]
    docs["/edgedns/settings"] = "defaults: {check: {interval: 1s}}"  # may change any pool
    config_mod.load(path, documents=Documents(3, docs), memo=memo)
    assert memo.reused == 0
