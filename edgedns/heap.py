"""The Python heap and the cyclic garbage collector, around big long-lived data.

Zone data is hundreds of thousands of long-lived, acyclic objects (refcounting frees them
when a reload replaces them). Each full collection walks every tracked object while holding
the GIL: with a 100,000-record zone, 100-300 ms during which nothing else runs, and while
a big zone loads, collections that run again and again as it grows. So loading pauses the
collector, and data in place is handed to its permanent generation.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile; nests (only the outermost resumes it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def keep() -> None:
    """Hand every object alive now to the collector's permanent generation, so later
    collections do not walk it. Called once new data is in place (start-up, each reload).

    The cost: cyclic garbage that exists at that moment (made while the collector was paused
    for a reload) is frozen too and never collected. The query path makes none (bytes,
    tuples, dicts) and asyncio avoids cycles, so this stays small; a reload every few seconds
    for weeks would show it as slow growth in RSS."""
    gc.freeze()


def release(mappings: list[dict]) -> None:
    """Empty `mappings` an item at a time (on a worker thread). Dropping a big dict frees
    everything in it within one C call that holds the GIL; popping item by item runs Python
    between frees, so the event loop thread gets the GIL back every switch interval."""
    for mapping in mappings:
        while mapping:
            mapping.popitem()
