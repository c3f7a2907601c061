"""Shared fixtures: the served model folder and the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import DEFAULT_MODEL_DIR

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    assert (DEFAULT_MODEL_DIR / "manifest.json").is_file(), f"the served model is missing from {DEFAULT_MODEL_DIR}"
    return DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def text_model(model_dir: Path):  # type: ignore[no-untyped-def]
    from streams.inference.session import TextModel

    return TextModel(model_dir, threads=1)


def shared_data_or_skip(relative: str) -> Path:
    """A file of ../shared/data, or skip: a fresh clone does not have that folder."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is not next to this clone)")
    return path
