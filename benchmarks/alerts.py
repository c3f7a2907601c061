"""Are the alerts right? Every alert the trends stage would send on real tweets, month by month.

    python benchmarks/alerts.py [--months 2015-09,2015-11,2015-12] [--per-term]

The SemEval-2017 pool's tweets (their ids carry their creation time), in their own
time order, month by month, through the worker's own code: the enrich step's terms
(hashtags, cashtags, keywords; semantic topics need the model and are left out),
its window panes, detectors, early warning and alert policy (streams.trends.windows,
streams.trends.policy), with the worker's default settings, one partition, the
watermark at the newest event time. Nothing of Kafka but the order.

An alert is *right* when its term then holds at least ``TARGET`` mentions in a
ten-minute window (ten consecutive one-minute windows) ending within the hour after
the alert's window (its own window included). A term *trends* at the first such
window after an hour without; an episode is *detected* when an alert on its term
came in the hour before it or at its start, and its lead is the minutes from that
first alert to the episode's start. Term level, as Nikolov & Shah (2012) report: a
balanced set, every term that trends in the month and as many terms that do not,
chosen among those with the most mentions (the ones a detector is tempted by); the
true-positive rate is the share of trending terms detected, the false-positive rate
the share of the others alerted on at all.

Printed per month: posts, alerts per type and per 10,000 posts, precision per type,
episodes, recall, median lead, and the term-level TPR and FPR. The tuning months
(streams.trends.policy's thresholds were chosen on them) and the held-back months
are printed apart; ``--months`` picks the months; ``--before`` runs the detectors
without the policy, as they were served before it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.ingest.parse import parse_post  # noqa: E402
from streams.replay.sources import read_posts  # noqa: E402
from streams.terms import post_terms  # noqa: E402
from streams.trends import windows as trend_windows  # noqa: E402
from streams.trends.detect import DetectorSettings  # noqa: E402
from streams.trends.policy import DEFAULT_POLICY, NO_POLICY, AlertPolicy  # noqa: E402
from streams.trends.scheduler import WARM_UP_WINDOWS  # noqa: E402
from streams.trends.state import SENTIMENTS, Mention, TermState, new_state  # noqa: E402
from streams.trends.windows import WindowSpec  # noqa: E402

POOL = Path(__file__).resolve().parents[2] / "shared" / "data" / "semeval2017"
TARGET = 10  # mentions in ten minutes: the term trends
SPAN = 10  # one-minute windows in the ten minutes
HORIZON = 60  # windows (minutes) ahead
TUNE_MONTHS = ("2012-10", "2012-11", "2014-10", "2015-07", "2015-08")
HELD_BACK_MONTHS = ("2015-09", "2015-11", "2015-12")
KINDS = (("hashtag", "hashtags"), ("cashtag", "cashtags"), ("keyword", "keywords"))


def pool_posts() -> list[dict[str, Any]]:
    """Every tweet of the pool once, parsed as the worker parses it, in time order."""
    if not POOL.is_dir():
        sys.exit(f"{POOL} is missing: the SemEval-2017 pool (see ../shared/data/README.md)")
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted(POOL.glob("*.tsv")):
        for raw in read_posts(path):
            value = orjson.loads(raw)
            if value["id"] in seen:
                continue
            try:
                post = parse_post(raw, 1 << 20)
            except ValueError:
                continue
            label = value.get("label", "neutral")
            seen[value["id"]] = {
                "id": post.id,
                "user": str(value["user_id"])[-10:],
                "ts": post.created_at_ms,
                "sentiment": SENTIMENTS.index(label) if label in SENTIMENTS else 1,
                "terms": post_terms(post.text, list(post.hashtags)),
            }
    return sorted(seen.values(), key=lambda p: (p["ts"], p["id"]))


def month_of(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m")


@dataclass
class Run:
    posts: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))  # term -> minute -> n
    suppressed: Counter[str] = field(default_factory=Counter)


def run_month(posts: list[dict[str, Any]], policy: AlertPolicy, spec: WindowSpec, detector: DetectorSettings) -> Run:
    """The alerts the worker would send for these posts (one partition, watermark = newest event time)."""
    run = Run(posts=len(posts))
    states: dict[str, TermState] = {}
    due: list[tuple[int, str]] = []
    scheduled: dict[str, int] = {}
    first = watermark = None
    budget = policy.new_budget()
    for offset, post in enumerate(posts):
        for kind, name in KINDS:
            for term in post["terms"][name]:
                key = f"{kind}:{term}"
                state = states.get(key) or states.setdefault(key, new_state(kind, term, 0))
                mention = Mention(post["id"], post["ts"], post["user"], post["sentiment"], 0, 0, offset)
                if trend_windows.add(state, mention, spec, watermark) == "added":
                    run.counts[key][post["ts"] // spec.window_ms] += 1
                next_at = trend_windows.next_due(state, spec)
                if next_at is not None and scheduled.get(key) != next_at:
                    scheduled[key] = next_at
                    heapq.heappush(due, (next_at, key))
        watermark = post["ts"] if watermark is None else max(watermark, post["ts"])
        first = watermark if first is None else first
        warm = watermark - first >= WARM_UP_WINDOWS * spec.window_ms
        candidates: list[dict[str, Any]] = []
        while due and due[0][0] <= watermark:
            at, key = heapq.heappop(due)
            if scheduled.get(key) != at:
                continue
            del scheduled[key]
            state = states[key]
            closed = trend_windows.close(state, watermark, spec, detector, warm, policy)
            candidates += [{**alert, "key": key} for alert in closed.alerts]
            next_at = trend_windows.next_due(state, spec)
            if next_at is not None:
                scheduled[key] = next_at
                heapq.heappush(due, (next_at, key))
        sent, dropped = budget.admit(candidates)
        run.alerts += sent
        run.suppressed.update(a["type"] for a in dropped)
    return run


def ten_minute_sums(counts: Counter[int]) -> dict[int, int]:
    """Mentions in the ten minutes ending at each minute that has any (minute index -> sum)."""
    ends = {m + k for m in counts for k in range(SPAN)}
    return {end: sum(counts.get(end - k, 0) for k in range(SPAN)) for end in ends}


def episodes(sums: dict[int, int]) -> list[int]:
    """The minutes at which the term starts trending (after an hour without)."""
    starts, last = [], None
    for minute in sorted(m for m, total in sums.items() if total >= TARGET):
        if last is None or minute - last > HORIZON:
            starts.append(minute)
        last = minute
    return starts


def score(run: Run, window_ms: int) -> dict[str, Any]:
    sums = {key: ten_minute_sums(counts) for key, counts in run.counts.items()}
    hot = {key: sorted(m for m, total in s.items() if total >= TARGET) for key, s in sums.items()}
    right: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    alerted_at: dict[str, list[int]] = defaultdict(list)
    for alert in run.alerts:
        minute = alert["window"]["start"] // window_ms
        sent[alert["type"]] += 1
        alerted_at[alert["key"]].append(minute)
        if any(minute <= m <= minute + HORIZON for m in hot.get(alert["key"], ())):
            right[alert["type"]] += 1
    found = {key: episodes(s) for key, s in sums.items()}
    leads, detected, total = [], 0, 0
    for key, starts in found.items():
        for start in starts:
            total += 1
            before = [m for m in alerted_at.get(key, ()) if start - HORIZON <= m <= start]
            if before:
                detected += 1
                leads.append(start - min(before))
    trending = [key for key, starts in found.items() if starts]
    calm = sorted((k for k in run.counts if k not in set(trending)), key=lambda k: -sum(run.counts[k].values()))
    calm = calm[: len(trending)]
    tp = sum(1 for key in trending if any(start - HORIZON <= m <= start for start in found[key]
                                          for m in alerted_at.get(key, ())))  # fmt: skip
    fp = sum(1 for key in calm if alerted_at.get(key))
    per_10k = 10_000 / max(run.posts, 1)
    return {
        "posts": run.posts,
        "alerts": {t: sent[t] for t in ("spike", "early_warning")},
        "alerts_per_10k": round(sum(sent.values()) * per_10k, 1),
        "suppressed_by_budget": dict(run.suppressed),
        "precision": {t: round(right[t] / sent[t], 3) if sent[t] else None for t in ("spike", "early_warning")},
        "right": {t: right[t] for t in ("spike", "early_warning")},
        "episodes": total,
        "recall": round(detected / total, 3) if total else None,
        "median_lead_min": statistics.median(leads) if leads else None,
        "terms_trending": len(trending),
        "tpr": round(tp / len(trending), 3) if trending else None,
        "fpr": round(fp / len(calm), 3) if calm else None,
    }


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over months: alerts and right alerts summed, so precision is per alert."""
    sent = Counter[str]()
    right = Counter[str]()
    for r in results:
        sent.update(r["alerts"])
        right.update(r["right"])
    posts = sum(r["posts"] for r in results)
    episodes_total = sum(r["episodes"] for r in results)
    detected = sum(round((r["recall"] or 0) * r["episodes"]) for r in results)
    return {
        "posts": posts,
        "alerts": dict(sent),
        "alerts_per_10k": round(sum(sent.values()) * 10_000 / max(posts, 1), 1),
        "precision": {t: round(right[t] / sent[t], 3) if sent[t] else None for t in ("spike", "early_warning")},
        "episodes": episodes_total,
        "recall": round(detected / episodes_total, 3) if episodes_total else None,
    }


