"""The worker's /metrics moves with a replay, and /health reports consumption."""

from __future__ import annotations

import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Pipeline, bad_messages, queried_metrics, synthetic

pytestmark = pytest.mark.integration


def scrape(pipeline: Pipeline) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[0]}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_and_histograms_move_with_a_replay(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    good = synthetic(120, seed=6)
    bad, _ = bad_messages(22)
    pipeline.produce(good + bad + good[:10])
    pipeline.consume("enriched", len(good))
    pipeline.consume("deadletter", len(bad))
    metrics = scrape(pipeline)
    raw, enriched = pipeline.topics["raw"], pipeline.topics["enriched"]
    assert metrics[("streams_posts_in_total", (("topic", raw),))] == len(good) + len(bad) + 10
    assert metrics[("streams_posts_out_total", (("topic", enriched),))] == len(good)
    assert metrics[("streams_duplicates_skipped_total", ())] == 10
    assert sum(v for (name, _), v in metrics.items() if name == "streams_dead_letters_total") == len(bad)
    assert sum(v for (name, _), v in metrics.items() if name == "streams_inference_seconds_count") >= 1
    assert metrics[("streams_end_to_end_seconds_count", ())] == len(good)
    for stage in ("waiting", "model", "publish"):  # every enriched post, once in each step
        assert metrics[("streams_enrich_stage_seconds_count", (("stage", stage),))] == len(good)
    assert sum(v for (name, _), v in metrics.items() if name == "streams_moderation_actions_total") == len(good)
    lag = {labels: v for (name, labels), v in metrics.items() if name == "streams_consumer_lag"}
    assert lag and all(value >= 0 for value in lag.values())
    assert {dict(labels)["topic"] for labels in lag} >= {raw}
    with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[0]}/health", timeout=5) as response:
        health = orjson.loads(response.read())
    assert health["status"] == "ok" and health["last_batch_age_s"] is not None


def exposed_names(pipeline: Pipeline) -> set[str]:
    """Every metric the worker exposes, with or without samples yet (from its # TYPE lines)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[0]}/metrics", timeout=5) as response:
        text = response.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
        names.update(family.name + s for s in suffixes.get(family.type, [""]))
    return names


def test_every_metric_the_dashboard_and_alert_rules_query_is_exposed(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    queried = queried_metrics() - {"up"}  # up comes from Prometheus itself
    assert queried - exposed_names(pipeline) == set()
