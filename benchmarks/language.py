"""How well the worker tells English (which its text model reads) from other languages.

    python benchmarks/language.py

On benchmarks/data/language_sample.tsv (144 short posts in 12 languages, written
for this sample: everyday posts, 2 to 9 words) and on TweetEval's 2,000 English
sentiment val tweets (../shared/data), it prints the identifier's accuracy per
language, how many non-English posts would be taken for English (and so get
English labels presented as valid), and how many English tweets would be marked
unsupported, overall and for short tweets (at most 60 characters).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from streams.inference.language import detect_language, is_supported  # noqa: E402

SAMPLE = ROOT / "benchmarks" / "data" / "language_sample.tsv"
ENGLISH = ROOT.parent / "shared" / "data" / "tweeteval" / "sentiment" / "val_text.txt"


def sample() -> list[tuple[str, str]]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return [(code, text) for code, text in (line.split("\t", 1) for line in lines if line and line[0] != "#")]


def main() -> None:
    if not ENGLISH.exists():
        sys.exit(f"missing {ENGLISH}: place the shared data folder next to the project (see ../shared/data/README.md)")
    rows = sample()
    hits: dict[str, Counter[str]] = defaultdict(Counter)
    for code, text in rows:
        hits[code][detect_language(text)] += 1
    print(f"{'language':<9} {'posts':>5} {'correct':>8} {'taken for English':>18}  most common errors")
    for code, detected in sorted(hits.items()):
        total = sum(detected.values())
        errors = ", ".join(f"{c}×{n}" for c, n in detected.most_common() if c != code)
        print(f"{code:<9} {total:>5} {detected[code] / total:>8.0%} {detected['en']:>18}  {errors}")
    correct = sum(hits[c][c] for c in hits)
    taken = sum(is_supported(detect_language(text)) for _, text in rows)
    print(
        f"\nsample: {correct}/{len(rows)} = {correct / len(rows):.1%} exact language; "
        f"{taken} of {len(rows)} non-English posts treated as supported (English)"
    )
    english = ENGLISH.read_text(encoding="utf-8").splitlines()
    short = [t for t in english if len(t) <= 60]
    for name, texts in (("English val tweets", english), ("short English val tweets (<= 60 chars)", short)):
        unsupported = Counter(detect_language(t) for t in texts if not is_supported(detect_language(t)))
        n = sum(unsupported.values())
        print(f"{name}: {len(texts)}, marked unsupported {n} ({n / len(texts):.1%}) {dict(unsupported.most_common(5))}")


if __name__ == "__main__":
    main()
