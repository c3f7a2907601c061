"""Validate records against the JSON Schemas the package ships."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from streams.schemas import schema


def validate_all(topic: str, records: list[dict[str, Any]]) -> None:
    """posts.flagged holds enriched posts, and media results marked ``flagged_by: media``."""
    validator = Draft202012Validator(schema(topic), format_checker=FormatChecker())
    media = Draft202012Validator(schema("posts.media"), format_checker=FormatChecker())
    for record in records:
        by_media = topic == "posts.flagged" and record.get("flagged_by") == "media"
        errors = sorted((media if by_media else validator).iter_errors(record), key=str)
        assert not errors, f"{topic}: {errors[0].message} at {list(errors[0].absolute_path)}"
