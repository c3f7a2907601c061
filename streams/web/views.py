"""The worker's HTTP views: Prometheus metrics, health, and the profile and trend queries.

The views see the agents only through the seams of streams.runtime
(``ProfileQueries``, ``TrendQueries``), handed in by the composition root.
The query views hold user data: with STREAMS_WEB_TOKEN set they answer only a
request that carries ``Authorization: Bearer <token>`` (and pass it on when they
ask the other workers). /metrics and /health stay open for scrapers and probes.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from streams.rebalance import update_table_rows
from streams.runtime import ProfileQueries, Runtime, TrendQueries
from streams.terms import KINDS

MAX_TOP_K = 1000
# An agent crash within this many seconds makes /health answer "degraded" (503).
CRASH_WINDOW_S = 300.0


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


def _ident(url: str | URL) -> tuple[str, int]:
    parsed = URL(str(url))
    return parsed.host or "", parsed.port or 80


def authorized(runtime: Runtime, request: Request) -> bool:
    """True when no token is set, or the request carries it as a bearer token (compared in constant time)."""
    token = runtime.settings.web_token
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def refused(view: View) -> Response:
    return view.json({"error": "this view needs Authorization: Bearer <STREAMS_WEB_TOKEN>"}, status=401)


async def from_other_workers(runtime: Runtime, table_name: str, request: Request) -> list[Any]:
    """The JSON answers of the other workers that own partitions of the table, asked with local=1."""
    app = runtime.app
    me = _ident(app.conf.canonical_url)
    answers = []
    for host in app.router.table_metadata(table_name):
        if _ident(host) == me:
            continue
        url = URL(str(host)).with_path(request.url.path).with_query({**request.query, "local": "1"})
        headers = {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
        async with app.http_client.get(url, headers=headers) as response:
            if response.status == 200:
                answers.append(await response.json())
    return answers


def install_trend_views(runtime: Runtime, trends: TrendQueries) -> None:
    app = runtime.app

    @app.page("/trends/top")
    class TopTrendsView(View):
        """The top-K terms of a kind in the latest closed tumbling window, over every worker."""

        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return refused(self)
            kind = request.query.get("kind", "hashtag")
            try:
                k = int(request.query.get("k", "20"))
            except ValueError:
                k = -1
            if kind not in KINDS or not 1 <= k <= MAX_TOP_K:
                return self.json({"error": f"kind must be one of {', '.join(KINDS)}; k 1 to {MAX_TOP_K}"}, status=400)
            entries = trends.top(kind, k)
            if request.query.get("local") != "1":
                for answer in await from_other_workers(runtime, trends.table.name, request):
                    entries += answer["top"]
                newest = max((e["window_end"] for e in entries), default=None)
                entries = sorted((e for e in entries if e["window_end"] == newest), key=lambda e: -e["count"])[:k]
            return self.json({"kind": kind, "top": entries})

    @app.page("/trends/term")
    class TermView(View):
        """One term's open panes and recent closed windows (kind and term as query parameters)."""

        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return refused(self)
            kind, term = request.query.get("kind", "hashtag"), request.query.get("term", "")
            view = trends.term(kind, term)
            if view is not None:
                return self.json(view)
            if request.query.get("local") != "1":
                answers = await from_other_workers(runtime, trends.table.name, request)
                if answers:
                    return self.json(answers[0])
            return self.json({"error": f"no recent windows for {kind} {term!r}"}, status=404)


def install_views(runtime: Runtime, profiles: ProfileQueries | None, trends: TrendQueries | None) -> None:
    app = runtime.app

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            update_lag(runtime)
            update_table_rows(runtime.app, runtime.metrics)
            body = generate_latest(runtime.metrics.registry)
            return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    if profiles is not None:
        table = profiles.table
        profile_of = profiles.profile

        @app.page("/profiles/{user}/")
        class ProfileView(View):
            """One profile by pseudonymous id, served by the worker that owns its partition."""

            async def get(self, request: Request, *args: Any, **params: Any) -> Response:
                if not authorized(runtime, request):  # before routing: a refused request goes nowhere
                    return refused(self)
                return await self.routed(request, *args, **params)

            @app.table_route(table=table, match_info="user")
            async def routed(self: View, request: Request, *args: Any, **params: Any) -> Response:
                user = str(params["user"])
                profile = profile_of(user)
                if profile is None:
                    return self.json({"error": f"no profile for {user}"}, status=404)
                return self.json(profile)

    if trends is not None:
        install_trend_views(runtime, trends)

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            consumer = app.consumer
            assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment())
            last = runtime.progress.last_batch_at
            crashes = runtime.crashes
            # Without posts the stream is idle, not unhealthy: health is about being in
            # the group with partitions to consume, and agents that do not crash.
            if app.rebalancing:
                status = "rebalancing"
            elif crashes.recent(time.time(), CRASH_WINDOW_S):
                status = "degraded"
            else:
                status = "ok"
            return self.json(
                {
                    "status": status,
                    "model": runtime.model.manifest.tag,
                    "assigned": assigned,
                    "last_batch_age_s": round(time.time() - last, 3) if last else None,
                    "agent_crashes": dict(crashes.counts),
                    "last_crash_age_s": round(time.time() - crashes.last_at, 3) if crashes.last_at else None,
                },
                status=200 if status == "ok" else 503,
            )
