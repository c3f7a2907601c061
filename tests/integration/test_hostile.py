"""Hostile input through two workers on a real broker: no poison pill stops a partition.

Each message below once made a step raise, the worker exit 70, and every worker that
took the partition after it exit again. Now each becomes a dead letter (or a post
enriched within its limits), the good posts behind it are enriched and reach the
profiles, and no worker exits.
"""

from __future__ import annotations

import hashlib
import urllib.request
from urllib.error import HTTPError

import orjson
import pytest

from streams.privacy.pseudonym import Pseudonymizer
from tests.support import PSEUDONYM_SECRET, Pipeline, synthetic

pytestmark = pytest.mark.integration
PSEUDONYM = Pseudonymizer(PSEUDONYM_SECRET.encode())
NOT_UTF8 = bytes(range(128, 256)) * 51_000  # 6.5 MB: its whole base64 would not fit one record


def post(post_id: str, **fields: object) -> tuple[bytes, bytes]:
    value = {"id": post_id, "user_id": f"hostile-{post_id}", "text": "a post", "created_at": 1_767_225_600_000}
    return post_id.encode(), orjson.dumps({**value, **fields})


POISON_ON_RAW: dict[bytes, tuple[bytes, str | None]] = {
    # key: (value, the dead letter's reason; None: enriched, within the limits)
    b"late-offset": (post("late-offset", created_at="9999-12-31T23:59:59-14:00")[1], "invalid_timestamp"),
    b"year-1900": (post("year-1900", created_at="1900-01-01T00:00:00Z")[1], "invalid_timestamp"),
    b"not-utf8": (NOT_UTF8, "too_large"),
    b"user-object": (post("user-object", user_id={"handle": "hostile-handle"})[1], "wrong_type"),
    b"many-media": (post("many-media", media=[{"type": "image"}] * 17)[1], "invalid_value"),
    **{f"tags-{i}".encode(): (post(f"tags-{i}", hashtags=[f"t{n}" for n in range(95_000)])[1], None) for i in range(3)},
    b"many-metrics": (post("many-metrics", metrics={f"m{n}": n for n in range(60_000)})[1], None),
}


def profile_status(port: int, user: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/profiles/{user}/", timeout=10) as response:
            return int(response.status)
    except HTTPError as error:
        return int(error.code)


def test_poison_pills_are_dead_lettered_and_nothing_stops(pipeline: Pipeline) -> None:
    pipeline.extra_env.update(STREAMS_PROFILE_PUBLISH_INTERVAL_S="0")
    first = pipeline.start_worker()
    second = pipeline.start_worker()
    good = synthetic(240, seed=11)
    poison = [(key, value) for key, (value, _) in POISON_ON_RAW.items()]
    # Poison first in each partition's stream, the good posts behind it.
    # On posts.enriched (anyone who may write to it): records that are not enriched posts, ahead of the real ones.
    pipeline.produce([(b"junk-1", b"not json"), (b"junk-2", b'{"no": "id"}')], "enriched")
    pipeline.produce(poison[:4] + good[:120] + poison[4:] + good[120:])
    # On control.erasure: the same undecodable bytes (they once stopped the fan-out), then a real request.
    erasure = orjson.dumps({"user_id": "someone-to-forget"})
    pipeline.produce([(b"bad", NOT_UTF8), (b"bad2", b"[1, 2"), (b"ok", erasure)], "erasure")

    dead_keys = {key for key, (_, reason) in POISON_ON_RAW.items() if reason} | {b"bad", b"bad2", b"junk-1", b"junk-2"}
    dead = dict(pipeline.consume_keys("deadletter", dead_keys, timeout_s=180))
    expected_enriched = {key for key, _ in good} | {key for key, (_, reason) in POISON_ON_RAW.items() if not reason}
    enriched = dict(pipeline.consume_keys("enriched", expected_enriched | {b"junk-1", b"junk-2"}, timeout_s=180))

    for key, (_, reason) in POISON_ON_RAW.items():
        if reason:
            assert dead[key]["error"]["type"] == reason, dead[key]["error"]
    cut = dead[b"not-utf8"]
    assert cut["original_truncated"] and cut["original_size"] == len(NOT_UTF8)
    assert cut["original_sha256"] == hashlib.sha256(NOT_UTF8).hexdigest()
    assert b"hostile-handle" not in orjson.dumps(dead[b"user-object"])  # the odd user id is pseudonymised too
    assert dead[b"bad"]["source"]["topic"] == pipeline.topics["erasure"] and dead[b"bad"]["original_truncated"]
    for junk in (b"junk-1", b"junk-2"):  # the fan-out failed on them alone: dead-lettered, the rest went on
        assert dead[junk]["error"]["stage"] == "fanout" and dead[junk]["error"]["type"] == "processing_failure"
    for i in range(3):
        assert len(enriched[f"tags-{i}".encode()]["hashtags"]) == 30  # capped at STREAMS_MAX_HASHTAGS
    assert 'streams_limits_hit_total{limit="hashtags"}' in pipeline.metrics(0) + pipeline.metrics(1)

    # Every good post reached the profiles, behind each poison: and each profile is found
    # from either worker (the query is routed by the key's bytes as the table stores them).
    users = {PSEUDONYM(orjson.loads(value)["user_id"]) for _, value in good}
    forgotten = PSEUDONYM("someone-to-forget")
    expected = {u.encode() for u in users | {forgotten}}
    profiles = pipeline.consume_keys(f"{pipeline.name}.profiles", expected, timeout_s=180)
    assert (forgotten.encode(), None) in profiles  # the valid request behind the bad ones: a tombstone
    for port in pipeline.ports:
        assert sorted({profile_status(port, user) for user in users}) == [200]
    assert first.poll() is None and second.poll() is None, "a worker exited"

    # A peer that dies stays in the assignment until the group rebalances: the queries that
    # ask it say so in their answer instead of failing with a server error.
    pipeline.kill(second)
    with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[0]}/trends/top?kind=hashtag&k=5", timeout=10) as r:
        answer = orjson.loads(r.read())
    assert r.status == 200 and answer["unreachable_workers"], answer
