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
