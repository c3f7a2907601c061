"""What may leave the worker: pseudonymous user ids, and text with PII masked per topic.

The model reads the original text inside the worker; only the published copy
is redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streams.privacy.pseudonym import Pseudonymizer
from streams.privacy.redact import parse_kinds, redact
from streams.terms import post_terms


@dataclass(frozen=True)
class PrivacyPolicy:
    pseudonymize: Pseudonymizer
    enriched_kinds: tuple[str, ...]
    flagged_kinds: tuple[str, ...]

    @classmethod
    def create(cls, key: bytes, enriched: str, flagged: str) -> PrivacyPolicy:
        return cls(Pseudonymizer(key), parse_kinds(enriched), parse_kinds(flagged))

    def published(self, record: dict[str, Any], original_text: str, kinds: tuple[str, ...]) -> dict[str, Any]:
        """A copy of ``record`` whose text has the given PII kinds masked.

        Its trend terms are taken from the masked text, so no PII becomes a keyword
        (``record``'s terms, where present, must be those of ``original_text``).
        """
        text, found = redact(original_text, kinds)
        # Nothing masked: the record's terms, taken from the same text, stand.
        terms = post_terms(text, record["hashtags"]) if found or "terms" not in record else record["terms"]
        return {**record, "text": text, "terms": terms, "privacy": {"redacted": found, "policy": list(kinds)}}

    def dead_letter_original(self, original: bytes | None) -> tuple[bytes | None, bool]:
        """The original bytes, with a readable ``user_id`` replaced by its pseudonym.

        Bytes that do not parse as a JSON object cannot be inspected and are
        kept as they came: their user id, if any, cannot be located.
        """
        if original is None:
            return None, False
        try:
            value = orjson.loads(original)
        except orjson.JSONDecodeError:
            return original, False
        if not isinstance(value, dict) or value.get("user_id") is None:
            return original, False
        raw = value["user_id"]
        # An id of the wrong type (an object, a list) still identifies someone: its JSON text
        # is pseudonymised as an id would be, so no raw user data stays in a dead letter.
        value["user_id"] = self.pseudonymize(_id_text(raw))
        try:
            return orjson.dumps(value), True
        except orjson.JSONEncodeError:
            # Nested past the encoder's limit (such posts are refused for it): those
            # fields say so instead, and the user id is still never kept raw.
            return orjson.dumps({k: _encodable_or_note(v) for k, v in value.items()}), True


def _id_text(raw: Any) -> str:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        return str(raw).strip()
    try:
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return repr(raw)


def _encodable_or_note(value: Any) -> Any:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return "[nested too deep to keep]"
    return value
