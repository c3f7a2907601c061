"""Posts/s of the inference module on real tweets, per batch size, threads and variant.

    python benchmarks/inference.py [FOLDER ...] [--posts 2000]

Default folders: models/social-minilm (int8, served) and, when built,
models/build/social-minilm-fp32 (python models/export.py --fp32 --out ...).
Tweets: TweetEval sentiment val from ../shared/data (synthetic posts otherwise).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.inference.session import TextModel  # noqa: E402
from streams.replay.synthetic import SyntheticPosts  # noqa: E402

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "tweeteval" / "sentiment" / "val_text.txt"
DEFAULTS = [Path("models/social-minilm"), Path("models/build/social-minilm-fp32")]


def tweets(count: int) -> tuple[list[str], str]:
    if VAL.is_file():
        texts = VAL.read_text(encoding="utf-8").splitlines()
        return list(itertools.islice(itertools.cycle(texts), count)), "TweetEval sentiment val"
    return [p["text"] for p in itertools.islice(SyntheticPosts(), count)], "synthetic posts"


def rate(model: TextModel, texts: list[str], batch: int) -> float:
    model.predict(texts[:batch])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.predict(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def graph_rate(model: TextModel, texts: list[str], batch: int) -> float:
    """Posts/s of the ONNX graph alone (tokenised beforehand, no heads' post-processing
    or explanations): what the provider itself sustains."""
    encodings = model.tokenizer.encode_batch([model.prepare(text)[0] for text in texts])
    encodings.sort(key=lambda e: sum(e.attention_mask))
    groups = [encodings[start : start + batch] for start in range(0, len(encodings), batch)]
    model.raw_outputs(groups[0])  # warm-up
    started = time.perf_counter()
    for group in groups:
        model.raw_outputs(group)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where ONNX Runtime runs the graph")
    parser.add_argument("--graph-only", action="store_true", help="time the ONNX graph alone (no post-processing)")
    args = parser.parse_args()
    measure = graph_rate if args.graph_only else rate
    folders = [f for f in (args.folders or DEFAULTS) if (f / "manifest.json").is_file()]
    texts, source = tweets(args.posts)
    batches = [int(b) for b in args.batches.split(",")]
    what = "the ONNX graph alone" if args.graph_only else "TextModel.predict, all heads and explanations"
    print(f"{len(texts)} posts of {source}; posts/s of {what}")
    print("| variant | size MB | provider | threads | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("|---|---|---|---|" + "---|" * len(batches))
    for folder in folders:
        for threads in (int(t) for t in args.threads.split(",")):
            model = TextModel(folder, threads=threads, device=args.device)
            provider = model.session.get_providers()[0]
            size = (folder / model.manifest.onnx_file).stat().st_size / 1e6
            variant = model.manifest.raw.get("quantisation", "?")
            rates = [measure(model, texts, b) for b in batches]
            figures = " | ".join(f"{r:.0f}" for r in rates)
            print(f"| {variant} | {size:.0f} | {provider} | {threads} | {figures} |", flush=True)


if __name__ == "__main__":
    main()
