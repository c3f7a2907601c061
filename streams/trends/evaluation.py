"""Planted-burst streams, a brute-force reference, and the detector's scores.

Used by ``benchmarks/trends.py`` (through the real broker and worker) and by
the tests. The generator draws background hashtags from a Zipf law, with a
daily rhythm in the post rate, plants bursts of known onset, length and size
(a multiple of the term's baseline rate) and dates posts slightly out of order
(within the grace period), as clients with skewed clocks and retries do.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams import settings
from streams.topics import key_partition
from streams.trends import windows as trend_windows
from streams.trends.state import Mention, TermState, new_state
from streams.trends.windows import WindowSpec

DAY_MS = 86_400_000
FILLER = (
    "what a day", "cannot believe this", "watching now", "thoughts on this", "so good", "big news",
    "this is wild", "love it", "not sure about this", "here we go",
)  # fmt: skip


@dataclass(frozen=True)
class Burst:
    term: str
    onset_ms: int  # a window start
    windows: int
    multiplier: float
    baseline: float  # expected count per window before the burst


@dataclass(frozen=True)
class StreamShape:
    hours: float = 2.0
    posts_per_minute: float = 200.0
    vocabulary: int = 100
    zipf_s: float = 1.0
    tags_per_post: int = 4
    bursts: int = 20
    multipliers: tuple[float, ...] = (3.0, 4.0, 6.0, 10.0)
    burst_windows: tuple[int, int] = (3, 8)
    min_burst_baseline: float = 10.0  # per window: 3x of less is lost in Poisson noise
    day_amplitude: float = 0.4
    jitter_ms: int = 5_000  # how far a post may be dated before its position in the stream
    users: int = 5_000


@dataclass
class GeneratedStream:
    posts: list[dict[str, Any]]
    bursts: list[Burst]
    start_ms: int
    end_ms: int


def _zipf_weights(n: int, s: float) -> list[float]:
    raw = [1 / (rank**s) for rank in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def _rate(shape: StreamShape, t_ms: int) -> float:
    """Posts per minute at a time of day: a sinusoid peaking in the evening."""
    phase = 2 * math.pi * ((t_ms % DAY_MS) / DAY_MS - 0.5)
    return shape.posts_per_minute * (1 + shape.day_amplitude * math.sin(phase))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def generate(shape: StreamShape, start_ms: int, window_ms: int, seed: int = 7) -> GeneratedStream:
    rng = random.Random(seed)
    tags = [f"tag{rank:03d}" for rank in range(1, shape.vocabulary + 1)]
    weights = _zipf_weights(shape.vocabulary, shape.zipf_s)
    windows = int(shape.hours * 3_600_000 // window_ms)
    bursts = _plan_bursts(rng, shape, tags, weights, start_ms, window_ms, windows)
    posts: list[dict[str, Any]] = []
    for w in range(windows):
        window_start = start_ms + w * window_ms
        expected = _rate(shape, window_start) * window_ms / 60_000
        for _ in range(_poisson(rng, expected)):
            chosen = list(dict.fromkeys(rng.choices(tags, weights, k=shape.tags_per_post)))
            posts.append(_post(rng, shape, window_start + rng.randrange(window_ms), chosen))
        for burst in bursts:
            if burst.onset_ms <= window_start < burst.onset_ms + burst.windows * window_ms:
                extra = _poisson(
                    rng,
                    (burst.multiplier - 1) * burst.baseline * _rate(shape, window_start) / _rate(shape, burst.onset_ms),
                )
                posts += [
                    _post(rng, shape, window_start + rng.randrange(window_ms), [burst.term]) for _ in range(extra)
                ]
    posts.sort(key=lambda p: p["_nominal"])
    for index, post in enumerate(posts):
        post["id"] = f"s{seed}-{index:07d}"
        post["created_at"] = post.pop("_nominal") - rng.randrange(shape.jitter_ms + 1)
    return GeneratedStream(posts, bursts, start_ms, start_ms + windows * window_ms)


def _plan_bursts(
    rng: random.Random, shape: StreamShape, tags: list[str], weights: list[float], start_ms: int, window_ms: int,
    windows: int,
) -> list[Burst]:  # fmt: skip
    per_window = [w * shape.tags_per_post * shape.posts_per_minute * window_ms / 60_000 for w in weights]
    candidates = [(tag, rate) for tag, rate in zip(tags, per_window, strict=True) if rate >= shape.min_burst_baseline]
    warm_up = 20  # windows before the first burst: the baselines need history
    busy: dict[str, list[tuple[int, int]]] = defaultdict(list)
    bursts: list[Burst] = []
    attempts = 0
    while len(bursts) < shape.bursts and attempts < 10_000 and candidates:
        attempts += 1
        tag, base = rng.choice(candidates)
        length = rng.randint(*shape.burst_windows)
        onset = rng.randrange(warm_up, max(warm_up + 1, windows - length - 2))
        if any(onset < end + 20 and begin < onset + length + 20 for begin, end in busy[tag]):
            continue  # one burst per term at a time, with calm in between
        busy[tag].append((onset, onset + length))
        rate_now = _rate(shape, start_ms + onset * window_ms) / shape.posts_per_minute
        bursts.append(Burst(tag, start_ms + onset * window_ms, length, rng.choice(shape.multipliers), base * rate_now))
    return sorted(bursts, key=lambda b: b.onset_ms)


def _post(rng: random.Random, shape: StreamShape, nominal_ms: int, tags: list[str]) -> dict[str, Any]:
    text = " ".join(f"#{tag}" for tag in tags) + " " + rng.choice(FILLER)
    return {"user_id": f"user{rng.randrange(shape.users)}", "text": text, "hashtags": tags, "_nominal": nominal_ms}


def sentinel_ids(partitions: int) -> list[str]:
    """Post ids that Kafka's default partitioner sends to each partition, one each."""
    found: dict[int, str] = {}
    index = 0
    while len(found) < partitions:
        post_id = f"end-of-stream-{index}"
        found.setdefault(key_partition(post_id.encode(), partitions), post_id)
        index += 1
    return [found[p] for p in range(partitions)]


