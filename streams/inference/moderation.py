"""Moderation: turn the offensive and hate scores into an action with reasons.

Thresholds are per head, because the heads' precision at a given probability
differs: the model folder recommends them (chosen on val by
models/calibrate.py: block where precision reaches 0.95), and the settings
STREAMS_REVIEW_THRESHOLD / STREAMS_BLOCK_THRESHOLD override them for every head.
A post in a language the model does not read is never blocked automatically:
its scores are not evidence, at most a reason for a person to look.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from streams.errors import SettingsError
from streams.inference.explain import occlusion_contributions
from streams.inference.session import Prediction, TextModel

log = logging.getLogger(__name__)

Action = Literal["allow", "review", "block"]
ALLOW: Action = "allow"
REVIEW: Action = "review"
BLOCK: Action = "block"
# head -> the label whose probability is that head's moderation score
MODERATED_LABELS = {"offensive": "offensive", "hate": "hate"}
# For a model folder that recommends none (models before 2.0.0).
FALLBACK = {"review": 0.5, "block": 0.9}


@dataclass(frozen=True)
class Thresholds:
    review: Mapping[str, float]
    block: Mapping[str, float]

    @classmethod
    def uniform(cls, review: float, block: float) -> Thresholds:
        return cls(dict.fromkeys(MODERATED_LABELS, review), dict.fromkeys(MODERATED_LABELS, block))

    @classmethod
    def resolve(
        cls, recommended: Mapping[str, Mapping[str, float]], review: float | None, block: float | None
    ) -> Thresholds:
        """The model's thresholds per head, with the settings' values (when set) in their place."""
        chosen: dict[str, dict[str, float]] = {"review": {}, "block": {}}
        for head in MODERATED_LABELS:
            model = {**FALLBACK, **recommended.get(head, {})}
            chosen["review"][head] = model["review"] if review is None else review
            chosen["block"][head] = model["block"] if block is None else block
            if not 0 < chosen["review"][head] <= chosen["block"][head] <= 1:
                raise SettingsError(
                    f"STREAMS_REVIEW_THRESHOLD and STREAMS_BLOCK_THRESHOLD give {head} review "
                    f"{chosen['review'][head]} and block {chosen['block'][head]}: set both so that "
                    "0 < review <= block <= 1"
                )
        return cls(chosen["review"], chosen["block"])


@dataclass(frozen=True)
class Decision:
    scores: dict[str, float]
    action: Action
    reasons: list[str]
    supported: bool = True
    # For a flagged post, the words that made it offensive or hateful:
    # {"head", "method", "words": [{"token", "weight"}]} (filled by the caller).
    explanation: dict[str, object] = field(default_factory=dict)


def decide(head_scores: dict[str, dict[str, float]], thresholds: Thresholds, supported: bool = True) -> Decision:
    """Block at or above a head's block threshold, review at or above review, else allow.

    ``supported`` is False for a post in a language the model does not read:
    it can go to review, never to block.
    """
    scores = {head: head_scores[head][label] for head, label in MODERATED_LABELS.items() if head in head_scores}
    reasons = sorted(head for head, score in scores.items() if score >= thresholds.review[head])
    if supported and any(score >= thresholds.block[head] for head, score in scores.items()):
        action: Action = BLOCK
    elif reasons:
        action = REVIEW
    else:
        action = ALLOW
    return Decision(scores, action, reasons, supported)


def strongest_reason(decision: Decision) -> str | None:
    """The head whose score put the post in the queue (highest score among the reasons)."""
    return max(decision.reasons, key=lambda head: decision.scores[head], default=None)


def explain_flag(model: TextModel, text: str, decision: Decision, prediction: Prediction | None = None) -> Decision:
    """A flagged post's decision with the words behind the flag: occlusion on the
    head that flagged it (flagged posts only: one extra model row for each of the
    content words the decomposition ranks highest). ``prediction``: the post's own,
    which saves the row that would score the whole post again."""
    head = strongest_reason(decision)
    if head is None:
        return decision
    label = model.manifest.heads[head].index(MODERATED_LABELS[head])
    try:
        prepared = model.prepare(text)[0]
        base, prior = model.label_evidence(prepared, head, label, prediction)
        words = occlusion_contributions(
            prepared, label, lambda rows: model.head_probabilities(rows, head), prior=prior, base=base
        )
    except Exception as exc:  # noqa: BLE001 - the decision stands without its explanation
        log.warning("could not explain a %s flag: %r", head, exc)
        return decision
    words_out = [{"token": w.token, "weight": w.weight} for w in words]
    return replace(decision, explanation={"head": head, "method": "occlusion", "words": words_out})
