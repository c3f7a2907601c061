"""The worker's inference thread: one thread for the model, urgent work first.

A micro-batch's predictions are urgent: every post of the batch, and every
batch behind it, waits for them. A flagged post's explanation is not: it costs
up to OCCLUDED_WORDS more model rows (about six posts' worth), and run inside
its batch it held back every post after it. So the thread takes work by
priority: submitted predictions (``submit``, what ``loop.run_in_executor``
uses) before deferred explanations (``submit_deferred``), each in the order
submitted. Work already running is never interrupted, so a batch waits at most
one flagged post's explanation.

One thread, not two: ONNX Runtime parallelises inside a run, and a second
concurrent run would only compete for the same cores.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

URGENT = 0
DEFERRED = 1
_STOP = 2  # after every piece of work submitted before shutdown


@dataclass(order=True)
class _Work:
    priority: int
    sequence: int
    run: Callable[[], Any] | None = field(compare=False)
    future: Future[Any] | None = field(compare=False)


class InferenceThread(Executor):
    """A one-thread executor that runs urgent work before deferred work."""

    def __init__(self, name: str = "inference") -> None:
        self._queue: queue.PriorityQueue[_Work] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._stopped = False
        # A daemon: work still queued at exit has no acknowledged output, so nothing is lost.
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(URGENT, fn, args, kwargs)

    def submit_deferred(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` once no urgent work waits."""
        return self._put(DEFERRED, fn, args, kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if not self._stopped:
                self._stopped = True
                if cancel_futures:
                    self._cancel_queued()
                self._queue.put(_Work(_STOP, next(self._sequence), None, None))
        if wait:
            self._thread.join()

    def _put(self, priority: int, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the inference thread is shut down: no new work")
            self._queue.put(_Work(priority, next(self._sequence), lambda: fn(*args, **kwargs), future))
        return future

    def _cancel_queued(self) -> None:
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            if work.future is not None:
                work.future.cancel()

    def _serve(self) -> None:
        while True:
            work = self._queue.get()
            if work.run is None or work.future is None:
                return
            if not work.future.set_running_or_notify_cancel():
                continue
            try:
                result = work.run()
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the future
                work.future.set_exception(exc)
            else:
                work.future.set_result(result)
