"""Print every head's official TweetEval metric on val for a model folder.

    python models/evaluate.py [models/social-minilm] [--vader]

Runs the exported ONNX graph through the worker's own inference module, so the
figures are those of what is served. Metrics: sentiment macro-averaged recall,
offensive / hate / emotion macro-F1 (x100).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson
from sklearn.metrics import f1_score, recall_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import HEADS, _tweeteval  # noqa: E402

from streams.inference.session import TextModel  # noqa: E402


def official_metric(head: str, truth: list[int], predicted: list[int]) -> float:
    if head == "sentiment":
        return 100 * float(recall_score(truth, predicted, average="macro"))
    return 100 * float(f1_score(truth, predicted, average="macro"))


def evaluate_folder(folder: Path, threads: int = 2, device: str = "cpu") -> dict[str, float]:
    model = TextModel(folder, threads=threads, device=device)
    metrics: dict[str, float] = {}
    for head, labels in HEADS.items():
        val = _tweeteval(head, "val")
        predicted: list[int] = []
        for start in range(0, len(val.texts), 128):
            for p in model.predict(val.texts[start : start + 128]):
                predicted.append(labels.index(p.heads[head].label))
        metrics[head] = round(official_metric(head, val.labels, predicted), 2)
    return metrics


def vader_sentiment() -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    val = _tweeteval("sentiment", "val")
    scores = np.array([analyzer.polarity_scores(t)["compound"] for t in val.texts])
    # VADER's documented thresholds: >= 0.05 positive, <= -0.05 negative.
    predicted = np.where(scores >= 0.05, 2, np.where(scores <= -0.05, 0, 1))
    return round(official_metric("sentiment", val.labels, list(predicted)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("models/social-minilm"))
    parser.add_argument("--vader", action="store_true", help="also score VADER on sentiment val")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where ONNX Runtime runs the graph")
    args = parser.parse_args()
    metrics: dict[str, object] = {"model": str(args.folder), **evaluate_folder(args.folder, device=args.device)}
    if args.vader:
        metrics["vader_sentiment"] = vader_sentiment()
    print(orjson.dumps(metrics, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
