"""Exact token contributions to a head's logits, grouped into words.

For a linear head on mean-pooled token states, logit_k = sum_t (h_t . w_k)/n + b_k.
Softmax ignores a shift shared by all classes, so a token's contribution to
class k is reported relative to the mean over classes: c_t = term_tk - mean_j term_tj.
Summed over all tokens, these equal logit_k - mean_j logit_j minus the same
difference of the biases: the explanation is exact, not an approximation.
Word pieces of one word are summed, so users see words, not sub-word units.
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


def word_contributions(encoding: Encoding, terms: np.ndarray, label: int) -> list[Contribution]:
    """Every word's contribution to class ``label``, in text order."""
    relative = terms[:, label] - terms.mean(axis=1)
    words: dict[int, tuple[list[str], float]] = {}
    for position, word in enumerate(encoding.word_ids[: len(relative)]):
        if word is None:  # [CLS], [SEP] and padding carry no text
            continue
        pieces, total = words.get(word, ([], 0.0))
        pieces.append(encoding.tokens[position].removeprefix("##"))
        words[word] = (pieces, total + float(relative[position]))
    return [Contribution("".join(pieces), round(total, 5)) for pieces, total in words.values()]


def top_contributions(encoding: Encoding, terms: np.ndarray, label: int, k: int = TOP_K) -> list[Contribution]:
    """The k words that moved the prediction most, by absolute contribution."""
    ranked = sorted(word_contributions(encoding, terms, label), key=lambda c: -abs(c.weight))
    return ranked[:k]
