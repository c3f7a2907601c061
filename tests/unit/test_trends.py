"""The trend windows, detector, watermark and terms, without a broker."""

from __future__ import annotations

import random

import pytest

from streams.terms import MAX_TERM_CHARS, cashtags, keywords, post_terms
from streams.trends import detect, evaluation, windows
from streams.trends.detect import DetectorSettings
from streams.trends.state import Mention, new_state
from streams.trends.topics import TopicClusterer
from streams.trends.watermarks import PartitionWatermark
from streams.trends.windows import WindowSpec

SPEC = WindowSpec(window_ms=60_000, hop_size_ms=180_000, hop_ms=60_000, grace_ms=10_000)
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000


def mention(i: int, ts: int, partition: int = 0, user: str = "u1") -> Mention:
    return Mention(f"p{i}", ts, user, 2, 0, partition, i)


def test_keywords_drop_stop_words_links_mentions_and_huge_words() -> None:
    text = "RT @bob: The new iPhone launch is tomorrow https://t.co/x " + "z" * 10_000
    assert keywords(text) == ["new", "new iphone", "iphone", "iphone launch", "launch"]
    assert all(len(term) <= MAX_TERM_CHARS for term in post_terms("w" * 10_000, ["a" * 10_000])["hashtags"])


def test_cashtags_and_redaction_masks() -> None:
    assert cashtags("buy $aapl and $TSLA, not $5") == ["$AAPL", "$TSLA"]
    assert keywords("mail me at [email] now") == ["mail"]


def test_tumbling_and_hopping_counts_are_exact() -> None:
    state = new_state("hashtag", "x", 0)
    times = [T0 + 5_000, T0 + 59_000, T0 + 61_000, T0 + 150_000]
    for i, ts in enumerate(times):
        assert windows.add(state, mention(i, ts), SPEC, None) == "added"
    closed = windows.close(state, T0 + 400_000, SPEC, DetectorSettings(), warm=False)
    got = {(w["type"], w["start"] - T0): w["count"] for w in closed.windows}
    reference = evaluation.reference_counts([("x", ts) for ts in times], SPEC, T0 + 390_000)
    assert got == {(kind, start - T0): count for (_, kind, start), count in reference.items()}
    assert got[("tumbling", 0)] == 2 and got[("hopping", 0)] == 4 and got[("hopping", -120_000)] == 2


def test_a_window_closes_only_after_its_grace_and_a_late_mention_is_left_out() -> None:
    state = new_state("hashtag", "x", 0)
    windows.add(state, mention(0, T0 + 1_000), SPEC, None)
    assert windows.close(state, T0 + 60_000 + 9_999, SPEC, DetectorSettings(), False).windows == []
    windows.add(state, mention(1, T0 + 2_000), SPEC, T0 + 69_999)  # still within the grace
    first = windows.close(state, T0 + 70_000, SPEC, DetectorSettings(), False)
    assert [(w["type"], w["count"]) for w in first.windows] == [("tumbling", 2), ("hopping", 2)]
    assert windows.add(state, mention(2, T0 + 3_000), SPEC, T0 + 70_000) == "late"


def test_a_resent_mention_is_not_counted_twice() -> None:
    state = new_state("hashtag", "x", 0)
    assert windows.add(state, mention(5, T0), SPEC, None) == "added"
    assert windows.add(state, mention(5, T0), SPEC, None) == "duplicate"
    assert windows.add(state, mention(5, T0, partition=1), SPEC, None) == "added"  # another source partition


def test_unique_users_are_exact_up_to_the_cap() -> None:
    state = new_state("hashtag", "x", 0)
    for i in range(windows.MAX_USERS_PER_PANE + 10):
        windows.add(state, mention(i, T0 + 10, user=f"user{i % (windows.MAX_USERS_PER_PANE + 5)}"), SPEC, None)
    window = windows.close(state, T0 + 70_000, SPEC, DetectorSettings(), False).windows[0]
    assert window["count"] == windows.MAX_USERS_PER_PANE + 10
    assert window["unique_users"] == windows.MAX_USERS_PER_PANE and window["unique_users_exact"] is False


