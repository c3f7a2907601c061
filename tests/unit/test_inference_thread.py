"""The inference thread runs a batch's predictions before flagged posts' explanations."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError

import pytest

from streams.inference.thread import InferenceThread


def busy(thread: InferenceThread) -> threading.Event:
    """Holds the thread in a piece of work until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5)

    thread.submit(hold)
    assert started.wait(5)
    return release


def test_urgent_work_goes_before_deferred_work_each_in_the_order_submitted() -> None:
    thread = InferenceThread()
    ran: list[str] = []
    release = busy(thread)
    futures = [
        thread.submit_deferred(ran.append, "explain 1"),
        thread.submit(ran.append, "predict 1"),
        thread.submit_deferred(ran.append, "explain 2"),
        thread.submit(ran.append, "predict 2"),
    ]
    release.set()
    for future in futures:
        future.result(5)
    assert ran == ["predict 1", "predict 2", "explain 1", "explain 2"]
    thread.shutdown()


def test_results_and_errors_reach_the_event_loop() -> None:
    thread = InferenceThread()

    def fail() -> None:
        raise ValueError("bad row")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(thread, sum, [1, 2, 3]) == 6
        assert await asyncio.wrap_future(thread.submit_deferred(max, 4, 9)) == 9
        with pytest.raises(ValueError, match="bad row"):
            await asyncio.wrap_future(thread.submit_deferred(fail))
        assert await loop.run_in_executor(thread, min, 4, 9) == 4  # the thread outlives a failure

    asyncio.run(main())
    thread.shutdown()


def test_shutdown_finishes_queued_work_or_cancels_it_and_refuses_more() -> None:
    thread = InferenceThread()
    release = busy(thread)
    kept = thread.submit_deferred(str, 1)
    threading.Timer(0.05, release.set).start()
    thread.shutdown(wait=True)
    assert kept.result(0) == "1"
    with pytest.raises(RuntimeError, match="shut down"):
        thread.submit(str, 2)

    cancelled = InferenceThread()
    release = busy(cancelled)
    dropped = cancelled.submit(str, 3)
    cancelled.shutdown(wait=False, cancel_futures=True)
    release.set()
    with pytest.raises(CancelledError):
        dropped.result(5)
