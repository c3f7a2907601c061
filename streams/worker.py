"""Run one Faust worker with the pipeline installed."""

from __future__ import annotations

import logging

import faust

from streams.app import build_runtime
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    log.info("settings: %s", settings.describe())
    ensure_topics(settings)
    runtime = build_runtime(settings)
    worker = faust.Worker(runtime.app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
    return 0
