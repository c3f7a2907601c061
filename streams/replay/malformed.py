"""Malformed messages, each with the dead-letter reason it must get.

Used by ``social-streams replay --bad N`` and by the tests: bad input is part
of what the pipeline is shown to handle.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from streams.errors import Reason


def _post(index: int, **changes: object) -> bytes:
    post: dict[str, object] = {
        "id": f"bad-{index}", "user_id": "u1", "text": "hello", "created_at": 1_767_225_600_000,
    }  # fmt: skip
    post.update(changes)
    return orjson.dumps({k: v for k, v in post.items() if v is not _DROP})


_DROP = object()

CASES: list[tuple[Reason, Callable[[int], bytes]]] = [
    (Reason.INVALID_JSON, lambda i: b'{"id": "bad-%d", "text": ' % i),
    (Reason.INVALID_JSON, lambda i: b"not json at all %d" % i),
    (Reason.INVALID_JSON, lambda i: b'{"id": "bad-%d", "x": NaN}' % i),
    (Reason.NOT_AN_OBJECT, lambda i: b"[1, 2, %d]" % i),
    (Reason.NOT_AN_OBJECT, lambda i: b'"just a string %d"' % i),
    (Reason.INVALID_UTF8, lambda i: b'{"id": "bad-%d", "text": "\xff\xfe"}' % i),
    (Reason.MISSING_FIELD, lambda i: _post(i, id=_DROP)),
    (Reason.MISSING_FIELD, lambda i: _post(i, user_id=_DROP)),
    (Reason.MISSING_FIELD, lambda i: _post(i, text=_DROP)),
    (Reason.MISSING_FIELD, lambda i: _post(i, created_at=_DROP)),
    (Reason.WRONG_TYPE, lambda i: _post(i, text=12345)),
    (Reason.WRONG_TYPE, lambda i: _post(i, id=[1, 2])),
    (Reason.WRONG_TYPE, lambda i: _post(i, user_id={"a": 1})),
    (Reason.WRONG_TYPE, lambda i: _post(i, hashtags="notalist")),
    (Reason.INVALID_TIMESTAMP, lambda i: _post(i, created_at="yesterday-ish")),
    (Reason.INVALID_TIMESTAMP, lambda i: _post(i, created_at="2026-01-01T10:00:00")),
    (Reason.INVALID_TIMESTAMP, lambda i: _post(i, created_at=-5)),
    (Reason.EMPTY_TEXT, lambda i: _post(i, text="")),
    (Reason.EMPTY_TEXT, lambda i: _post(i, text="   \n\t  ")),
    (Reason.EMPTY_TEXT, lambda i: _post(i, text="\x00\x01\x02")),
    (Reason.INVALID_VALUE, lambda i: _post(i, id="")),
    (Reason.INVALID_VALUE, lambda i: _post(i, user_id="x" * 10_000)),
]


def malformed(index: int) -> tuple[Reason, bytes]:
    """The index-th malformed message (cycling through every case) and its reason."""
    reason, make = CASES[index % len(CASES)]
    return reason, make(index)
