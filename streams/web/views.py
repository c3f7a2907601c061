"""The worker's HTTP views: Prometheus metrics, health, and the profile and trend queries.

The views see the agents only through the seams of streams.runtime
(``ProfileQueries``, ``TrendQueries``), handed in by the composition root.
The query views hold user data: with STREAMS_WEB_TOKEN set they answer only a
request that carries ``Authorization: Bearer <token>`` (and pass it on when they
ask the other workers). /metrics and /health's status stay open for scrapers and
probes; /health's details (partitions, model, crashes) need the token.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import aiohttp
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from streams.rebalance import update_table_rows
from streams.runtime import ProfileQueries, Runtime, TrendQueries
from streams.terms import KINDS
from streams.topics import key_partition

MAX_TOP_K = 1000
# How long a query waits for another worker: a dead one stays in the assignment until the group
# rebalances (up to the session timeout), and the answer must not hang that long.
PEER_TIMEOUT_S = 3.0
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
    return given.isascii() and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def refused(view: View, request: Request) -> Response:
    if not request.headers.get("Authorization", "").isascii():
        return view.json({"error": "the Authorization header must be ASCII: Bearer <STREAMS_WEB_TOKEN>"}, status=400)
    return view.json({"error": "this view needs Authorization: Bearer <STREAMS_WEB_TOKEN>"}, status=401)


def forwarded(request: Request) -> dict[str, str]:
    return {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}


async def ask_worker(runtime: Runtime, host: str, request: Request) -> tuple[int, Any]:
    """(status, JSON answer) of another worker asked ``request`` with local=1; 503 when it does not answer."""
    url = URL(str(host)).with_path(request.url.path).with_query({**request.query, "local": "1"})
    try:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
        async with runtime.app.http_client.get(url, headers=forwarded(request), timeout=timeout) as response:
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # A peer that died is still in the assignment until the group rebalances.
        return 503, {"error": f"worker {_ident(host)[0]}:{_ident(host)[1]} did not answer: {type(exc).__name__}"}


async def from_other_workers(runtime: Runtime, table_name: str, request: Request) -> tuple[list[Any], list[str]]:
    """The JSON answers of the other workers that own partitions of the table, asked with local=1;
    and the workers that did not answer."""
    app = runtime.app
    me = _ident(app.conf.canonical_url)
    answers, missing = [], []
    for host in app.router.table_metadata(table_name):
        if _ident(host) == me:
            continue
        status, answer = await ask_worker(runtime, host, request)
        if status == 200:
            answers.append(answer)
        elif status >= 500:
            missing.append(str(host))
    return answers, missing


def owner_of(runtime: Runtime, table: Any, key: bytes) -> str | None:
    """The URL of the worker whose partition of ``table`` holds ``key`` as its bytes are stored
    (the producer's partitioner over the raw key, as the agents send it); None when unknown."""
    topic = table.changelog_topic.get_topic_name()
    partition = key_partition(key, runtime.settings.partitions)
    for host, topics in runtime.app.router.table_metadata(table.name).items():
        if partition in topics.get(topic, []):
            return str(host)
    return None


def install_trend_views(runtime: Runtime, trends: TrendQueries) -> None:
    app = runtime.app

    @app.page("/trends/top")
    class TopTrendsView(View):
        """The top-K terms of a kind in the latest closed tumbling window, over every worker."""

        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return refused(self, request)
            kind = request.query.get("kind", "hashtag")
            try:
                k = int(request.query.get("k", "20"))
            except ValueError:
                k = -1
            if kind not in KINDS or not 1 <= k <= MAX_TOP_K:
                return self.json({"error": f"kind must be one of {', '.join(KINDS)}; k 1 to {MAX_TOP_K}"}, status=400)
            entries = trends.top(kind, k)
            answer: dict[str, Any] = {"kind": kind}
            if request.query.get("local") != "1":
                answers, missing = await from_other_workers(runtime, trends.table.name, request)
                for other in answers:
                    entries += other["top"]
                newest = max((e["window_end"] for e in entries), default=None)
                entries = sorted((e for e in entries if e["window_end"] == newest), key=lambda e: -e["count"])[:k]
                if missing:  # a partial answer says so rather than failing
                    answer["unreachable_workers"] = missing
            if not entries and (note := trends.empty_note()) is not None:
                answer["note"] = note  # empty because the stream is dated before the windows
            return self.json({**answer, "top": entries})

    @app.page("/trends/term")
    class TermView(View):
        """One term's open panes and recent closed windows (kind and term as query parameters)."""

        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return refused(self, request)
            kind, term = request.query.get("kind", "hashtag"), request.query.get("term", "")
            view = trends.term(kind, term)
            if view is not None:
                return self.json(view)
            missing: list[str] = []
            if request.query.get("local") != "1":
                answers, missing = await from_other_workers(runtime, trends.table.name, request)
                if answers:
                    return self.json(answers[0])
            if missing:
                error = {"error": "not here, and a worker did not answer", "unreachable_workers": missing}
                return self.json(error, status=503)
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
            """One profile by pseudonymous id, served by the worker that owns its partition.

            Routed by the key's bytes as the table stores them (Faust's ``table_route`` hashes
            the key serialised as JSON, quotes and all: another partition for most users)."""

            async def get(self, request: Request, *args: Any, **params: Any) -> Response:
                if not authorized(runtime, request):  # before routing: a refused request goes nowhere
                    return refused(self, request)
                user = str(params["user"])
                owner = owner_of(runtime, table, user.encode())
                if (
                    request.query.get("local") != "1"
                    and owner is not None
                    and _ident(owner) != _ident(app.conf.canonical_url)
                ):
                    status, answer = await ask_worker(runtime, owner, request)
                    return self.json(answer, status=status)
                profile = profile_of(user)
                if profile is None:
                    return self.json({"error": f"no profile for {user}"}, status=404)
                return self.json(profile)

    if trends is not None:
        install_trend_views(runtime, trends)

    @app.page("/health")
    class HealthView(View):
        """The worker's status for probes (open); with STREAMS_WEB_TOKEN set, its details (model,
        partitions, crashes: the topology) only to a request that carries the token."""

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
            code = 200 if status == "ok" else 503
            if runtime.settings.web_token and not authorized(runtime, request):
                return self.json({"status": status}, status=code)
            return self.json(
                {
                    "status": status,
                    "model": runtime.model.manifest.tag,
                    "assigned": assigned,
                    "last_batch_age_s": round(time.time() - last, 3) if last else None,
                    "agent_crashes": dict(crashes.counts),
                    **({"trends": trends.health()} if trends is not None else {}),
                    "last_crash_age_s": round(time.time() - crashes.last_at, 3) if crashes.last_at else None,
                },
                status=code,
            )
