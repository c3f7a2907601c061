"""Fixtures of every tier: the served model folder and its loaded model."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.inference.session import TextModel
from streams.settings import DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def model_dir() -> Path:
    assert (DEFAULT_MODEL_DIR / "manifest.json").is_file(), f"the served model is missing from {DEFAULT_MODEL_DIR}"
    return DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def text_model(model_dir: Path) -> TextModel:
    return TextModel(model_dir, threads=1)