def poisson_counts(mean: float, n: int, seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    return [sum(1 for _ in range(int(mean * 20)) if rng.random() < 0.05) for _ in range(n)]


def test_one_alert_per_burst_and_it_re_arms() -> None:
    settings = DetectorSettings()
    model = detect.new_model(20)
    counts = poisson_counts(20, 30) + [90, 95, 100] + poisson_counts(20, 20, seed=4) + [100]
    opened = [i for i, count in enumerate(counts) if detect.observe(model, count, settings)]
    assert opened == [30, 53]


def test_a_new_term_alerts_at_once_but_a_seeded_one_waits_for_history() -> None:
    settings = DetectorSettings()
    assert detect.observe(detect.new_model(None), 30, settings)
    seeded = detect.new_model(1)
    assert not detect.observe(seeded, 30, settings)


def test_a_busy_term_is_forecast_near_its_level_with_an_interval_around_it() -> None:
    settings = DetectorSettings()
    model = detect.new_model(50)
    for count in [50] * 40:
        detect.observe(model, count, settings)
    forecast = detect.forecast(model, settings)
    interval = detect.forecast_interval(model, settings)
    assert len(forecast) == settings.horizon and 40 <= forecast[0] <= 50
    assert interval["low"][0] < forecast[0] < interval["high"][0] and interval["level"] == 0.8


def test_a_sparse_term_is_forecast_zero_its_median_next_count() -> None:
    settings = DetectorSettings()
    model = detect.new_model()
    detect.observe(model, 2, settings)  # a term seen once, after nothing
    detect.skip_empty(model, 30, settings)
    assert detect.forecast(model, settings) == [0.0] * settings.horizon
    assert 0 < detect.forecast_interval(model, settings)["mean"] < 0.69  # below a Poisson median of 1


def test_tsb_follows_statsforecasts_recursion() -> None:
    """Size smoothed over occurrences, probability over every window (TSB, Teunter et al. 2011)."""
    settings = DetectorSettings(tsb_size=0.4, tsb_probability=0.05)
    model = detect.new_model()
    size, probability = None, 0.0
    for count in [0, 3, 0, 0, 5, 1, 0, 2]:
        detect.observe(model, count, settings)
        if size is None:
            if count:
                size, probability = float(count), 0.05
            continue
        probability += 0.05 * ((count > 0) - probability)
        size = size + 0.4 * (count - size) if count else size
    assert size is not None
    assert model["size"] == pytest.approx(size) and model["probability"] == pytest.approx(probability)
    assert detect.forecast_interval(model, settings)["mean"] == pytest.approx(round(size * probability, 3))


def test_watermark_is_the_slowest_source_until_it_goes_idle() -> None:
    mark = PartitionWatermark(since=0.0)
    mark.report("0", 5_000, now=1.0)
    assert mark.current(["0", "1"], idle_s=10, now=2.0) is None  # source 1 not heard yet
    mark.report("1", 3_000, now=2.0)
    assert mark.current(["0", "1"], idle_s=10, now=3.0) == 3_000
    mark.report("0", 9_000, now=12.5)
    assert mark.current(["0", "1"], idle_s=10, now=12.5) == 9_000  # source 1 idle: no longer holds back
    assert mark.current(["0", "1"], idle_s=10, now=30.0) == 9_000  # all idle: the newest time seen


def test_a_caught_up_source_holds_the_watermark_again_once_its_claim_is_stale() -> None:
    mark = PartitionWatermark(since=0.0)
    mark.report("0", 5_000, now=1.0, caught_up_at=100.0)  # read everything there was at epoch 100
    mark.report("1", 8_000, now=1.0)
    assert mark.current(["0", "1"], idle_s=10, now=2.0, caught_up_since=99.0) == 8_000
    # After a rebalance at epoch 101 (or once the claim is too old) source 0 may have more to read.
    assert mark.current(["0", "1"], idle_s=10, now=2.0, caught_up_since=101.0) == 5_000


def test_topics_group_close_embeddings_and_keep_their_ids() -> None:
    clusterer = TopicClusterer(similarity=0.8, max_topics=2)
    a, b, c = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    assert clusterer.assign(a, ["apple"]) == ("topic-0", "apple")
    assert (clusterer.assign([0.95, 0.05, 0.0], ["apple", "iphone"]) or ("",))[0] == "topic-0"
    assert (clusterer.assign(b, ["rain"]) or ("",))[0] == "topic-1"
    assert clusterer.assign(c, ["other"]) is None  # full, and far from both
    restored = TopicClusterer(0.8, 2, clusterer.state())
    assert restored.assign(a, ["apple"]) == ("topic-0", "apple · iphone")


def test_a_topic_state_is_a_snapshot_not_the_live_lists() -> None:
    # Faust serialises a table value when it leaves the producer's buffer: topics assigned in
    # between must not slip into the saved lists beside the centroids encoded before them.
    clusterer = TopicClusterer(similarity=0.9, max_topics=5)
    clusterer.assign([1.0, 0.0, 0.0], ["apple"])
    saved = clusterer.state()
    clusterer.assign([0.0, 1.0, 0.0], ["rain"])
    assert (saved["ids"], saved["sizes"], len(saved["terms"])) == ([0], [1], 1)
    restored = TopicClusterer(0.9, 5, saved)
    assert restored.assign([0.0, 0.0, 1.0], ["new"]) == ("topic-1", "new")


@pytest.mark.parametrize("seed", [1, 2])
def test_offline_run_matches_the_brute_force_reference(seed: int) -> None:
    shape = evaluation.StreamShape(hours=0.4, posts_per_minute=60, bursts=2)
    stream = evaluation.generate(shape, T0, SPEC.window_ms, seed)
    end = evaluation.sentinels(2, stream.end_ms + SPEC.hop_size_ms + SPEC.window_ms)
    run = evaluation.run_offline(stream.posts + [dict(p, hashtags=[]) for p in end], SPEC, DetectorSettings())
    published = {k: w["count"] for k, w in run.windows.items() if w["end"] <= stream.end_ms}
    reference = evaluation.reference_counts(evaluation.hashtag_mentions(stream.posts), SPEC, stream.end_ms)
    assert run.late == 0
    assert evaluation.discrepancies(published, reference, 1, 1) == {
        "missing": 0, "extra": 0, "wrong_count": 0, "compared": len(reference),
    }  # fmt: skip


def test_the_wire_formats_round_trip() -> None:
    from streams.trends import state

    sent = [mention(1, T0), mention(2, T0 + 1, partition=3)]
    message = state.decode_by_term(state.encode_mentions(sent, "topic label"))
    assert not state.is_watermark(message) and not state.is_terms(message)
    assert [state.Mention.from_wire(m) for m in message["m"]] == sent and message["label"] == "topic label"
    combined = state.decode_by_term(state.encode_terms({"hashtag\x1fa": sent, "keyword\x1fb": sent[:1]}))
    assert state.is_terms(combined)
    assert {k: [state.Mention.from_wire(m) for m in v] for k, v in combined["t"].items()} == {
        "hashtag\x1fa": sent,
        "keyword\x1fb": sent[:1],
    }
    mark = state.decode_by_term(state.encode_watermark({"0": T0}, ["0"], 12.5))
    assert state.is_watermark(mark) and mark == {"wm": {"0": T0}, "caught_up": ["0"], "at": 12.5}
    assert state.split_key(state.term_key("keyword", "a b")) == ("keyword", "a b")


def test_combined_mentions_go_where_a_message_keyed_by_the_term_would() -> None:
    # A term's state must not move between partitions when its mentions come combined.
    from aiokafka.partitioner import DefaultPartitioner

    from streams.trends.route import TermSender

    sender = TermSender(None, 6)  # type: ignore[arg-type]  # partition_of needs no topic
    keys = [f"hashtag\x1ftag{i}" for i in range(200)] + ["keyword\x1fkanye west", "hashtag\x1fé"]
    partitions = list(range(6))
    assert [sender.partition_of(k) for k in keys] == [
        DefaultPartitioner()(k.encode(), partitions, partitions) for k in keys
    ]


def test_only_busy_hopping_windows_are_compared_and_published_by_default() -> None:
    reference = {("a", "tumbling", 0): 2, ("a", "hopping", 0): 4, ("a", "hopping", 60_000): 5}
    assert evaluation.publishable(reference) == {("a", "tumbling", 0): 2, ("a", "hopping", 60_000): 5}
    assert evaluation.publishable(reference, 2, 2) == reference


def test_an_empty_top_says_when_the_mentions_came_after_their_windows_closed() -> None:
    from collections import Counter

    from streams.trends.query import TrendClock

    clock = TrendClock(lambda: {0: 1_767_225_660_000, 1: None, 2: 1_767_225_720_000})
    clock.count(Counter(added=40))
    assert clock.note() is None  # mostly in time: nothing to say
    clock.count(Counter(late=16_491, duplicate=3))
    assert clock.describe() == {"watermark": "2026-01-01T00:01:00.000Z", "mentions_added": 40, "mentions_late": 16_491}
    note = clock.note()
    assert note is not None and "16491 mention(s) came after their windows had closed" in note
    assert "2026-01-01T00:01:00.000Z" in note
