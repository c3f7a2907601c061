"""Exact token contributions to a head's logits, grouped into words.

For a linear head on mean-pooled token states, logit_k = sum_t (h_t . w_k)/n + b_k.
Softmax ignores a shift shared by all classes, so a token's contribution to
class k is reported relative to the mean over classes: c_t = term_tk - mean_j term_tj.
Summed over all tokens, these equal logit_k - mean_j logit_j minus the same
difference of the biases: the explanation is exact, not an approximation.
Pieces of one word (sub-word units, and punctuation glued to it as in
``#tag``, ``don't`` or ``@user``) are summed, so users see words as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding

TOP_K = 5


@dataclass(frozen=True)
class Contribution:
    token: str
    weight: float


def word_contributions(text: str, encoding: Encoding, terms: np.ndarray, label: int) -> list[Contribution]:
    """Every word's contribution to class ``label``, in text order.

    Words are shown as spans of the model's input text (so emoji the
    vocabulary maps to [UNK] still read as themselves), with trailing
    punctuation trimmed for readability; the weight covers the whole span.
    """
    relative = terms[:, label] - terms.mean(axis=1)
    spans: list[list[float]] = []  # [start, end, weight]
    for position, special in enumerate(encoding.special_tokens_mask[: len(relative)]):
        if special:  # [CLS], [SEP] and padding carry no text
            continue
        start, end = encoding.offsets[position]
        if spans and start == spans[-1][1]:  # no space between: same word
            spans[-1][1] = end
            spans[-1][2] += float(relative[position])
        else:
            spans.append([start, end, float(relative[position])])
    return [
        Contribution(text[int(start) : int(end)].rstrip(".,!?;:") or text[int(start) : int(end)], round(weight, 5))
        for start, end, weight in spans
    ]


def top_contributions(
    text: str, encoding: Encoding, terms: np.ndarray, label: int, k: int = TOP_K
) -> list[Contribution]:
    """The k words that moved the prediction most, by absolute contribution."""
    ranked = sorted(word_contributions(text, encoding, terms, label), key=lambda c: -abs(c.weight))
    return ranked[:k]
