"""The worker's HTTP views: Prometheus metrics and health."""

from __future__ import annotations

import time
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import Runtime
from streams.profiles.fold import published_profile


def update_lag(runtime: Runtime) -> None:
    """Lag = end offset - committed offset of each assigned partition, from Faust's monitor.

    Computed at scrape time, so it is as fresh as the scrape. Partitions this
    worker no longer owns are dropped, so a rebalance leaves no stale series.
    """
    monitor = runtime.app.monitor
    gauge = runtime.metrics.consumer_lag
    gauge.clear()
    assigned = runtime.app.consumer.assignment()
    for tp, end in dict(monitor.tp_end_offsets).items():
        if tp in assigned:
            committed = monitor.tp_committed_offsets.get(tp, 0)
            gauge.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))


def install_views(runtime: Runtime) -> None:
    app = runtime.app

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            update_lag(runtime)
            body = generate_latest(runtime.metrics.registry)
            return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    if runtime.profiles is not None:
        table = runtime.profiles.table

        @app.page("/profiles/{user}/")
        class ProfileView(View):
            """One profile by pseudonymous id, served by the worker that owns its partition."""

            @app.table_route(table=table, match_info="user")
            async def get(self: View, request: Request, *args: Any, **params: Any) -> Response:
                user = str(params["user"])
                profile = table.get(user)
                if profile is None:
                    return self.json({"error": f"no profile for {user}"}, status=404)
                return self.json(published_profile(profile))

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            consumer = app.consumer
            assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment())
            last = runtime.last_batch_at
            # Without posts the stream is idle, not unhealthy: health is about
            # being in the group with partitions to consume.
            healthy = not app.rebalancing
            return self.json(
                {
                    "status": "ok" if healthy else "rebalancing",
                    "model": runtime.model.manifest.tag,
                    "assigned": assigned,
                    "last_batch_age_s": round(time.time() - last, 3) if last else None,
                },
                status=200 if healthy else 503,
            )
