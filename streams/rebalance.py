"""How long rebalances take, and how big the recovered tables are.

A Faust sensor times the two phases of each rebalance: joining the group until
the assignment arrives, then table recovery from the changelogs until the worker
resumes processing. Table sizes are read at scrape time.
"""

from __future__ import annotations

import time
from typing import Any

import faust
from faust.types import AppT

from streams.metrics import Metrics
from streams.runtime import RebalanceClock


class RebalanceTimer(faust.Sensor):
    def __init__(self, clock: RebalanceClock, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.metrics = metrics

    def on_rebalance_start(self, app: AppT) -> dict[str, float]:
        self.clock.mark(time.time())
        return {"start": time.monotonic()}

    def on_rebalance_return(self, app: AppT, state: dict[str, float]) -> None:
        state["assigned"] = time.monotonic()
        self.metrics.rebalance_seconds.labels("join").observe(state["assigned"] - state["start"])

    def on_rebalance_end(self, app: AppT, state: dict[str, float]) -> None:
        # A rebalance that restarts before its assignment came back has no recovery phase.
        assigned = state.get("assigned", state["start"])
        self.metrics.rebalance_seconds.labels("recovery").observe(time.monotonic() - assigned)
        self.metrics.rebalances.inc()


def update_table_rows(app: faust.App, metrics: Metrics) -> None:
    """Rows of each table held by this worker (its active partitions, and standbys)."""
    for table in app.tables.values():
        metrics.table_rows.labels(table.name).set(len(table.data))
