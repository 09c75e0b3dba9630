"""Drained members: the state file (atomic, survives restarts, a bad one never stops
serving) and where it lives by default."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edgedns.pools import drain
from edgedns.pools.drain import DrainStore, default_state_dir


def test_a_drain_is_written_before_it_counts_and_read_back(tmp_path: Path) -> None:
    store = DrainStore.load(tmp_path / "state")
    assert store.members == set()
    assert store.set("web.site.lan.", "10.0.0.2", True) is True
    assert store.set("web.site.lan.", "10.0.0.2", True) is False  # already
    assert store.set("web.site.lan.", "10.0.0.1", True) is True
    saved = json.loads((tmp_path / "state" / "drained.json").read_text())
    assert saved == {"web.site.lan.": ["10.0.0.1", "10.0.0.2"]}
    assert DrainStore.load(tmp_path / "state").members == {
        ("web.site.lan.", "10.0.0.1"), ("web.site.lan.", "10.0.0.2")}
    store.set("web.site.lan.", "10.0.0.1", False)
    assert DrainStore.load(tmp_path / "state").members == {("web.site.lan.", "10.0.0.2")}
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["drained.json"]  # no temp left


def test_an_unreadable_state_file_starts_with_none_drained(tmp_path: Path, caplog) -> None:
    (tmp_path / "drained.json").write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="edgedns.pools.drain"):
        assert DrainStore.load(tmp_path).members == set()
    assert "cannot read drained members" in caplog.text


def test_a_change_that_cannot_be_kept_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    store = DrainStore.load(blocker)
    with pytest.raises(OSError):
        store.set("web.site.lan.", "10.0.0.2", True)
    assert store.members == set()


def test_the_default_state_dir_is_systemds_then_roots_then_the_users(monkeypatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/edgedns:/var/lib/other")
    assert default_state_dir() == Path("/var/lib/edgedns")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setattr(drain.os, "geteuid", lambda: 0)
    assert default_state_dir() == Path("/var/lib/edgedns")
    monkeypatch.setattr(drain.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", "/home/op/.state")
    assert default_state_dir() == Path("/home/op/.state/edgedns")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local" / "state" / "edgedns"