def sentinels(partitions: int, at_ms: int) -> list[dict[str, Any]]:
    """One post per partition dated ``at_ms``: it moves every source's watermark past the stream's end."""
    return [
        {"id": post_id, "user_id": "end", "text": "end of stream", "created_at": at_ms}
        for post_id in sentinel_ids(partitions)
    ]


# --- the reference ----------------------------------------------------------------------


def reference_counts(
    mentions: Iterable[tuple[str, int]], spec: WindowSpec, until_ms: int
) -> dict[tuple[str, str, int], int]:
    """Brute force: (term, window type, window start) -> count, for windows ending by ``until_ms``."""
    counts: Counter[tuple[str, str, int]] = Counter()
    for term, ts in mentions:
        start = (ts // spec.window_ms) * spec.window_ms
        if start + spec.window_ms <= until_ms:
            counts[(term, "tumbling", start)] += 1
        if spec.hop_size_ms:
            end = (ts // spec.hop_ms + 1) * spec.hop_ms
            while end - spec.hop_size_ms <= ts:
                if end <= until_ms:
                    counts[(term, "hopping", end - spec.hop_size_ms)] += 1
                end += spec.hop_ms
    return dict(counts)


def hashtag_mentions(posts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(tag.casefold(), post["created_at"]) for post in posts for tag in post.get("hashtags", [])]


def publishable(
    reference: dict[tuple[str, str, int], int], min_count: int = 2, hop_min_count: int | None = None
) -> dict[tuple[str, str, int], int]:
    """The reference windows the worker publishes: min_count or more, hop_min_count or more
    for hopping ones (default: the worker's default, STREAMS_TREND_HOP_MIN_COUNT)."""
    hop = int(settings.default("trend_hop_min_count")) if hop_min_count is None else hop_min_count
    least = {"tumbling": min_count, "hopping": hop}
    return {k: v for k, v in reference.items() if v >= least[k[1]]}


def discrepancies(
    published: dict[tuple[str, str, int], int],
    reference: dict[tuple[str, str, int], int],
    min_count: int,
    hop_min_count: int | None = None,
) -> dict[str, int]:
    """Windows missing, extra, or with another count than the reference (over the windows the
    worker publishes: ``publishable``)."""
    wanted = publishable(reference, min_count, hop_min_count)
    return {
        "missing": sum(1 for k in wanted if k not in published),
        "extra": sum(1 for k in published if k not in wanted),
        "wrong_count": sum(1 for k, v in published.items() if k in wanted and wanted[k] != v),
        "compared": len(wanted),
    }


# --- the detector's scores ------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionScores:
    precision: float
    recall: float
    median_delay_windows: float | None
    false_alarms_per_hour: float
    alerts: int
    detected: int
    bursts: int


def score_alerts(alerts: list[tuple[str, int]], bursts: list[Burst], window_ms: int, hours: float) -> DetectionScores:
    """Match alerts (term, window start) to bursts: an alert counts when it opens during a burst
    of its term or in the window after it."""
    delays: dict[int, int] = {}
    false_alarms = 0
    for term, start in alerts:
        match = next(
            (
                i for i, b in enumerate(bursts)
                if b.term == term and b.onset_ms <= start < b.onset_ms + (b.windows + 1) * window_ms
            ),
            None,
        )  # fmt: skip
        if match is None:
            false_alarms += 1
        else:
            delay = (start - bursts[match].onset_ms) // window_ms
            delays[match] = min(delays.get(match, delay), delay)
    matched = len(alerts) - false_alarms
    ordered = sorted(delays.values())
    median = None
    if ordered:
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return DetectionScores(
        precision=matched / len(alerts) if alerts else 1.0,
        recall=len(delays) / len(bursts) if bursts else 1.0,
        median_delay_windows=median,
        false_alarms_per_hour=false_alarms / hours,
        alerts=len(alerts),
        detected=len(delays),
        bursts=len(bursts),
    )


def mae(pairs: list[tuple[float, float]]) -> float:
    """Mean absolute error of (forecast, actual) pairs."""
    return sum(abs(f - a) for f, a in pairs) / len(pairs) if pairs else 0.0


def smape(pairs: list[tuple[float, float]]) -> float:
    """Symmetric mean absolute percentage error of (forecast, actual) pairs, in percent (0/0 counts 0)."""
    terms = [0.0 if f == a == 0 else 2 * abs(f - a) / (abs(f) + abs(a)) for f, a in pairs]
    return 100 * sum(terms) / len(terms) if terms else 0.0


@dataclass
class OfflineRun:
    windows: dict[tuple[str, str, int], dict[str, Any]]
    alerts: list[tuple[str, int]]
    late: int


def run_offline(posts: list[dict[str, Any]], spec: WindowSpec, detector: Any, warm_up_windows: int = 10) -> OfflineRun:
    """The windows and alerts of the hashtag trends of ``posts`` (in arrival order), without Kafka:
    the same window and detector code, one partition, watermark = newest event time."""
    states: dict[str, TermState] = {}
    run = OfflineRun({}, [], 0)
    watermark: int | None = None
    first: int | None = None
    closed_boundary = None
    for offset, post in enumerate(posts):
        ts = post["created_at"]
        for tag in post.get("hashtags", []):
            state = states.setdefault(tag, new_state("hashtag", tag, 0))
            mention = Mention(post["id"], ts, post["user_id"], 1, 0, 0, offset)
            if trend_windows.add(state, mention, spec, watermark) == "late":
                run.late += 1
        watermark = ts if watermark is None else max(watermark, ts)
        first = watermark if first is None else first
        warm = watermark - first >= warm_up_windows * spec.window_ms
        if spec.boundary(watermark) == closed_boundary:
            continue
        closed_boundary = spec.boundary(watermark)
        for state in states.values():
            due = trend_windows.next_due(state, spec)
            if due is not None and due <= watermark:
                closed = trend_windows.close(state, watermark, spec, detector, warm)
                for window in closed.windows:
                    run.windows[(state["term"], window["type"], window["start"])] = window
                run.alerts += [(state["term"], a["window"]["start"]) for a in closed.alerts if a["type"] == "spike"]
    return run


def forecast_pairs(
    windows: dict[tuple[str, str, int], dict[str, Any]], reference: dict[tuple[str, str, int], int], window_ms: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(forecast, actual) of the next window for every published tumbling window with a forecast,
    and the naive forecast's pairs (the window's own count) over the same windows."""
    served: list[tuple[float, float]] = []
    naive: list[tuple[float, float]] = []
    for (term, kind, start), window in windows.items():
        forecast = window.get("forecast")
        following = (term, "tumbling", start + window_ms)
        if kind != "tumbling" or not forecast or following[2] + window_ms > max(k[2] for k in reference) + window_ms:
            continue
        actual = reference.get(following, 0)
        served.append((forecast[0], actual))
        naive.append((window["count"], actual))
    return served, naive
