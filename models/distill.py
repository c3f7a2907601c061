"""Distil the served model into a student with fewer encoder layers and save a checkpoint.

    python models/distill.py [--teacher models/build/checkpoint-2.pt] [--layers 1,3,5]
                             [--out models/build/student.pt]

The student starts as the teacher with only ``--layers`` of its six (embeddings and
heads included) and learns, on the tasks' training data with the identity-bias rows
(the teacher's own data, so its fairness carries over), from three signals at once:

- every head's softened probabilities from the teacher (temperature ``--temperature``),
  on every text, whichever task it comes from: each tweet teaches all four heads, as
  unlabelled data would;
- the batch's own labels (class-weighted cross-entropy, as the teacher was trained);
- the teacher's pooled embedding (cosine), which the topic clusterer reads;
- with ``--gamma``, the teacher's hidden states after each kept layer (mean squared error
  over content tokens, as TinyBERT matches intermediate layers).

Export, calibration and the audit are the teacher's (``models/export.py --checkpoint``
reads the layer count from the checkpoint).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import HEADS, Split, fairness_rows, load_all  # noqa: E402
from evaluate import official_metric  # noqa: E402
from network import MultiTaskModel  # noqa: E402
from train import (  # noqa: E402
    ENCODER_DIR,
    OVERSAMPLE,
    class_weights,
    encode,
    head_slices,
    optimise,
    sample_sentiment,
    tokenizer,
    training_plan,
)


def student_from(teacher: MultiTaskModel, layers: list[int]) -> MultiTaskModel:
    student = MultiTaskModel(str(ENCODER_DIR), layers)
    kept = {
        key.replace(f"encoder.encoder.layer.{old}.", f"encoder.encoder.layer.{new}."): value
        for new, old in enumerate(layers)
        for key, value in teacher.state_dict().items()
        if key.startswith(f"encoder.encoder.layer.{old}.")
    }
    shared = {k: v for k, v in teacher.state_dict().items() if not k.startswith("encoder.encoder.layer.")}
    student.load_state_dict({**shared, **kept})
    return student


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) over every head's slice, softened, scaled by T^2 (Hinton et al. 2015)."""
    total = student.new_zeros(())
    for part in head_slices().values():
        target = nn.functional.softmax(teacher[:, part] / temperature, dim=-1)
        log_student = nn.functional.log_softmax(student[:, part] / temperature, dim=-1)
        total = total + nn.functional.kl_div(log_student, target, reduction="batchmean")
    return total * temperature**2


@torch.no_grad()
def val_metrics(model: MultiTaskModel, val: dict[str, Split], device: torch.device) -> dict[str, float]:
    """Every head's official metric on val, in torch (fp32, before export): a quick readout;
    the served figures are export.py's, measured on the int8 graph."""
    was_training = model.training
    model.eval()
    tok, slices, metrics = tokenizer(), head_slices(), {}
    for head, split in val.items():
        predicted: list[int] = []
        for start in range(0, len(split.texts), 256):
            ids, mask = encode(tok, split.texts[start : start + 256])
            logits = model.head_logits(ids.to(device), mask.to(device))[:, slices[head]]
            predicted += logits.argmax(dim=-1).tolist()
        metrics[head] = round(official_metric(head, split.labels, predicted), 2)
    model.train(was_training)
    return metrics


def layer_loss(
    student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], layers: list[int], mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared distance between each student layer's hidden states and those of the
    teacher layer it started as, over content tokens (index 0 is the embeddings' output)."""
    tokens = mask.sum().clamp(min=1.0)
    total = student[0].new_zeros(())
    for new, old in enumerate(layers):
        squared = (student[new + 1] - teacher[old + 1]).pow(2).mean(dim=-1, keepdim=True)
        total = total + (squared * mask).sum() / tokens
    return total / len(layers)


def distil(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = torch.device(args.device)
    train_data, val_data = load_all()
    train_data = fairness_rows(train_data, args.seed)
    sample_sentiment(train_data, args.sentiment_sample, rng)
    tok = tokenizer()
    teacher = MultiTaskModel(str(ENCODER_DIR))
    teacher.load_state_dict(torch.load(args.teacher, map_location="cpu"))
    teacher.eval()
    layers = [int(i) for i in args.layers.split(",")]
    student = student_from(teacher, layers)
    teacher.to(device)
    student.to(device)
    slices = head_slices()
    weights = {h: class_weights(s.labels, len(HEADS[h])).to(device) for h, s in train_data.items()}
    if args.evaluate:
        print(f"val (torch, fp32): teacher {val_metrics(teacher, val_data, device)}", flush=True)
    plan, optimizer, schedule = training_plan(student, train_data, args, rng)
    student.train()
    started, seen = time.time(), 0
    for step, (head, rows) in enumerate(plan):
        split = train_data[head]
        ids, mask = encode(tok, [split.texts[i] for i in rows])
        ids, mask = ids.to(device), mask.to(device)
        every_layer = args.gamma > 0
        with torch.no_grad():
            *_, teacher_mean, teacher_layers = teacher.pooled_layers(ids, mask, every_layer)
            teacher_logits = teacher.heads(teacher_mean)
        _, content, _, mean, student_layers = student.pooled_layers(ids, mask, every_layer)
        logits = student.heads(mean)
        target = torch.tensor([split.labels[i] for i in rows], device=device)
        hard = nn.functional.cross_entropy(logits[:, slices[head]], target, weight=weights[head])
        soft = soft_loss(logits, teacher_logits, args.temperature)
        embedding = 1 - nn.functional.cosine_similarity(mean, teacher_mean, dim=-1).mean()
        states = logits.new_zeros(())
        if student_layers is not None and teacher_layers is not None:
            states = layer_loss(student_layers, teacher_layers, layers, content)
        loss = args.alpha * soft + (1 - args.alpha) * hard + args.beta * embedding + args.gamma * states
        optimise(student, loss, optimizer, schedule)
        seen += len(rows)
        if step % 100 == 0:
            rate = seen / (time.time() - started)
            print(
                f"step {step}/{len(plan)} {head} soft {soft.item():.3f} hard {hard.item():.3f} "
                f"embedding {embedding.item():.4f} states {states.item():.3f} {rate:.0f} posts/s",
                flush=True,
            )
        if step and step % 500 == 0:
            torch.save({k: v.cpu() for k, v in student.state_dict().items()}, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in student.state_dict().items()}, args.out)
    print(f"saved {args.out} ({len(layers)} layers) after {len(plan)} steps in {time.time() - started:.0f}s")
    if args.evaluate:
        print(f"val (torch, fp32): student {val_metrics(student, val_data, device)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=Path("models/build/checkpoint-2.pt"))
    parser.add_argument("--layers", default="1,3,5", help="the teacher's layers the student keeps, in order")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.7, help="weight of the teacher's probabilities")
    parser.add_argument("--beta", type=float, default=1.0, help="weight of the embedding's cosine distance")
    parser.add_argument("--gamma", type=float, default=0.0, help="weight of the hidden states' distance (0: off)")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--sentiment-sample", type=int, default=0, help="use only N sentiment tweets (0 = all)")
    parser.add_argument("--limit", type=int, default=0, help="stop after N batches (smoke runs)")
    parser.add_argument("--oversample-emotion", type=int, default=OVERSAMPLE["emotion"], help="emotion's repeats")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, or cuda where a GPU is at hand")
    parser.add_argument("--evaluate", action="store_true", help="print the student's val metrics (torch) at the end")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("models/build/student.pt"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    distil(args)


if __name__ == "__main__":
    main()
