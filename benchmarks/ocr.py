"""Text in images: OCR character error rate, and moderation of memes against the same texts as text.

    python benchmarks/ocr.py [--per-task 300] [--seed 7]

TweetEval val texts of the offensive and hate tasks (../shared/data) are drawn as memes:
one of several fonts (DejaVu and Liberation: sans, serif, mono, bold, italic), sizes from
20 to 44 px, random text and background colours with enough contrast, plain, gradient or
photo backgrounds (the sample photos, dimmed behind a text band), Gaussian noise and
rotations up to 4 degrees, then saved as JPEG. Each image goes through the media agent's
OCR (models/vision) and the text read through the text model, as the media agent does.

Printed: the character error rate (edit distance / characters drawn), the share of images
with no text read, and the offensive and hate macro-F1 of the model's moderation on the
texts given as text against the same texts read from the images. Characters the fonts do
not draw (emoji, most non-Latin scripts) are left out of both the image and the reference.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.inference.moderation import Thresholds, decide  # noqa: E402
from streams.inference.session import TextModel  # noqa: E402
from streams.media.vision import VisionModels, decode  # noqa: E402
from streams.settings import DEFAULT_MODEL_DIR, DEFAULT_VISION_DIR  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "tweeteval"
FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")]
FONT_NAMES = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf",
    "LiberationSans-Regular.ttf", "LiberationSerif-Bold.ttf", "LiberationMono-Regular.ttf",
]  # fmt: skip
PHOTOS = ROOT / "samples" / "media"
WIDTH = 640


def fonts() -> list[Path]:
    found = [d / name for name in FONT_NAMES for d in FONT_DIRS if (d / name).is_file()]
    if not found:
        sys.exit("no DejaVu or Liberation fonts found: apt-get install fonts-dejavu-core fonts-liberation")
    return found


def drawable(text: str) -> str:
    """The text as the fonts can draw it: Latin letters, digits, punctuation; spaces collapsed."""
    kept = "".join(c for c in text if unicodedata.category(c)[0] in "LNPSZ" and ord(c) < 0x250)
    return " ".join(kept.split())


def contrast_colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    while True:
        fg = tuple(rng.randrange(256) for _ in range(3))
        bg = tuple(rng.randrange(256) for _ in range(3))
        if abs(sum(fg) - sum(bg)) / 3 >= 110:  # luminance apart, as readable memes are
            return fg, bg  # type: ignore[return-value]


def background(rng: random.Random, size: tuple[int, int], bg: tuple[int, int, int]) -> Image.Image:
    style = rng.choice(["plain", "gradient", "photo"])
    if style == "plain":
        return Image.new("RGB", size, bg)
    if style == "gradient":
        ramp = np.linspace(0.6, 1.0, size[1])[:, None, None] * np.array(bg)[None, None, :]
        return Image.fromarray(np.broadcast_to(ramp, (size[1], size[0], 3)).astype(np.uint8))
    photo = decode(rng.choice(sorted(PHOTOS.glob("*.jpg"))).read_bytes()).resize(size)
    band = Image.new("RGB", size, bg)
    return Image.blend(photo, band, 0.75)  # a text band over the photo, as meme generators draw


def wrapped(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels as the font draws them (a word wider alone stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def meme(text: str, rng: random.Random, font_files: list[Path]) -> bytes:
    font = ImageFont.truetype(str(rng.choice(font_files)), rng.randrange(20, 45))
    lines = wrapped(text, font, WIDTH - 48)
    line_h = int(font.size * 1.3)
    size = (WIDTH, max(160, line_h * len(lines) + 60))
    fg, bg = contrast_colours(rng)
    image = background(rng, size, bg)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((24, 30 + i * line_h), line, fill=fg, font=font)
    image = image.rotate(rng.uniform(-4, 4), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=bg)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    pixels = np.asarray(image, dtype=np.float32) + np.random.default_rng(rng.randrange(1 << 30)).normal(
        0, 8, (image.height, image.width, 3)
    )
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=rng.randrange(60, 95))
    return out.getvalue()


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def comparable(text: str) -> str:
    """Case and spacing aside: memes are often in capitals, and OCR splits lines its own way."""
    return " ".join(text.casefold().split())


def macro_f1(gold: list[int], predicted: list[int]) -> float:
    scores = []
    for label in (0, 1):
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / 2


def flagged(model: TextModel, thresholds: Thresholds, texts: list[str], head: str) -> list[int]:
    """1 where moderation names ``head`` among its reasons (review or block), as the media agent decides."""
    out = []
    for start in range(0, len(texts), 32):
        for prediction in model.predict([t or "." for t in texts[start : start + 32]]):
            scores = {h: r.scores for h, r in prediction.heads.items()}
            out.append(int(head in decide(scores, thresholds).reasons))
    return [flag if text else 0 for flag, text in zip(out, texts, strict=True)]


def task(name: str, count: int, rng: random.Random) -> tuple[list[str], list[int]]:
    texts = (DATA / name / "val_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (DATA / name / "val_labels.txt").read_text().split()]
    rows = [(drawable(t), y) for t, y in zip(texts, labels, strict=True) if drawable(t)]
    chosen = rng.sample(rows, min(count, len(rows)))
    return [t for t, _ in chosen], [y for _, y in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-task", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: the TweetEval data of ../shared/data")
    rng = random.Random(args.seed)
    vision = VisionModels(DEFAULT_VISION_DIR, threads=1)
    model = TextModel(DEFAULT_MODEL_DIR, threads=1)
    thresholds = Thresholds.resolve(model.manifest.thresholds, None, None)
    font_files = fonts()
    print(f"{len(font_files)} fonts; {args.per_task} TweetEval val texts per task; seed {args.seed}")
    print(f"{'task':<10}{'CER':>7}{'no text read':>14}{'macro-F1 text':>15}{'macro-F1 meme':>15}{'s/img OCR':>11}")
    for name in ("offensive", "hate"):
        texts, gold = task(name, args.per_task, rng)
        read, errors, chars, started = [], 0, 0, time.perf_counter()
        for text in texts:
            found = vision.read_text(decode(meme(text, rng, font_files)))
            read.append(" ".join(found.split("\n")))
            errors += edit_distance(comparable(text), comparable(read[-1]))
            chars += len(comparable(text))
        seconds = (time.perf_counter() - started) / len(texts)
        as_text = macro_f1(gold, flagged(model, thresholds, texts, name))
        as_meme = macro_f1(gold, flagged(model, thresholds, read, name))
        empty = sum(not r for r in read) / len(read)
        print(f"{name:<10}{errors / chars:>7.3f}{empty:>14.1%}{as_text:>15.3f}{as_meme:>15.3f}{seconds:>11.2f}")


if __name__ == "__main__":
    main()
