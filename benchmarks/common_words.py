"""The everyday words of tweets, which the alert policy never treats as news (streams/trends/common_words.txt).

    python benchmarks/common_words.py [--save]

A keyword is *common* when it is among the ``--top`` most frequent keywords (by
the share of tweets that contain it, as streams.terms extracts them) in every one
of several independent collections: the SemEval-2017 pool of 2012-2013, of 2014
and of 2015-2016, and TweetEval's offensive, hate and emotion training tweets.
A word that is frequent in only one collection is that collection's topic
("iphone" in 2012, "trump" in 2015), and a topic can trend; a word frequent in all
is part of how people write ("new", "work", "love"). For the other languages of
UMSAB, one collection each would let its topics in ("berlusconi", "bjp"): their
function words come from stopwords-iso (MIT, the ``stopwordsiso`` package of the
training extra) instead, folded as keywords are (Hindi's list is in Devanagari:
Hindi tweeted in Latin script is not covered). Training data only: no test split
is read.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.replay.sources import snowflake_ms  # noqa: E402
from streams.terms import MIN_WORD_CHARS, STOP_WORDS, fold, keywords  # noqa: E402
from streams.trends.policy import COMMON_WORDS_FILE  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OTHER_LANGUAGES = {"arabic": "ar", "french": "fr", "german": "de", "hindi": "hi", "italian": "it", "portuguese": "pt",
                   "spanish": "es"}  # fmt: skip
YEAR_MS = 365.25 * 24 * 3600 * 1000


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"{path} is missing: the training data (see ../shared/data/README.md)")
    return path


def pool_by_period() -> dict[str, list[str]]:
    """The pool's tweets in three periods, by their ids' creation time."""
    periods: dict[str, list[str]] = {"2012-2013": [], "2014": [], "2015-2016": []}
    for path in sorted(require(DATA / "semeval2017").glob("*.tsv")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split("\t")
            if len(fields) < 3 or not fields[0].isdigit():
                continue
            year = 1970 + snowflake_ms(int(fields[0])) / YEAR_MS
            period = "2012-2013" if year < 2014 else "2014" if year < 2015 else "2015-2016"
            periods[period].append(fields[2])
    return periods


def tweeteval_train() -> list[str]:
    texts = []
    for task in ("offensive", "hate", "emotion"):
        texts += require(DATA / "tweeteval" / task / "train_text.txt").read_text(encoding="utf-8").splitlines()
    return texts


def top_words(texts: list[str], top: int) -> list[str]:
    """The single-word keywords in the most tweets."""
    frequency: Counter[str] = Counter()
    for text in texts:
        frequency.update({word for word in keywords(text) if " " not in word})
    return [word for word, _ in frequency.most_common(top)]


def stop_words(code: str) -> list[str]:
    try:
        import stopwordsiso
    except ImportError:
        sys.exit("stopwordsiso is missing: pip install -e '.[train]'")
    folded = {fold(word) for word in stopwordsiso.stopwords(code)}
    return sorted(word for word in folded if len(word) >= MIN_WORD_CHARS and word not in STOP_WORDS)


def common(top: int) -> dict[str, list[str]]:
    collections = [*pool_by_period().values(), tweeteval_train()]
    tops = [set(top_words(texts, top)) for texts in collections]
    found = {"english": sorted(set.intersection(*tops))}
    for language, code in OTHER_LANGUAGES.items():
        found[language] = stop_words(code)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=300, help="most frequent keywords per English collection")
    parser.add_argument("--save", action="store_true", help=f"write {COMMON_WORDS_FILE.name}")
    args = parser.parse_args()
    found = common(args.top)
    for language, words in found.items():
        print(f"{language:11} {len(words):4}  {' '.join(words[:40])}")
    if args.save:
        header = [f"# Written by: python benchmarks/common_words.py --top {args.top} --save",
                  "# Keywords frequent in every collection of tweets: never news by themselves."]  # fmt: skip
        lines = header + [f"# {language}\n" + "\n".join(words) for language, words in found.items()]
        COMMON_WORDS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {COMMON_WORDS_FILE}")


if __name__ == "__main__":
    main()
