"""The worker's garbage collector settings: startup objects frozen, young collections spaced, pauses timed."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams import collector
from streams.metrics import Metrics


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


def collections_counted(metrics: Metrics, generation: str) -> float:
    return metrics.registry.get_sample_value("streams_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_startup_objects_are_frozen_and_young_collections_spaced(restored_collector: None) -> None:
    built_at_start = [{"kept": i} for i in range(1000)]
    before = gc.get_threshold()
    collector.tune(10_000)
    assert gc.get_freeze_count() >= len(built_at_start)  # out of every later scan
    assert gc.get_threshold()[0] == 10_000
    assert gc.get_threshold()[1:] == before[1:]  # the older generations keep Python's ratios


def test_each_collection_is_timed_by_generation(restored_collector: None) -> None:
    metrics = Metrics()
    collector.tune(10_000, metrics.gc_pause)
    gc.collect(0)
    gc.collect(2)
    assert collections_counted(metrics, "0") >= 1
    assert collections_counted(metrics, "2") >= 1
    assert (metrics.registry.get_sample_value("streams_gc_pause_seconds_sum", {"generation": "2"}) or 0.0) > 0
