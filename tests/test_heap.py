"""The collector helpers: pausing nests, and releasing empties big mappings bit by bit."""

from __future__ import annotations

import gc

from edgedns import heap


def test_pausing_nests_and_only_the_outermost_resumes() -> None:
    assert gc.isenabled()
    with heap.collector_paused():
        with heap.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause must not resume collection early
    assert gc.isenabled()


def test_a_pause_ends_even_when_the_work_fails() -> None:
    try:
        with heap.collector_paused():
            raise RuntimeError("load failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_release_empties_every_mapping() -> None:
    mappings = [{i: (i,) for i in range(1000)}, {"a": 1}, {}]
    heap.release(mappings)
    assert mappings == [{}, {}, {}]
