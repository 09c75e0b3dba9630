"""The suite's own guard: what makes a test fail when an event loop logs an unhandled
exception (the autouse fixture in conftest.py) does see such exceptions."""

from __future__ import annotations

import asyncio
import gc

import pytest

from tests.support import loop_errors


@pytest.mark.makes_loop_errors
def test_an_exception_no_task_retrieved_is_seen() -> None:
    async def boom() -> None:
        raise RuntimeError("lost")

    async def main() -> None:
        asyncio.get_running_loop().create_task(boom())
        await asyncio.sleep(0.01)

    with loop_errors() as logged:
        asyncio.run(main())
        gc.collect()
    assert any("lost" in line for line in logged)


@pytest.mark.makes_loop_errors
def test_an_exception_in_a_callback_is_seen() -> None:
    def fail() -> None:
        raise ValueError("in a callback")

    async def main() -> None:
        asyncio.get_running_loop().call_soon(fail)
        await asyncio.sleep(0.01)

    with loop_errors() as logged:
        asyncio.run(main())
    assert any("in a callback" in line for line in logged)
