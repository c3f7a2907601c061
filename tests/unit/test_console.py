"""How an enriched post reads in a terminal and in a pipe."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from streams.console import render

POST: dict[str, Any] = {
    "text": "@user you are a pathetic idiot and everyone in this thread knows it, so please just stop posting "
    "about the match, nobody asked",
    "sentiment": {"label": "negative", "scores": {}, "supported": True},
    "emotion": {"label": "anger", "scores": {}, "supported": True},
    "moderation": {
        "scores": {"offensive": 0.97, "hate": 0.1},
        "action": "block",
        "reasons": ["offensive"],
        "supported": True,
        "explanation": {"head": "offensive", "method": "occlusion", "words": [{"token": "idiot", "weight": 0.6}]},
    },
    "language": "en",
    "explanation": [{"token": "pathetic", "weight": 0.5}, {"token": "idiot", "weight": 0.4}],
}


def shown(value: dict[str, Any], width: int = 80) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)  # a pipe: no colours
    console.print(render(b"post-1", value, console.width), overflow="ellipsis")
    return out.getvalue().splitlines()


def test_a_post_shows_its_whole_text_and_the_words_behind_label_and_flag_in_80_columns() -> None:
    lines = shown(POST)
    assert all(len(line) <= 80 for line in lines)
    assert " ".join(line.strip() for line in lines[1:-2]) == POST["text"]
    assert lines[-2].strip() == "why negative: pathetic, idiot"
    assert lines[-1].strip() == "why block (offensive 0.97): idiot"


def test_a_post_in_another_language_says_its_labels_are_not_valid() -> None:
    value = {
        **POST,
        "language": "es",
        "sentiment": {"label": "negative", "scores": {}, "supported": False},
        "moderation": {**POST["moderation"], "action": "review", "supported": False},
    }
    lines = shown(value)
    assert "es: not English, labels not valid" in lines[0]
    assert not any(line.strip().startswith("why negative") for line in lines)
    assert lines[-1].strip().startswith("why review")


WINDOW: dict[str, Any] = {
    "schema_version": 1, "term": "worldcup", "kind": "hashtag", "label": None,
    "window": {"type": "tumbling", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z",
               "start_ms": 1_767_225_600_000, "end_ms": 1_767_225_660_000, "size_s": 60},
    "count": 42, "unique_users": 30, "unique_users_exact": True,
    "sentiment": {"negative": 0.1, "neutral": 0.3, "positive": 0.6}, "toxicity_rate": 0.0, "final": True,
}  # fmt: skip


def test_a_trend_window_reads_on_one_line_although_it_carries_a_sentiment_mix() -> None:
    [line] = shown(WINDOW, width=120)
    assert "hashtag worldcup" in line and "count 42 users 30" in line and "pos 60%" in line


def test_an_alert_and_any_other_record_are_shown_whole() -> None:
    alert = {**WINDOW, "type": "spike", "severity": "high", "score": 9.5, "baseline": {"mean": 3.0, "std": 1.0},
             "growth": 4.0, "forecast": [], "sample_post_ids": ["p" * 40] * 5}  # fmt: skip
    assert "spike high hashtag worldcup count 42 vs 3.0 (score 9.5)" in " ".join(shown(alert, width=200))
    profile = {"user_id": "u_" + "a" * 60, "top_hashtags": [{"tag": f"tag{i}", "weight": 1.0} for i in range(20)]}
    out = io.StringIO()
    console = Console(file=out, width=80, highlight=False, color_system=None)
    console.print(render(b"u", profile, 80), overflow="fold")
    assert "".join(out.getvalue().split("\n")).count("tag19") == 1  # folded over lines, not cut
