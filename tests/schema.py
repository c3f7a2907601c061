"""Validate records against the JSON Schemas the package ships."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from streams.schemas import schema


def validate_all(topic: str, records: list[dict[str, Any]]) -> None:
    validator = Draft202012Validator(schema(topic), format_checker=FormatChecker())
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{topic}: {errors[0].message} at {list(errors[0].absolute_path)}"
