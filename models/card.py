"""Write MODEL_CARD.md for a model folder from its manifest and live examples.

python models/card.py [models/social-minilm]
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.inference.session import TextModel  # noqa: E402

EXAMPLES = [
    "I absolutely love this new phone, the camera is amazing!",
    "Worst customer service ever. Waited two hours and nobody helped.",
    "The meeting has been moved to Thursday at 3pm.",
    "Can't believe we lost again, so frustrating #fail",
    "@user you are a pathetic idiot, shut up",
    "So proud of my team today, we did it! 🎉",
]


def examples_table(model: TextModel) -> str:
    rows = [
        "| text | sentiment | emotion | offensive | top words (weight toward the sentiment label) |",
        "|---|---|---|---|---|",
    ]
    for text, p in zip(EXAMPLES, model.predict(EXAMPLES), strict=True):
        words = ", ".join(f"{c.token} ({c.weight:+.2f})" for c in p.explanation[:4])
        sentiment = p.heads["sentiment"]
        rows.append(
            f"| {text} | {sentiment.label} {sentiment.scores[sentiment.label]:.2f} | {p.heads['emotion'].label} "
            f"| {p.heads['offensive'].scores['offensive']:.2f} | {words} |"
        )
    return "\n".join(rows)


def render(folder: Path) -> str:
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    model = TextModel(folder, threads=2)
    metrics = manifest.get("metrics_val", {})
    heads = "\n".join(f"- **{head}**: {', '.join(labels)}" for head, labels in manifest["heads"].items())
    size_mb = (folder / manifest["onnx"]).stat().st_size / 1e6
    return f"""# {manifest["name"]} {manifest["version"]}

A multi-task English tweet model: one pass of a fine-tuned MiniLM encoder
({manifest["base_encoder"]}) feeds a linear head per task, and yields the pooled,
L2-normalised embedding. ONNX, {manifest["quantisation"]}, {size_mb:.0f} MB.

## Heads
{heads}
- **embedding**: {manifest["embedding_dim"]} floats, mean of the content tokens' final states, L2-normalised
- **explanation**: the exact contribution of each word to the predicted sentiment

## Validation metrics (TweetEval val, official metrics, x100)

| head | metric | this model | RoBERTa-base (test) | target |
|---|---|---|---|---|
| sentiment | macro-averaged recall | {metrics.get("sentiment", "n/a")} | 71.3 | ≥ 70 |
| offensive | macro-F1 | {metrics.get("offensive", "n/a")} | 79.5 | ≥ 78 |
| hate | macro-F1 | {metrics.get("hate", "n/a")} | 46.6 | ≥ 50 |
| emotion | macro-F1 | {metrics.get("emotion", "n/a")} | 76.1 | ≥ 72 |

These are measured on val, through the worker's own inference module on the served ONNX
file (`python models/evaluate.py {folder}`). The official test sets are held out and
evaluated independently; HatEval's test set is known to be much harder than its val.

## How the explanation works

Pooling is the mean over content tokens (the [CLS] and [SEP] markers are excluded) and
each head is linear, so a head's logit for class k is exactly
`sum_t (h_t · w_k) / n + b_k`. The graph outputs these per-token terms. A word's weight is
its terms' contribution to the predicted class minus their mean over the classes (softmax
ignores a shift shared by all classes), summed over the word's pieces. The weights plus
the bias differences add up to the logit differences exactly (checked by
`tests/unit/test_inference.py`). Positive weight pushes toward the predicted label.

{examples_table(model)}

## Training
- Data: {manifest["provenance"]}.
- Sentiment: the SemEval-2017 task 4A pool, minus every tweet whose normalised text
  matches a TweetEval sentiment val tweet (1,995 of 2,000 found) and duplicates:
  47,446 tweets. Offensive, hate, emotion: TweetEval train.
- Normalisation (training and serving): {manifest["normalisation"]}.
- Max length {manifest["max_length"]} tokens (tweets average ~30).
- Run: {orjson.dumps(manifest.get("training", {})).decode()}
- Rebuild: `pip install -e '.[train]' && python models/train.py && python models/export.py`

## Intended use and limits
For monitoring the tone and toxicity of public English posts in aggregate, and for
routing posts to human moderators. Not for decisions about individuals without review.
Trained on English tweets of 2013–2019: other languages are processed but unreliable (the
worker marks each post's detected language), slang drifts, and the hate and offensive
labels carry the annotators' biases (dialect and identity terms are known to be
over-flagged by models trained on these sets). Fine-tuning moved the embedding away from
the general-purpose sentence space of the base encoder toward these tasks.

## Citation
Barbieri et al., TweetEval: Unified Benchmark and Comparative Evaluation for Tweet
Classification, Findings of EMNLP 2020. Rosenthal, Farra, Nakov, SemEval-2017 Task 4:
Sentiment Analysis in Twitter, 2017. Zampieri et al., OffensEval 2019. Basile et al.,
HatEval 2019. Mohammad et al., SemEval-2018 Task 1 (emotion). Wang et al., MiniLM, 2020.
"""


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models/social-minilm")
    (folder / "MODEL_CARD.md").write_text(render(folder), encoding="utf-8")
    print(f"wrote {folder / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
