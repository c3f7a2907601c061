"""Training and validation data for the text model, read from ../shared/data.

The sentiment pool (SemEval-2017 task 4A) overlaps TweetEval's sentiment val
split once mentions and links are normalised: every pool tweet whose normalised
text equals a val tweet is dropped, as are duplicates, so val stays unseen.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from streams.inference.normalize import normalize_for_model

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SOURCES = (
    "TweetEval (Barbieri et al., 2020): https://github.com/cardiffnlp/tweeteval ; "
    "SemEval-2017 Task 4A pool: https://github.com/cbaziotis/datastories-semeval2017-task4"
)

HEADS: dict[str, list[str]] = {
    "sentiment": ["negative", "neutral", "positive"],
    "offensive": ["not-offensive", "offensive"],
    "hate": ["not-hate", "hate"],
    "emotion": ["anger", "joy", "optimism", "sadness"],
}


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]


def _require(path: Path) -> Path:
    if not path.exists():
        sys.exit(
            f"missing training data: {path} (place the shared data folder at {DATA_DIR}; public sources: {SOURCES})"
        )
    return path


def _tweeteval(task: str, split: str) -> Split:
    folder = DATA_DIR / "tweeteval" / task
    texts = _require(folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = _require(folder / f"{split}_labels.txt").read_text(encoding="utf-8").split()
    if len(texts) != len(labels):
        sys.exit(f"{folder}: {len(texts)} texts but {len(labels)} labels")
    return Split([normalize_for_model(t) for t in texts], [int(label) for label in labels])


UMSAB_LANGUAGES = ("arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish")


def umsab(language: str, split: str) -> Split:
    """UMSAB tweet sentiment (0 negative, 1 neutral, 2 positive) of one language, as written: the
    multilingual encoders tokenise raw text."""
    folder = DATA_DIR / "umsab" / language
    texts = _require(folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = _require(folder / f"{split}_labels.txt").read_text(encoding="utf-8").split()
    if len(texts) != len(labels):
        sys.exit(f"{folder}: {len(texts)} texts but {len(labels)} labels")
    return Split(texts, [int(label) for label in labels])


def macro_f1(truth: list[int], predicted: list[int], labels: int = 3) -> float:
    """Macro-F1 over every label (x100), a label never predicted nor true counting 0."""
    from sklearn.metrics import f1_score

    return 100 * float(f1_score(truth, predicted, labels=list(range(labels)), average="macro", zero_division=0))


def semeval_pool() -> list[tuple[int, str, str]]:
    """(tweet id, label, raw text) of every line of the SemEval-2017 pool."""
    folder = _require(DATA_DIR / "semeval2017")
    rows: list[tuple[int, str, str]] = []
    for path in sorted(folder.glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for fields in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(fields) >= 3 and fields[1] in HEADS["sentiment"]:
                    text = fields[2].strip()
                    if len(text) >= 2 and text[0] == text[-1] == '"':
                        text = text[1:-1]
                    rows.append((int(fields[0]), fields[1], text))
    if not rows:
        sys.exit(f"no tweets found in {folder}/*.tsv")
    return rows


_NOT_WORD = re.compile(r"[^a-z0-9]+")


def match_key(text: str) -> str:
    """A loose key for finding the same tweet in two dumps.

    TweetEval dropped links and kept stray quotes, the pool kept links: compare
    lower-cased words only, without links and mentions.
    """
    text = re.sub(r"\bhttp\S*|@\w+", " ", normalize_for_model(text).lower())
    return _NOT_WORD.sub(" ", text).strip()


def sentiment_train(val: Split) -> Split:
    held_out = {match_key(text) for text in val.texts}
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    for _, label, raw in semeval_pool():
        text = normalize_for_model(raw)
        key = match_key(raw)
        if not key or key in held_out or key in seen:
            continue
        seen.add(key)
        texts.append(text)
        labels.append(HEADS["sentiment"].index(label))
    return Split(texts, labels)


def load_all() -> tuple[dict[str, Split], dict[str, Split]]:
    """(train, val) splits per head."""
    val = {head: _tweeteval(head, "val") for head in HEADS}
    train = {head: _tweeteval(head, "train") for head in HEADS if head != "sentiment"}
    train["sentiment"] = sentiment_train(val["sentiment"])
    return train, val


STREAM_HOLDOUT = 10  # pool tweets whose id % 10 == 0 stay out of the fairness rows: the general-stream check


def fairness_rows(train: dict[str, Split], seed: int) -> dict[str, Split]:
    """Each head's training split with the identity-bias rows of models/identity.py added."""
    import random

    from identity import counterfactual_copies, generated, names_identity

    rng = random.Random(seed)
    made = generated(1400, 0.15, rng)
    made_texts = [normalize_for_model(text) for text, _, _ in made]
    toxic = [int(is_toxic) for _, _, is_toxic in made]
    pool = [
        normalize_for_model(raw)
        for tweet_id, label, raw in semeval_pool()
        if label != "negative" and tweet_id % STREAM_HOLDOUT and names_identity(raw)
    ]
    pool = rng.sample(pool, min(len(pool), 1200))
    pool_swapped, _ = counterfactual_copies(pool, [0] * len(pool), 0.3, rng)
    benign_real = pool + pool_swapped
    out = dict(train)
    for head, share in (("offensive", 0.5), ("hate", 0.25)):
        split = train[head]
        swapped, swapped_labels = counterfactual_copies(split.texts, split.labels, share, rng)
        out[head] = Split(
            split.texts + swapped + made_texts + benign_real,
            split.labels + swapped_labels + toxic + [0] * len(benign_real),
        )
    benign = [(text, made[i][1]) for i, text in enumerate(made_texts) if not toxic[i]][:1200]
    sentiment = train["sentiment"]
    out["sentiment"] = Split(
        sentiment.texts + [text for text, _ in benign],
        sentiment.labels + [HEADS["sentiment"].index(label) for _, label in benign],
    )
    return out
