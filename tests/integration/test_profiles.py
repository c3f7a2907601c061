"""Profiles from a replay, and a complete erasure, on a real broker."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from urllib.error import HTTPError

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.privacy.pseudonym import Pseudonymizer
from streams.replay.synthetic import SyntheticPosts
from tests.schema import validate_all
from tests.support import PSEUDONYM_SECRET, Pipeline

pytestmark = pytest.mark.integration
PSEUDONYM = Pseudonymizer(PSEUDONYM_SECRET.encode())


def topic_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Everything a topic holds now, from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    out: list[tuple[bytes | None, bytes | None]] = []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for messages in consumer.poll(timeout_ms=300).values():
            out += [(m.key, m.value) for m in messages]
    consumer.close()
    return out


def get_profile(pipeline: Pipeline, user: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{pipeline.ports[0]}/profiles/{user}/"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except HTTPError as error:
        return error.code, orjson.loads(error.read())


def wait_until(condition, timeout_s: float = 90, poke=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if poke is not None:
            poke()
        time.sleep(0.5)


def test_profiles_are_built_and_an_erasure_leaves_nothing(pipeline: Pipeline) -> None:
    pipeline.extra_env.update(
        STREAMS_PROFILE_PUBLISH_INTERVAL_S="0",
        STREAMS_COMPACTED_SEGMENT_MS="200",
        STREAMS_TOMBSTONE_RETENTION_MS="0",
    )
    pipeline.start_worker()
    synthetic = SyntheticPosts(seed=9, users=12)
    posts = [synthetic.post(i) for i in range(240)]
    pipeline.produce([(p["id"].encode(), orjson.dumps(p)) for p in posts])
    per_user = Counter(PSEUDONYM(p["user_id"]) for p in posts)
    profiles_topic = f"{pipeline.name}.profiles"

    def latest_profiles() -> dict[bytes, dict]:
        latest: dict[bytes, dict] = {}
        for key, value in topic_records(pipeline.bootstrap, profiles_topic):
            if key is not None and value is not None:
                latest[key] = orjson.loads(value)
        return latest

    wait_until(lambda: {k.decode(): v["posts"] for k, v in latest_profiles().items()} == dict(per_user))
    validate_all("users.profiles", list(latest_profiles().values()))
    erased_raw, erased = posts[0]["user_id"], PSEUDONYM(posts[0]["user_id"])
    status, profile = get_profile(pipeline, erased)
    assert status == 200 and profile["posts"] == per_user[erased]
    assert profile["user_id"] == erased and erased_raw not in orjson.dumps(profile).decode()

    request = {"user_id": erased_raw, "requested_at": "2026-11-25T00:00:00Z"}
    pipeline.produce([(erased_raw.encode(), orjson.dumps(request))], topic="erasure")
    wait_until(lambda: get_profile(pipeline, erased)[0] == 404)
    assert (erased.encode(), None) in topic_records(pipeline.bootstrap, profiles_topic)

    changelog = f"{pipeline.name}-profiles-changelog"
    pokes = iter(range(10_000))

    def poke() -> None:  # new records roll segments, so the cleaner can compact the old ones
        index = next(pokes)
        pipeline.produce([(b"poke", orjson.dumps({"user_id": f"unknown-{index}"}))], topic="erasure")
        post = {**posts[1], "id": f"poke-{index}"}
        pipeline.produce([(post["id"].encode(), orjson.dumps(post))])

    def erased_everywhere() -> bool:
        return all(
            not any(key is not None and erased in key.decode("utf-8", "replace") and value is not None for key, value in
                    topic_records(pipeline.bootstrap, topic))
            for topic in (profiles_topic, changelog)
        )  # fmt: skip

    wait_until(erased_everywhere, timeout_s=120, poke=poke)
    log = (pipeline.log_dir / "worker-0.log").read_text()
    assert f"erasure done: user {erased}, profile removed" in log
    assert f"erasure done: user {PSEUDONYM('unknown-0')}, profile not held" in log  # unknown users: audited too
    assert erased_raw not in log.replace(f"user_id={erased_raw}", "")


def test_an_invalid_erasure_request_is_dead_lettered(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    bad = [(b"e1", b'{"user_id": ""}'), (b"e2", b'{"user_id": [1]}'), (b"e3", b"nope")]
    pipeline.produce(bad, topic="erasure")
    dead = {key: record["error"]["type"] for key, record in pipeline.consume("deadletter", 3)}
    assert dead == {b"e1": "invalid_value", b"e2": "wrong_type", b"e3": "invalid_json"}


def test_interactions_equal_a_brute_force_count_and_an_erased_user_leaves_them(pipeline: Pipeline) -> None:
    """Users whose ids are their handles @mention each other: each profile's interlocutors, both
    ways, equal a count over the posts; after an erasure no other profile names the erased user."""
    pipeline.extra_env.update(STREAMS_PROFILE_PUBLISH_INTERVAL_S="0")
    pipeline.start_worker()
    handles = [f"fan{i}" for i in range(6)]
    start = int(time.time() * 1000) - 3_600_000
    posts = []
    for i in range(90):
        author, first, second = handles[i % 6], handles[(i * 7 + 1) % 6], handles[(i * 5 + 2) % 6]
        text = f"@{first} what do you think? cc @{second} @{first}"
        posts.append({"id": f"talk-{i}", "user_id": author, "text": text, "created_at": start + i * 1_000})
    outgoing: dict[str, Counter[str]] = {PSEUDONYM(h): Counter() for h in handles}
    incoming: dict[str, Counter[str]] = {PSEUDONYM(h): Counter() for h in handles}
    for p in posts:
        author = PSEUDONYM(p["user_id"])
        for target in dict.fromkeys(PSEUDONYM(h.strip("@?")) for h in p["text"].split() if h.startswith("@")):
            if target != author:
                outgoing[author][target] += 1
                incoming[target][author] += 1
    pipeline.produce([(p["id"].encode(), orjson.dumps(p)) for p in posts])
    profiles_topic = f"{pipeline.name}.profiles"

    def latest() -> dict[str, dict]:
        found: dict[str, dict] = {}
        for key, value in topic_records(pipeline.bootstrap, profiles_topic):
            if key is not None:
                found[key.decode()] = orjson.loads(value) if value is not None else None
        return found

    def counted(profile: dict, side: str) -> dict[str, int]:
        return {entry["user_id"]: entry["count"] for entry in profile["interactions"][side]}

    def as_brute_force() -> bool:
        profiles = latest()
        return all(
            user in profiles
            and counted(profiles[user], "mentions_out") == dict(outgoing[user])
            and counted(profiles[user], "mentions_in") == dict(incoming[user])
            for user in outgoing
        )

    wait_until(as_brute_force)
    validate_all("users.profiles", [p for p in latest().values() if p is not None])
    erased = PSEUDONYM(handles[0])
    request = {"user_id": handles[0], "requested_at": "2026-11-25T00:00:00Z"}
    pipeline.produce([(handles[0].encode(), orjson.dumps(request))], topic="erasure")

    def forgotten() -> bool:
        profiles = latest()
        others = [profiles[PSEUDONYM(h)] for h in handles[1:]]
        return profiles.get(erased, "held") is None and all(erased not in orjson.dumps(p).decode() for p in others)

    wait_until(forgotten)
    status, _ = get_profile(pipeline, PSEUDONYM(handles[1]))
    assert status == 200
