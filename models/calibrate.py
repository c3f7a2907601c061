"""Calibrate a model folder's probabilities and choose its moderation thresholds.

    python models/calibrate.py [models/social-minilm] [--review-precision 0.75] [--block-precision 0.95]

On TweetEval val, through the served ONNX file:
1. temperature scaling per head (Guo et al. 2017): one T per head minimising the
   negative log-likelihood of logits / T; the expected calibration error (15 bins,
   top-label confidence) before and after is cross-fitted (fit on one half of val,
   measured on the other, both ways), so the "after" figure is not in-sample;
2. per moderated head, the precision / recall / flagged share of val at each
   threshold, the block threshold (the lowest with precision >= 0.95 over at least
   20 flagged val posts) and the review threshold (the lowest with precision >= 0.75);
3. the share of a general stream that would be reviewed and blocked: the SemEval-2017
   pool's tweets whose id % 10 == 0 (never used as moderation training rows).

The temperatures and thresholds go into manifest.json (the worker serves them);
the tables into evaluation.json (the model card's figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import STREAM_HOLDOUT, load_all, semeval_pool  # noqa: E402

from streams.inference.folder import MANIFEST, merge_evaluation  # noqa: E402
from streams.inference.moderation import MODERATED_LABELS  # noqa: E402
from streams.inference.normalize import normalize_for_model  # noqa: E402
from streams.inference.session import TextModel  # noqa: E402

BINS = 15
MIN_FLAGGED = 20


def head_logits(model: TextModel, texts: list[str]) -> np.ndarray:
    """[texts, all heads' logits] through the served graph, one post per call as the worker runs it."""
    encodings = model.tokenizer.encode_batch(texts)
    return np.concatenate([model.raw_outputs([e])[0] for e in encodings])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = softmax(logits / temperature)
    return float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """argmin_T NLL(logits / T): a grid over log T, then a finer grid around the best."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 200))
    best = min(grid, key=lambda t: nll(logits, labels, t))
    fine = np.linspace(best * 0.9, best * 1.1, 81)
    return float(min(fine, key=lambda t: nll(logits, labels, t)))


def ece(probs: np.ndarray, labels: np.ndarray) -> float:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, BINS + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def cross_fitted_ece(logits: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(ECE before, ECE after temperature scaling), each half scored with T fitted on the other."""
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    before, after = [], []
    for fit, score in (halves, halves[::-1]):
        t = fit_temperature(logits[fit], labels[fit])
        before.append(ece(softmax(logits[score]), labels[score]))
        after.append(ece(softmax(logits[score] / t), labels[score]))
    return float(np.mean(before)), float(np.mean(after))


def threshold_table(scores: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    rows = []
    for t in np.round(np.arange(0.05, 1.0, 0.01), 2):
        flagged = scores >= t
        hits = int((flagged & truth).sum())
        rows.append(
            {
                "threshold": float(t),
                "flagged": int(flagged.sum()),
                "precision": hits / max(int(flagged.sum()), 1),
                "recall": hits / max(int(truth.sum()), 1),
            }
        )
    return rows


def lowest_with_precision(table: list[dict[str, float]], precision: float) -> dict[str, float] | None:
    """The lowest threshold from which precision stays at or above ``precision``
    (thresholds that flag fewer than MIN_FLAGGED val posts do not count)."""
    for i, row in enumerate(table):
        later = [r for r in table[i:] if r["flagged"] >= MIN_FLAGGED]
        if row["flagged"] >= MIN_FLAGGED and all(r["precision"] >= precision for r in later):
            return row
    return None


def general_stream() -> list[str]:
    """The held-out tenth of the pool, each text once."""
    texts = (normalize_for_model(text) for tweet_id, _, text in semeval_pool() if tweet_id % STREAM_HOLDOUT == 0)
    return list(dict.fromkeys(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("models/social-minilm"))
    parser.add_argument("--review-precision", type=float, default=0.75)
    parser.add_argument("--block-precision", type=float, default=0.95)
    args = parser.parse_args()
    model = TextModel(args.folder, calibrated=False)
    _, val = load_all()
    slices = model.manifest.head_slices
    temperatures, calibration = {}, {}
    scores: dict[str, np.ndarray] = {}
    print(f"{'head':<10} {'T':>6} {'ECE before':>11} {'ECE after':>10}  (cross-fitted halves of val)")
    for head, split in val.items():
        logits = head_logits(model, split.texts)[:, slices[head]]
        labels = np.array(split.labels)
        temperatures[head] = round(fit_temperature(logits, labels), 4)
        before, after = cross_fitted_ece(logits, labels)
        calibration[head] = {"temperature": temperatures[head], "ece_before": before, "ece_after": after}
        print(f"{head:<10} {temperatures[head]:>6.3f} {before:>11.4f} {after:>10.4f}")
        scores[head] = softmax(logits / temperatures[head])
    stream = general_stream()
    stream_logits = head_logits(model, stream)
    thresholds, tables = {}, {}
    stream_scores = {}
    for head, label in MODERATED_LABELS.items():
        k = model.manifest.heads[head].index(label)
        table = threshold_table(scores[head][:, k], np.array(val[head].labels) == k)
        block = lowest_with_precision(table, args.block_precision)
        review = lowest_with_precision(table, args.review_precision)
        if block is None or review is None:
            sys.exit(f"{head}: no threshold reaches the precision asked for on val; lower it")
        thresholds[head] = {"review": review["threshold"], "block": max(block["threshold"], review["threshold"])}
        tables[head] = table
        stream_scores[head] = softmax(stream_logits[:, slices[head]] / temperatures[head])[:, k]
        print(
            f"{head}: review {thresholds[head]['review']} (val precision {review['precision']:.2f}, recall "
            f"{review['recall']:.2f}); block {thresholds[head]['block']} (precision {block['precision']:.2f}, "
            f"recall {block['recall']:.2f})"
        )
    reviewed = np.zeros(len(stream), dtype=bool)
    blocked = np.zeros(len(stream), dtype=bool)
    for head, t in thresholds.items():
        reviewed |= stream_scores[head] >= t["review"]
        blocked |= stream_scores[head] >= t["block"]
    share = {"posts": len(stream), "flagged": float(reviewed.mean()), "blocked": float(blocked.mean())}
    raw = {head: softmax(stream_logits[:, slices[head]])[:, 1] for head in MODERATED_LABELS}
    share["flagged_uncalibrated_0.5"] = float(np.mean(np.maximum(*raw.values()) >= 0.5))
    share["blocked_uncalibrated_0.9"] = float(np.mean(np.maximum(*raw.values()) >= 0.9))
    print(
        f"  uncalibrated scores at review 0.5 / block 0.9 (the defaults before 2.0.0): "
        f"{share['flagged_uncalibrated_0.5']:.1%} flagged, {share['blocked_uncalibrated_0.9']:.1%} blocked"
    )
    print(
        f"general stream (SemEval-2017 pool, id % {STREAM_HOLDOUT} == 0, {len(stream)} tweets): "
        f"{share['flagged']:.1%} flagged, {share['blocked']:.1%} blocked"
    )
    manifest_path = args.folder / MANIFEST
    manifest = orjson.loads(manifest_path.read_bytes())
    manifest["calibration"] = {"method": "temperature scaling on TweetEval val", "temperature": temperatures}
    manifest["thresholds"] = thresholds
    manifest_path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    merge_evaluation(
        args.folder,
        {"calibration": calibration, "thresholds": {"chosen": thresholds, "val": tables}, "general_stream": share},
    )
    print(f"wrote {manifest_path} and {args.folder / 'evaluation.json'}")


if __name__ == "__main__":
    main()
