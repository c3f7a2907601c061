"""Run one Faust worker with the pipeline installed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from streams import collector
from streams.app import build_runtime
from streams.runtime import Runtime
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    """Faust's worker, running the runtime's start hooks once the app knows it is in a worker."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(runtime.app, **kwargs)
        self.runtime = runtime

    async def on_start(self) -> None:
        self.app.in_worker = True  # what Faust's on_start sets first; the hooks build the consumer
        hooks = self.runtime.on_worker_start
        while hooks:  # once: Faust calls on_start again when it restarts the worker
            hooks.pop(0)()
        await super().on_start()


def use_event_loop(name: str) -> None:
    """uvloop's libuv loop costs less CPU per callback than asyncio's: a worker steps through
    tens of Kafka records per post (futures, callbacks, task switches), a third of its CPU on
    asyncio's own loop with every agent. Set before Faust makes its loops (the consumer thread's too)."""
    if name == "uvloop":
        import uvloop  # only where chosen: settings checked that it is installed

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(None)  # the standard library's


def run_worker(settings: Settings) -> int:
    log.info("settings: %s", settings.describe())
    use_event_loop(settings.event_loop)
    settings.pseudonym_key()  # refuses to start without a key before anything reaches the broker
    ensure_topics(settings)
    runtime = build_runtime(settings)
    # Last before the loop starts: what was built so far lives as long as the worker.
    collector.tune(settings.gc_young_threshold, runtime.metrics.gc_pause)
    worker = Worker(runtime, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
    return 0
