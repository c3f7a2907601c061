"""Moderation: turn the offensive and hate scores into an action with reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["allow", "review", "block"]
ALLOW: Action = "allow"
REVIEW: Action = "review"
BLOCK: Action = "block"
# head -> the label whose probability is that head's moderation score
MODERATED_LABELS = {"offensive": "offensive", "hate": "hate"}


@dataclass(frozen=True)
class Thresholds:
    review: float
    block: float


@dataclass(frozen=True)
class Decision:
    scores: dict[str, float]
    action: Action
    reasons: list[str]


def decide(head_scores: dict[str, dict[str, float]], thresholds: Thresholds) -> Decision:
    """Block at or above the block threshold, review at or above review, else allow."""
    scores = {head: head_scores[head][label] for head, label in MODERATED_LABELS.items() if head in head_scores}
    reasons = sorted(head for head, score in scores.items() if score >= thresholds.review)
    if any(score >= thresholds.block for score in scores.values()):
        action: Action = BLOCK
    elif reasons:
        action = REVIEW
    else:
        action = ALLOW
    return Decision(scores, action, reasons)
