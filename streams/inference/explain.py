"""Which words of a post moved a head's prediction: two methods, one word list.

Words are the whitespace-separated spans of the model's input text, shown with
trailing punctuation trimmed, so users see words as they wrote them.

**Decomposition** (free, every post). For a linear head on mean-pooled token
states, logit_k = sum_t (h_t . w_k)/n + b_k, so a token's share of class k
relative to the mean over classes is exact and comes out of the same graph
run. It is exact about the pooled states, but a contextual state carries its
neighbours' meaning: "a" in "I am a gay man" carries "gay". Function words and
markers are therefore left out of the ranking (their weight stays in the sum).

**Occlusion** (one extra row per word, flagged posts only). A word's weight is
the drop in the label's probability when the word is deleted: what the model
does without it, the counterfactual a moderator asks about. ERASER
comprehensiveness and sufficiency (benchmarks/explanations.py) measure both.
Rows are the cost of a flagged post (a tweet has 13 content words on average,
up to 30), so only the OCCLUDED_WORDS content words the decomposition ranks
highest are occluded: on TweetEval val that keeps 96-100% of full occlusion's
comprehensiveness at about half its rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding

from streams.terms import STOP_WORDS

TOP_K = 5
MAX_OCCLUDED = 64
OCCLUDED_WORDS = 8
OCCLUSION_FLOOR = 0.005
# Negations and intensifiers decide a sentiment ("not bad", "no way"): they are
# function words to a search engine, content to a reader of an explanation.
MEANINGFUL = frozenset(
    {
        "no",
        "not",
        "nor",
        "never",
        "can't",
        "cannot",
        "don't",
        "didn't",
        "doesn't",
        "won't",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "shouldn't",
        "wouldn't",
        "couldn't",
        "dont",
        "cant",
        "wont",
        "very",
        "too",
        "most",
        "more",
        "against",
    }
)
FUNCTION_WORDS = STOP_WORDS - MEANINGFUL
_TRIM = ".,!?;:\"'()…“”‘’"
_MARKERS = re.compile(r"^(?:@user|http\S*|\W+)$", re.IGNORECASE)
_SPACE = re.compile(r"\S+")

# Maps a list of model input texts to one head's probabilities, [texts, classes].
Probabilities = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Contribution:
    token: str
    weight: float


def word_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SPACE.finditer(text)]


def shown(text: str, span: tuple[int, int]) -> str:
    word = text[span[0] : span[1]]
    return word.strip(_TRIM) or word


def is_function_word(word: str) -> bool:
    """Stop words, punctuation, @user and link markers: nothing a reader learns from."""
    folded = word.strip(_TRIM).casefold().replace("’", "'")
    return not folded or folded in FUNCTION_WORDS or _MARKERS.match(folded) is not None


def decomposition_weights(text: str, encoding: Encoding, terms: np.ndarray, label: int) -> list[float]:
    """Each word's exact share of class ``label``'s logit (relative to the class mean)."""
    relative = terms[:, label] - terms.mean(axis=1)
    spans = word_spans(text)
    weights = [0.0] * len(spans)
    word = 0
    for position, special in enumerate(encoding.special_tokens_mask[: len(relative)]):
        if special:  # [CLS], [SEP] and padding carry no text
            continue
        start = encoding.offsets[position][0]
        while word + 1 < len(spans) and start >= spans[word + 1][0]:
            word += 1
        if spans:
            weights[word] += float(relative[position])
    return weights


def without_words(text: str, spans: list[tuple[int, int]], drop: set[int]) -> str:
    return " ".join(text[s:e] for i, (s, e) in enumerate(spans) if i not in drop)


def only_words(text: str, spans: list[tuple[int, int]], keep: set[int]) -> str:
    return " ".join(text[s:e] for i, (s, e) in enumerate(spans) if i in keep)


def occlusion_candidates(text: str, prior: list[float] | None, budget: int = OCCLUDED_WORDS) -> list[int]:
    """The words worth a row: content words among the first MAX_OCCLUDED (the model
    reads 64 tokens, words past them cannot matter; function words are never shown),
    and of those, when ``prior`` ranks them, the ``budget`` it ranks highest."""
    spans = word_spans(text)
    candidates = [i for i, (s, e) in enumerate(spans[:MAX_OCCLUDED]) if not is_function_word(text[s:e])]
    if prior is None or len(candidates) <= budget:
        return candidates
    return sorted(sorted(candidates, key=lambda i: -prior[i])[:budget])


def occlusion_weights(
    text: str,
    label: int,
    probabilities: Probabilities,
    prior: list[float] | None = None,
    base: float | None = None,
) -> list[float]:
    """Each word's weight: p(label | text) - p(label | text without the word).

    Only the ``occlusion_candidates`` are occluded (every content word when no
    ``prior`` ranks them); other words weigh 0. ``base`` is p(label | text) when
    the caller has it from the post's own row (one row fewer).
    """
    spans = word_spans(text)
    candidates = occlusion_candidates(text, prior)
    weights = [0.0] * len(spans)
    if not candidates:
        return weights
    rows = ([] if base is not None else [text]) + [without_words(text, spans, {i}) for i in candidates]
    probs = probabilities(rows)[:, label]
    if base is None:
        base, probs = float(probs[0]), probs[1:]
    for i, p in zip(candidates, probs, strict=True):
        weights[i] = float(base - p)
    return weights


def ranked(text: str, weights: list[float], k: int = TOP_K, floor: float = 0.0) -> list[Contribution]:
    """The k content words that pushed most toward the label, strongest first.

    Only words with weight above ``floor`` are reasons for the label; function
    words and markers are not listed.
    """
    spans = word_spans(text)
    order = sorted(range(len(spans)), key=lambda i: -weights[i])
    chosen = [i for i in order if weights[i] > floor and not is_function_word(text[spans[i][0] : spans[i][1]])]
    return [Contribution(shown(text, spans[i]), round(weights[i], 5)) for i in chosen[:k]]


def top_contributions(
    text: str, encoding: Encoding, terms: np.ndarray, label: int, k: int = TOP_K
) -> list[Contribution]:
    """The sentiment explanation of every post: decomposition, content words first."""
    return ranked(text, decomposition_weights(text, encoding, terms, label), k)


def occlusion_contributions(
    text: str,
    label: int,
    probabilities: Probabilities,
    k: int = TOP_K,
    prior: list[float] | None = None,
    base: float | None = None,
) -> list[Contribution]:
    """The moderation explanation of a flagged post: the words whose removal lowers the score most
    (by at least OCCLUSION_FLOOR: smaller changes are noise, not reasons). When no single word
    matters that much (two insults, each enough alone), the words that lower it at all."""
    weights = occlusion_weights(text, label, probabilities, prior, base)
    return ranked(text, weights, k, OCCLUSION_FLOOR) or ranked(text, weights, k)
