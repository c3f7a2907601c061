"""JSON Schemas of the topic contracts, shipped with the package for consumers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

SCHEMA_DIR = Path(__file__).resolve().parent


def schema(topic: str) -> dict[str, Any]:
    """The schema of a topic by its default name (posts.flagged shares posts.enriched's)."""
    name = "posts.enriched" if topic == "posts.flagged" else topic
    return dict(orjson.loads((SCHEMA_DIR / f"{name}.json").read_bytes()))
