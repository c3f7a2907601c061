"""Fixtures of every tier: the served model folders, their loaded models, and a local
HTTP server of sample media (samples/media: public-domain and CC0 photos)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.demo import SAMPLE_MEDIA, serving
from streams.inference.session import TextModel
from streams.media.vision import VisionModels
from streams.settings import DEFAULT_MODEL_DIR, DEFAULT_VISION_DIR

MEDIA = SAMPLE_MEDIA


@pytest.fixture(scope="session")
def model_dir() -> Path:
    assert (DEFAULT_MODEL_DIR / "manifest.json").is_file(), f"the served model is missing from {DEFAULT_MODEL_DIR}"
    return DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def text_model(model_dir: Path) -> TextModel:
    return TextModel(model_dir, threads=1)


@pytest.fixture(scope="session")
def vision_models() -> VisionModels:
    return VisionModels(DEFAULT_VISION_DIR, threads=1)


@pytest.fixture(scope="session")
def media_server() -> Iterator[str]:
    """http://127.0.0.1:port serving samples/media (a private address: allow-listed by the tests)."""
    with serving(MEDIA) as url:
        assert url is not None
        yield url
