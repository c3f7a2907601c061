"""Faithfulness and readability of the explanation methods, on TweetEval val.

    python benchmarks/explanations.py [--model models/social-minilm] [--posts 120]

For each head (sentiment on its val set; offensive and hate on the val posts the
model flags) and each method it prints the ERASER metrics of DeYoung et al. 2020
over the top k = 1, 3, 5 words, averaged over k (the AOPC form):
comprehensiveness = p(label | post) - p(label | post without the top-k words)
(higher: the words were needed), sufficiency = p(label | post) - p(label | the
top-k words alone) (lower: the words suffice); the share of the top-3 words that
are function words, punctuation or markers (lower reads better); and the cost in
milliseconds per post. Methods: random words; decomposition ranked by absolute
weight over every word (the explanation of models before 2.0.0); decomposition
over content words; occlusion over every content word; occlusion over the
OCCLUDED_WORDS content words the decomposition ranks highest (what the worker
serves for a flagged post; here its cost includes the post's own row, which the
worker has from scoring the post).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from data import load_all  # noqa: E402

from streams.inference import explain  # noqa: E402
from streams.inference.folder import merge_evaluation  # noqa: E402
from streams.inference.session import TextModel  # noqa: E402
from streams.settings import DEFAULT_MODEL_DIR  # noqa: E402

KS = (1, 3, 5)
Ranker = Callable[[TextModel, str, str, int], list[int]]  # word indices, strongest first


def decomposition(model: TextModel, text: str, head: str, label: int) -> list[float]:
    encoding = model.tokenizer.encode(text)
    _, token_logits, _ = model.raw_outputs([encoding])
    part = model.manifest.head_slices[head]
    return explain.decomposition_weights(text, encoding, token_logits[0][:, part], label)


def rank_absolute_all(model: TextModel, text: str, head: str, label: int) -> list[int]:
    weights = decomposition(model, text, head, label)
    return sorted(range(len(weights)), key=lambda i: -abs(weights[i]))


def _content_first(text: str, weights: list[float]) -> list[int]:
    spans = explain.word_spans(text)
    order = sorted(range(len(spans)), key=lambda i: -weights[i])
    content = [i for i in order if not explain.is_function_word(text[spans[i][0] : spans[i][1]])]
    return content + [i for i in order if i not in content]


def rank_decomposition_content(model: TextModel, text: str, head: str, label: int) -> list[int]:
    return _content_first(text, decomposition(model, text, head, label))


def rank_occlusion_content(model: TextModel, text: str, head: str, label: int) -> list[int]:
    weights = explain.occlusion_weights(text, label, lambda rows: model.head_probabilities(rows, head))
    return _content_first(text, weights)


def rank_occlusion_strongest(model: TextModel, text: str, head: str, label: int) -> list[int]:
    base, prior = model.label_evidence(text, head, label)
    weights = explain.occlusion_weights(text, label, lambda rows: model.head_probabilities(rows, head), prior, base)
    occluded = set(explain.occlusion_candidates(text, prior))
    # the words left out follow the occluded ones, in the decomposition's order
    lowest = min(weights) - 1
    return _content_first(text, [w if i in occluded else lowest + prior[i] / 1e6 for i, w in enumerate(weights)])


def rank_random(model: TextModel, text: str, head: str, label: int) -> list[int]:
    order = list(range(len(explain.word_spans(text))))
    random.Random(text).shuffle(order)
    return order


METHODS: dict[str, Ranker] = {
    "random words": rank_random,
    "decomposition, all words by |weight| (before 2.0.0)": rank_absolute_all,
    "decomposition, content words": rank_decomposition_content,
    "occlusion, every content word": rank_occlusion_content,
    f"occlusion, {explain.OCCLUDED_WORDS} strongest content words (served)": rank_occlusion_strongest,
}


def eraser(model: TextModel, texts: list[str], head: str, ranker: Ranker) -> dict[str, float]:
    comprehensiveness, sufficiency, function_share, seconds = [], [], [], 0.0
    for text in texts:
        probs = model.head_probabilities([text], head)[0]
        label = int(probs.argmax())
        started = time.perf_counter()
        order = ranker(model, text, head, label)
        seconds += time.perf_counter() - started
        spans = explain.word_spans(text)
        rows = []
        for k in KS:
            top = set(order[:k])
            rows += [explain.without_words(text, spans, top), explain.only_words(text, spans, top)]
        reduced = model.head_probabilities(rows, head)[:, label]
        comprehensiveness.append(float(np.mean(probs[label] - reduced[0::2])))
        sufficiency.append(float(np.mean(probs[label] - reduced[1::2])))
        top3 = [text[spans[i][0] : spans[i][1]] for i in order[:3]]
        function_share.append(sum(explain.is_function_word(w) for w in top3) / max(len(top3), 1))
    return {
        "comprehensiveness": float(np.mean(comprehensiveness)),
        "sufficiency": float(np.mean(sufficiency)),
        "function_words_top3": float(np.mean(function_share)),
        "ms_per_post": 1000 * seconds / len(texts),
    }


def samples(model: TextModel, posts: int, seed: int) -> dict[str, list[str]]:
    """Val posts per head: sentiment at random; offensive and hate among those the model flags."""
    _, val = load_all()
    rng = random.Random(seed)
    out = {"sentiment": rng.sample(val["sentiment"].texts, posts)}
    for head in ("offensive", "hate"):
        texts = [t for t in val[head].texts if len(explain.word_spans(t)) >= 3]
        probs = model.head_probabilities(texts, head)[:, 1]
        flagged = [t for t, p in zip(texts, probs, strict=True) if p >= 0.5]
        out[head] = rng.sample(flagged, min(posts, len(flagged)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--posts", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--save", action="store_true", help="store the table in the model's evaluation.json")
    args = parser.parse_args()
    model = TextModel(args.model)
    print(f"model {model.manifest.tag}, {args.posts} val posts per head, top-k for k in {KS}")
    print(f"{'head':<10} {'method':<52} {'compr.↑':>8} {'suff.↓':>8} {'fn top3↓':>9} {'ms/post':>8}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for head, texts in samples(model, args.posts, args.seed).items():
        for name, ranker in METHODS.items():
            m = results.setdefault(head, {})[name] = eraser(model, texts, head, ranker)
            print(
                f"{head:<10} {name:<52} {m['comprehensiveness']:>8.3f} {m['sufficiency']:>8.3f} "
                f"{m['function_words_top3']:>9.0%} {m['ms_per_post']:>8.1f}"
            )
    if args.save:
        path = merge_evaluation(args.model, {"explanations": {"posts_per_head": args.posts, "methods": results}})
        print(f"saved to {path}")


if __name__ == "__main__":
    main()