def evaluate(months: list[str], policy: AlertPolicy, by_month: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    spec, detector = WindowSpec(), DetectorSettings()
    return {m: score(run_month(by_month.get(m, []), policy, spec, detector), spec.window_ms) for m in months}


def print_results(title: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'month':8} {'posts':>6} {'spikes':>6} {'warn':>5} {'/10k':>6} {'P spike':>7} {'P warn':>6} "
          f"{'episodes':>8} {'recall':>6} {'lead':>5} {'TPR':>5} {'FPR':>5}")  # fmt: skip
    for month, r in results.items():
        p = r["precision"]
        print(f"{month:8} {r['posts']:6} {r['alerts']['spike']:6} {r['alerts']['early_warning']:5} "
              f"{r['alerts_per_10k']:6} {fmt(p['spike']):>7} {fmt(p['early_warning']):>6} {r['episodes']:8} "
              f"{fmt(r['recall']):>6} {fmt(r['median_lead_min']):>5} {fmt(r['tpr']):>5} "
              f"{fmt(r['fpr']):>5}")  # fmt: skip
    total = pooled(list(results.values()))
    p = total["precision"]
    sent = total["alerts"]
    print(f"{'all':8} {total['posts']:6} {sent.get('spike', 0):6} {sent.get('early_warning', 0):5} "
          f"{total['alerts_per_10k']:6} {fmt(p['spike']):>7} {fmt(p['early_warning']):>6} {total['episodes']:8} "
          f"{fmt(total['recall']):>6}")  # fmt: skip


def fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", help="comma-separated YYYY-MM (default: the tuning and the held-back months)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--before", action="store_true", help="the detectors alone, without the alert policy")
    args = parser.parse_args()
    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for post in pool_posts():
        by_month[month_of(post["ts"])].append(post)
    policy = NO_POLICY if args.before else DEFAULT_POLICY
    if args.months:
        results = {"chosen": evaluate(args.months.split(","), policy, by_month)}
        print_results("months", results["chosen"])
    else:
        results = {"tune": evaluate(list(TUNE_MONTHS), policy, by_month),
                   "held_back": evaluate(list(HELD_BACK_MONTHS), policy, by_month)}  # fmt: skip
        print_results("tuning months (thresholds chosen here)", results["tune"])
        print_results("held-back months (never tuned on)", results["held_back"])
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
