"""The shipped JSON Schemas are valid, and the inputs we generate meet them."""

from __future__ import annotations

import orjson
import pytest
from jsonschema import Draft202012Validator

from streams.replay.synthetic import SyntheticPosts
from streams.schemas import SCHEMA_DIR, schema
from tests.schema import validate_all


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_each_schema_is_valid(path) -> None:  # type: ignore[no-untyped-def]
    Draft202012Validator.check_schema(orjson.loads(path.read_bytes()))


def test_synthetic_posts_meet_the_raw_contract() -> None:
    posts = SyntheticPosts(seed=2)
    validate_all("posts.raw", [posts.post(i) for i in range(200)])


def test_flagged_shares_the_enriched_schema() -> None:
    assert schema("posts.flagged") == schema("posts.enriched")
