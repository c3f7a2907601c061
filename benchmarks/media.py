"""Images/s of the media agent's work on one worker (one vision thread), per model and end to end.

    python benchmarks/media.py [--images 60]

Images: the sample photos of samples/media (public domain and CC0: a cat, a coffee,
a rocket launch, an astronaut), a meme with text, and a 6 s clip. Each row is measured on
the same images in one run:

- each model alone, seconds per image (NSFW and tags in batches of 8, OCR per image);
- fetch and every model, through a local HTTP server, with the cache off (every image
  analysed) and then with the cache on (the same bytes again: reposts);
- photos without text and memes with text apart: OCR costs most where it finds text;
- clips: keyframes decoded in the decoder's child process, then every model on each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.demo import serving  # noqa: E402
from streams.media.analyse import MediaAnalyser  # noqa: E402
from streams.media.fetch import FetchLimits  # noqa: E402
from streams.media.vision import VisionModels, decode, nsfw_input, tags_input  # noqa: E402
from streams.settings import DEFAULT_VISION_DIR  # noqa: E402

SAMPLES = ROOT / "samples" / "media"
PHOTOS = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg"]
MEMES = ["meme.png"]
CLIPS = ["clip.mp4"]
VIDEO_FRAMES = 8
BATCH = 8


def distinct_copies(folder: Path, names: list[str], count: int) -> list[str]:
    """``count`` files cycling over ``names``, each with other bytes (a trailing comment
    byte the decoders ignore): no two share a sha256, so nothing is served from the cache."""
    copies = []
    for i in range(count):
        name = names[i % len(names)]
        copy = f"{i}-{name}"
        (folder / copy).write_bytes((SAMPLES / name).read_bytes() + i.to_bytes(4, "big"))
        copies.append(copy)
    return copies


def per_second(count: int, work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return count / (time.perf_counter() - started)


def model_rows(models: VisionModels, names: list[str], count: int) -> dict[str, float]:
    """Seconds per image of each model alone."""
    images = [decode((SAMPLES / names[i % len(names)]).read_bytes()) for i in range(count)]
    batches = [images[i : i + BATCH] for i in range(0, count, BATCH)]
    seconds = {}
    started = time.perf_counter()
    for batch in batches:
        models.nsfw.run(None, {models.nsfw.get_inputs()[0].name: nsfw_input(batch)})
    seconds["nsfw"] = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for batch in batches:
        models.tags.run(None, {"image": tags_input(batch)})
    seconds["tags"] = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for image in images:
        models.read_text(image)
    seconds["ocr"] = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for image in images:
        models.count_faces(image)
    seconds["faces"] = (time.perf_counter() - started) / count
    return seconds


def end_to_end(analyser: MediaAnalyser, base: str, names: list[str], count: int, kind: str = "image") -> float:
    """Items/s: fetch, decode, every model; posts of one item, batches of 8 posts like the agent."""
    posts = [[{"type": kind, "url": f"{base}/{names[i % len(names)]}"}] for i in range(count)]
    batches = [posts[i : i + BATCH] for i in range(0, count, BATCH)]
    return per_second(count, lambda: [analyser.analyse([analyser.fetch_all(p) for p in b]) for b in batches])


def row(
    models: VisionModels, limits: FetchLimits, folder: Path, base: str, label: str, names: list[str], count: int
) -> None:
    """One line: each model alone, then fetch and every model without and with the cache."""
    seconds = model_rows(models, names, count)
    copies = distinct_copies(folder, names, count)
    analyser = MediaAnalyser(models, limits, 4, cache_ttl_s=3600)
    cold = end_to_end(analyser, base, copies, count)
    warm = end_to_end(analyser, base, copies, count)  # the same bytes again: reposts
    per_model = "".join(f"{seconds[model]:>12.3f}" for model in ("nsfw", "tags", "ocr", "faces"))
    print(f"{label:<22}{per_model}{cold:>18.1f}{warm:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--clips", type=int, default=10)
    args = parser.parse_args()
    models = VisionModels(DEFAULT_VISION_DIR, threads=1)
    models.analyse([(SAMPLES / PHOTOS[0]).read_bytes()])  # warm-up
    folder = Path(tempfile.mkdtemp(prefix="media-bench-"))
    limits = FetchLimits(allow_hosts=frozenset({"127.0.0.1"}))
    print(f"vision models {models.tag}, one thread; {args.images} images per row")
    header = [(f"{model} s/img", 12) for model in ("nsfw", "tags", "ocr", "faces")]
    header += [("img/s (no cache)", 18), ("img/s (cached)", 16)]
    print(f"{'images':<22}" + "".join(f"{name:>{width}}" for name, width in header))
    for label, names in (("photos (no text)", PHOTOS), ("memes (text)", MEMES)):
        with serving(folder) as base:
            row(models, limits, folder, str(base), label, names, args.images)
    clips(models, limits, folder, args.clips)
    shutil.rmtree(folder)


def clips(models: VisionModels, limits: FetchLimits, folder: Path, count: int) -> None:
    """Clips/s: fetch, keyframes decoded in the child process, every model on each keyframe."""
    copies = distinct_copies(folder, CLIPS, count)
    analyser = MediaAnalyser(models, limits, 4, cache_ttl_s=3600, video_frames=VIDEO_FRAMES)
    with serving(folder) as base:
        end_to_end(analyser, str(base), copies[:1], 1, "video")  # starts the decoder process
        rate = end_to_end(analyser, str(base), copies, count, "video")
    print(f"clips: {rate:.2f} clips/s ({VIDEO_FRAMES} keyframes each, {rate * VIDEO_FRAMES:.1f} frames/s; "
          f"clip.mp4: 6 s, 320x240, one of its three scenes a meme)")  # fmt: skip


if __name__ == "__main__":
    main()
