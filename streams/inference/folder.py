"""A model folder: its manifest, and the check that its files are intact.

A folder holds ``manifest.json`` (name, version, heads with their labels, the
ONNX inputs and outputs, max length, normalisation, the sha256 of every file,
validation metrics and provenance), the ONNX file and the tokenizer. Loading
verifies every checksum, so a truncated or swapped file fails at start-up with
one clear line instead of producing wrong predictions later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.errors import ModelError

MANIFEST = "manifest.json"
# The figures behind the model card (calibration, thresholds, audits); not served.
EVALUATION = "evaluation.json"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    onnx_file: str
    tokenizer_file: str
    max_length: int
    heads: dict[str, list[str]]
    inputs: list[str]
    outputs: list[str]
    explained_head: str
    files: dict[str, str]
    raw: dict[str, Any]

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def temperatures(self) -> dict[str, float]:
        """Per-head softmax temperatures; 1.0 (none) for a model without calibration."""
        calibration = self.raw.get("calibration") or {}
        return {head: float(t) for head, t in (calibration.get("temperature") or {}).items()}

    @property
    def thresholds(self) -> dict[str, dict[str, float]]:
        """The model's recommended review and block thresholds per moderated head."""
        return {head: dict(values) for head, values in (self.raw.get("thresholds") or {}).items()}

    @property
    def head_slices(self) -> dict[str, slice]:
        slices, start = {}, 0
        for head, labels in self.heads.items():
            slices[head] = slice(start, start + len(labels))
            start += len(labels)
        return slices


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist (set STREAMS_MODEL_DIR or --model)")
    if not path.is_file():
        raise ModelError(f"{path} is missing: {folder} is not a model folder")
    try:
        raw = orjson.loads(path.read_bytes())
        return Manifest(
            name=raw["name"],
            version=raw["version"],
            onnx_file=raw["onnx"],
            tokenizer_file=raw["tokenizer"],
            max_length=int(raw["max_length"]),
            heads={head: list(labels) for head, labels in raw["heads"].items()},
            inputs=list(raw["inputs"]),
            outputs=list(raw["outputs"]),
            explained_head=raw.get("explained_head", next(iter(raw["heads"]))),
            files=dict(raw["sha256"]),
            raw=raw,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} is not a valid manifest: {exc!r}") from exc


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Raise ModelError naming the first missing or altered file."""
    for name in (manifest.onnx_file, manifest.tokenizer_file):
        if name not in manifest.files:
            raise ModelError(f"{folder / MANIFEST} lists no sha256 for {name}")
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ModelError(f"model file {path} is missing")
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(f"model file {path} has sha256 {actual[:12]}…, manifest says {expected[:12]}…")


def load_manifest(folder: Path) -> Manifest:
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    return manifest


def merge_evaluation(folder: Path, sections: dict[str, Any]) -> Path:
    """Merge ``sections`` into the folder's evaluation.json; returns its path."""
    path = folder / EVALUATION
    current = orjson.loads(path.read_bytes()) if path.exists() else {}
    current.update(sections)
    path.write_bytes(orjson.dumps(current, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path
