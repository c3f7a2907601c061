"""``social-streams score``: model output for texts, one JSON object per input."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from streams.inference.language import detect_language
from streams.inference.moderation import Thresholds, decide
from streams.inference.session import Prediction, TextModel
from streams.settings import Settings


def text_of(line: str) -> str:
    """A JSONL line's ``text`` field, or the line itself."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return line.rstrip("\n")
        if isinstance(value, dict) and isinstance(value.get("text"), str):
            return str(value["text"])
    return line.rstrip("\n")


def scored(text: str, prediction: Prediction, thresholds: Thresholds) -> dict[str, Any]:
    scores = {head: result.scores for head, result in prediction.heads.items()}
    decision = decide(scores, thresholds)
    return {
        "text": text,
        **{head: {"label": r.label, "scores": r.scores} for head, r in prediction.heads.items()},
        "moderation": {"scores": decision.scores, "action": decision.action, "reasons": decision.reasons},
        "language": detect_language(text),
        "explanation": [{"token": c.token, "weight": c.weight} for c in prediction.explanation],
        "tokens": prediction.tokens,
        "truncated": prediction.truncated,
    }


def _chunks(lines: Iterable[str], size: int) -> Iterable[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(text_of(line))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_stream(source: IO[str], sink: IO[str], model_dir: Path, settings: Settings, batch: int) -> int:
    model = TextModel(model_dir, settings.model_threads, settings.max_text_chars)
    thresholds = Thresholds(settings.review_threshold, settings.block_threshold)
    for texts in _chunks(source, batch):
        for text, prediction in zip(texts, model.predict(texts), strict=True):
            sink.write(orjson.dumps(scored(text, prediction, thresholds)).decode() + "\n")
    sink.flush()
    return 0
