"""The live view folds output records into what it shows."""

from __future__ import annotations

from rich.console import Console

from streams.live import LiveState, sparkline


def window(term: str, start: int, count: int) -> dict:
    return {"kind": "hashtag", "term": term, "label": None, "count": count,
            "window": {"type": "tumbling", "start_ms": start, "size_s": 60.0}}  # fmt: skip


def test_sparkline_scales_to_the_largest_value() -> None:
    assert sparkline([0, 5, 10]) == "▁▄█"
    assert sparkline([]) == ""


def test_state_ranks_trends_and_shows_alerts_and_flagged_posts() -> None:
    state = LiveState(top_k=2)
    for i in range(5):
        state.add("windows", window("rising", i * 60_000, 10 * (i + 1)), now=1.0)
        state.add("windows", window("steady", i * 60_000, 20), now=1.0)
    state.add("windows", window("gone", 0, 99), now=1.0)
    state.add("enriched", {"sentiment": {"label": "positive"}, "timing": {"model_ms_per_post": 8.0}}, now=1.0)
    alert = {"window": {"start": "2026-11-25T10:00:00.000Z"}, "term": "rising", "count": 50,
             "baseline": {"mean": 12.0}, "growth": 4.2, "severity": "low", "forecast": [55.0, 60.0]}  # fmt: skip
    state.add("alerts", alert, now=1.0)
    state.add("flagged", {"moderation": {"action": "block", "reasons": ["hate"]}, "text": "nasty"}, now=1.0)
    assert [term for (_, term), _ in state.top_trends()] == ["rising", "steady"]  # "gone" is not in the latest window
    console = Console(record=True, width=160)
    console.print(state.render(now=1.0))
    text = console.export_text()
    assert "rising" in text and "x4.2" in text and "nasty" in text and "positive 100%" in text


def test_report_draws_trends_alerts_forecasts_sentiment_and_moderation() -> None:
    from streams.report import ReportData, figure, png_bytes, render_html

    data = ReportData()
    for i in range(10):
        data.add("windows", window("rising", i * 60_000, 10 * (i + 1)))
        data.add("enriched", {"created_at_ms": i * 60_000, "sentiment": {"label": "negative"},
                              "moderation": {"action": "review" if i % 2 else "allow"}})  # fmt: skip
    at = {"start": "1970-01-01T00:09:00.000Z", "start_ms": 540_000, "size_s": 60.0}
    alert = {"kind": "hashtag", "term": "rising", "label": None, "count": 100, "growth": 4.0, "severity": "low"}
    data.add("alerts", {**alert, "forecast": [110.0, 120.0], "baseline": {"mean": 25.0}, "window": at})
    fig = figure(data, top_k=5)
    trends, sentiment, moderation = fig.axes
    assert trends.get_lines()[0].get_label() == "#rising"
    legend = sentiment.get_legend()
    assert legend is not None and {t.get_text() for t in legend.get_texts()} == {"negative", "neutral", "positive"}
    assert moderation.xaxis.get_label().get_text() == "time (UTC)"
    png = png_bytes(fig)
    page = render_html(data, png)
    assert png.startswith(b"\x89PNG") and page.count("<img") == 1
    assert "1970-01-01T00:00:00.000Z to 1970-01-01T00:09:00.000Z" in page  # the data's range, not the epoch
    assert "10 enriched posts" in page and "1 trend alerts" in page and "5 posts flagged" in page


def test_windows_without_posts_are_zeros_and_topics_show_their_labels() -> None:
    from streams.report import ReportData, zero_filled

    assert zero_filled({0: 3, 180_000: 5}, 60_000, 0, 240_000) == [
        (0, 3), (60_000, 0), (120_000, 0), (180_000, 5), (240_000, 0),
    ]  # fmt: skip
    data = ReportData()
    data.add("windows", {**window("topic-3", 0, 4), "kind": "topic", "label": "rain, storm, flood"})
    assert data.name(("topic", "topic-3")) == "topic: rain, storm, flood"


def test_sentiment_colours_read_naturally() -> None:
    from streams.report import SENTIMENT_COLORS

    assert SENTIMENT_COLORS == {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}


def test_posts_dated_before_the_watermark_are_named_in_top_and_report() -> None:
    from streams.report import ReportData, render_html

    hour_ms = 3_600_000
    state, data = LiveState(), ReportData()
    closed = window("old", hour_ms - 60_000, 5)
    closed["window"]["end_ms"] = hour_ms
    post = {"created_at_ms": 600_000, "sentiment": {"label": "neutral"}, "moderation": {"action": "allow"},
            "timing": {"model_ms_per_post": 1.0}}  # fmt: skip
    records = [("enriched", post, 1_000), ("windows", closed, 2_000), ("enriched", post, 3_000)]
    for kind, value, written_ms in records:
        state.add(kind, value, 1.0, written_ms)
        data.add(kind, value, written_ms)
    # The first post was enriched before any window closed: in time. The same date again, enriched
    # after a window ending an hour later was published, is late.
    assert state.late.count() == data.late.count() == (1, hour_ms)
    console = Console(record=True, width=400)
    console.print(state.render(now=1.0))
    assert "1 of 2 posts were dated before the trends watermark (1970-01-01T01:00:00.000Z)" in console.export_text()
    assert 'id="late"' in render_html(data, b"")
