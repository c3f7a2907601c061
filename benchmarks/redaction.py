"""Precision and recall of the PII redaction on the labelled corpus, per kind.

    python benchmarks/redaction.py

A gold value counts as found when a redacted span of the same kind covers it
entirely; every redacted span that covers no gold value of its kind is a false
positive.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_corpus import HELD_OUT, corpus  # noqa: E402

from streams.privacy.redact import DEFAULT_KINDS, find_pii  # noqa: E402


def score(items: list[dict]) -> tuple[Counter[str], Counter[str], Counter[str], list[str]]:  # type: ignore[type-arg]
    tp, fp, fn = Counter[str](), Counter[str](), Counter[str]()
    misses: list[str] = []
    for item in items:
        text = item["text"]
        spans = find_pii(text, DEFAULT_KINDS)
        gold = [(g["kind"], text.index(g["value"]), text.index(g["value"]) + len(g["value"])) for g in item["pii"]]
        for kind, start, end in gold:
            if any(k == kind and s <= start and e >= end for s, e, k in spans):
                tp[kind] += 1
            else:
                fn[kind] += 1
                misses.append(f"missed {kind}: {text!r}")
        for start, end, kind in spans:
            if not any(k == kind and start <= s and end >= e for k, s, e in gold):
                fp[kind] += 1
                misses.append(f"false {kind}: {text[start:end]!r} in {text!r}")
    return tp, fp, fn, misses


def report(title: str, items: list[dict]) -> None:  # type: ignore[type-arg]
    tp, fp, fn, misses = score(items)
    print(f"\n{title}: {len(items)} posts, {sum(1 for i in items if not i['pii'])} without PII\n")
    print("| kind | precision | recall | found | false alarms | missed |")
    print("|---|---|---|---|---|---|")
    for kind in DEFAULT_KINDS:
        precision = tp[kind] / max(tp[kind] + fp[kind], 1)
        recall = tp[kind] / max(tp[kind] + fn[kind], 1)
        print(f"| {kind} | {precision:.3f} | {recall:.3f} | {tp[kind]} | {fp[kind]} | {fn[kind]} |")
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    print(
        f"| all | {total_tp / max(total_tp + total_fp, 1):.3f} | {total_tp / max(total_tp + total_fn, 1):.3f} "
        f"| {total_tp} | {total_fp} | {total_fn} |"
    )
    for line in misses[:40]:
        print(line)


def main() -> None:
    report("Tuning corpus (the patterns were developed on it)", corpus())
    report("Held-out corpus (written afterwards, never tuned on)", HELD_OUT)


if __name__ == "__main__":
    main()
