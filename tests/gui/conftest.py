"""Fixtures of the window tests: a qasync loop driven by pytest-qt's waits, and the demo
pair of user agents (Alice and Bob on loopback, demo CA)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import qasync

from messenger.demo import ALICE, BOB, Demo, start_demo


@pytest.fixture
def qloop(qapp) -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop on Qt's event loop: every qtbot wait also runs the agents."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    executor = ThreadPoolExecutor(2, thread_name_prefix="test-executor")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
    executor.shutdown(wait=True)


def run(qtbot, coro: Coroutine[Any, Any, Any], timeout: int = 15000) -> Any:
    """Run a coroutine on the loop, waiting (on Qt events) until it is done."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()


@pytest.fixture
def arun(qloop, qtbot):
    """``arun(coro)`` runs a coroutine to its end while Qt (and so the agents) run."""

    def runner(coro: Coroutine[Any, Any, Any], timeout: int = 15000) -> Any:
        return run(qtbot, coro, timeout)

    return runner


@pytest.fixture
def demo(arun, tmp_path) -> Iterator[Demo]:
    pair = arun(start_demo(tmp_path))
    yield pair
    arun(pair.stop())


__all__ = ["ALICE", "BOB"]
