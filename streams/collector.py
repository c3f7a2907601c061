"""The interpreter's cyclic garbage collector, set for a long-running worker.

CPython collects its youngest generation each time 700 more container objects
are alive than at the last collection. A worker keeps a batch or two of posts
in flight (their records, futures, Faust events: thousands of objects), so it
collected about 20 times a second, promoted whatever was in flight to the older
generations, and so ran a full collection every 10-15 s with every agent:
each scanned the whole heap (some 250,000 objects: the libraries' own, the
model's, the tables'), 100-220 ms with the GIL held, which stopped the event
loop and the inference thread at once and made the slowest posts' latency.

The worker therefore freezes what it built at start (modules, the model, the
app: ``gc.freeze`` takes them out of every later scan) and collects its young
generation every ``STREAMS_GC_YOUNG_THRESHOLD`` objects instead (10,000: each
collection then takes about 10 ms; the older generations keep Python's ratios).
Garbage without cycles is freed by reference counting at once either way.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram


def tune(young_threshold: int, pauses: Histogram | None = None) -> None:
    """Freeze the objects alive now, collect the young generation every ``young_threshold``
    objects, and time each collection into ``pauses`` (labelled by generation)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    if pauses is not None:
        gc.callbacks.append(_timer(pauses))


def _timer(pauses: Histogram) -> Any:
    started = [0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

    return on_collection
