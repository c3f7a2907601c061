"""Property-based fuzzing of the real pipeline: generated posts, erasure requests and media
responses through two workers on a real broker, in a bounded run.

Each example is a batch of messages drawn by hypothesis: posts whose every field may be
valid, of the wrong type, out of range, huge or hostile (hashtags by the thousand,
dates at the edges of time, odd user ids, media items inline or at URLs of a server
that misbehaves), undecodable bytes, and erasure requests of any shape. The properties:

- every message on posts.raw comes out exactly once: enriched or dead-lettered;
- every enriched post with media gets exactly one posts.media record;
- every erasure request comes out once: a tombstone or a dead letter;
- no worker exits, and each stays under a memory bound.

The budget is fixed for CI (``FUZZ_EXAMPLES`` examples, derandomised so a run is
reproducible); ``FUZZ_EXAMPLES=50 FUZZ_RANDOM=1`` explores further.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams.errors import InvalidPost
from streams.privacy.pseudonym import Pseudonymizer
from streams.profiles.agent import erasure_user
from tests.support import PSEUDONYM_SECRET, Pipeline

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
PSEUDONYM = Pseudonymizer(PSEUDONYM_SECRET.encode())
RSS_LIMIT_BYTES = 1_500 << 20  # under the 2 GiB a worker pod may use (deploy/k8s)
MEDIA = Path(__file__).resolve().parents[2] / "samples" / "media"
EXAMPLE_IDS = itertools.count()


class HostileMedia(BaseHTTPRequestHandler):
    """What a media URL may answer: a real picture, or a server that misbehaves."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        route = self.path.split("?")[0]
        try:
            if route == "/photo.jpg":
                self.reply((MEDIA / "chelsea.jpg").read_bytes())
            elif route == "/drip":  # headers one byte at a time, for ever
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(200):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif route == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif route == "/huge":
                self.send_response(200)
                self.send_header("Content-Length", str(10**10))
                self.end_headers()
            elif route == "/garbage.png":
                self.reply(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
            else:
                self.send_error(404)
        except OSError:
            pass  # the client gave up on us, as it should

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def hostile_media() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), HostileMedia)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False) | st.text(max_size=40)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


GOOD = {
    "user_id": st.text(min_size=1, max_size=40).filter(str.strip) | st.integers(0, 10**9),
    "text": st.text(min_size=1, max_size=300).filter(str.strip) | st.sampled_from(["😂🔥", "#a #b #c", "I love it"]),
    "created_at": st.integers(0, 253_402_300_799_999)
    | st.datetimes(timezones=st.timezones(), min_value=dt.datetime(1971, 1, 1)).map(lambda d: d.isoformat()),
}
GOOD_OPTIONAL = {
    "hashtags": st.lists(st.text(max_size=30), max_size=50)
    | st.integers(0, 60_000).map(lambda n: [f"t{i}" for i in range(n)]),
    "metrics": st.dictionaries(st.sampled_from(["likes", "views", "shares"]), st.integers(0, 10**6)),
    "lang": st.sampled_from(["en", "de", "es", "xx"]),
    "reply_to": st.text(min_size=1, max_size=20),
    "extra": JSON,
}
# What a careless or hostile producer puts in each field instead.
HOSTILE = {
    "user_id": JSON,
    "text": st.text(max_size=20) | st.sampled_from(["\u202e\x00", "x" * 20_000, "   "]),
    "created_at": st.integers(-(2**40), 2**50)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "soon"]),
    "hashtags": JSON,
    "media": JSON | st.lists(JSON, max_size=20),
    "metrics": JSON,
    "lang": JSON,
    "reply_to": JSON,
}


def media_items(server: str) -> st.SearchStrategy[list[Any]]:
    inline = st.sampled_from([(MEDIA / "meme.png").read_bytes()[:4000], b"\xff\xd8\xff" + b"\0" * 100, b"GIF89a"])
    paths = st.sampled_from(["/photo.jpg", "/drip", "/loop", "/huge", "/garbage.png", "/none"])
    videos = st.sampled_from([f"{server}/huge", "http://[::127.0.0.1]/a.mp4", "http://[64:ff9b::a00:1]/v.mp4"])
    item = st.one_of(
        st.builds(lambda path: {"type": "image", "url": f"{server}{path}"}, paths),
        st.builds(lambda data: {"type": "image", "data": base64.b64encode(data).decode()}, inline),
        st.builds(lambda url: {"type": "video", "url": url}, videos),
    )
    return st.lists(item, max_size=3)


def posts(server: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid post (its media may point anywhere), or one with a field replaced by a hostile
    value; ``id`` is filled in per message."""
    good = st.fixed_dictionaries(GOOD, optional={**GOOD_OPTIONAL, "media": media_items(server)})
    mutation = st.sampled_from(sorted(HOSTILE)).flatmap(lambda name: st.tuples(st.just(name), HOSTILE[name]))
    mutated = st.builds(lambda post, change: {**post, change[0]: change[1]}, good, mutation)
    return st.one_of(good, good, mutated)


def messages(server: str) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """("post", fields) or ("bytes", value) for posts.raw, and ("erase", value) for control.erasure."""
    one = st.one_of(
        st.tuples(st.just("post"), posts(server)),
        st.tuples(st.just("post"), posts(server)),
        st.tuples(st.just("bytes"), st.binary(max_size=200) | st.just(bytes(range(128, 256)) * 9000)),
        st.tuples(st.just("erase"), st.fixed_dictionaries({"user_id": GOOD["user_id"] | HOSTILE["user_id"]}) | JSON),
    )
    return st.lists(one, min_size=10, max_size=40)


def encode(kind: str, value: Any, key: str) -> bytes:
    if kind == "bytes":
        return bytes(value)
    if kind == "post":
        value = {"id": key, **value}
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer past 64 bits: what a careless producer might send as text
        return repr(value).encode()


def expected_tombstone(value: bytes) -> str | None:
    """The pseudonym an erasure request names, or None when it must be dead-lettered."""
    try:
        return PSEUDONYM(erasure_user(value))
    except InvalidPost:
        return None


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_example(pipeline: Pipeline, drawn: list[tuple[str, Any]]) -> None:
    example = next(EXAMPLE_IDS)
    raw, erasures = [], []
    for index, (kind, value) in enumerate(drawn):
        key = f"fz{example}-{index}"
        message = (key.encode(), encode(kind, value, key))
        (erasures if kind == "erase" else raw).append(message)
    pipeline.produce(raw)
    pipeline.produce(erasures, "erasure")
    raw_keys = {key for key, _ in raw}
    tombstones = {key: user for key, value in erasures if (user := expected_tombstone(value)) is not None}
    dead_erasures = {key for key, _ in erasures} - set(tombstones)

    settle_until: float | None = None

    def settled(records: dict[str, list[tuple[bytes | None, Any]]]) -> bool:
        """Every message has its outcome, and a few seconds passed for repeats to show."""
        nonlocal settle_until
        out = {k for k, _ in records["enriched"]} | {k for k, _ in records["deadletter"]}
        if raw_keys | dead_erasures <= out:
            settle_until = settle_until or time.monotonic() + 3
            return time.monotonic() >= settle_until
        return False

    records = pipeline.read_many(["enriched", "deadletter"], settled, timeout_s=240)
    enriched = [(k, r) for k, r in records["enriched"] if k in raw_keys]
    dead = [(k, r) for k, r in records["deadletter"] if k in raw_keys | dead_erasures | set(tombstones)]
    outcomes = Counter(k for k, _ in enriched) + Counter(k for k, _ in dead if k in raw_keys)
    assert set(outcomes) == raw_keys, sorted(raw_keys - set(outcomes))[:5]
    assert max(outcomes.values()) == 1, outcomes.most_common(3)
    assert {k for k, _ in dead} - raw_keys == dead_erasures

    with_media = {k for k, r in enriched if isinstance(r.get("media"), list) and r["media"]}
    if with_media:
        media = Counter(k for k, _ in pipeline.consume_keys("media", with_media, timeout_s=240) if k in with_media)
        assert set(media) == with_media and max(media.values()) == 1
    if tombstones:
        wanted = {user.encode() for user in tombstones.values()}
        profiles = pipeline.consume_keys(f"{pipeline.name}.profiles", wanted, timeout_s=240)
        assert wanted <= {k for k, v in profiles if v is None}

    for index, worker in enumerate(pipeline.workers):
        assert worker.poll() is None, f"worker {index} exited with {worker.returncode}"
        assert rss_bytes(worker.pid) < RSS_LIMIT_BYTES, f"worker {index} holds {rss_bytes(worker.pid) >> 20} MiB"


def test_generated_hostile_input_never_stops_the_pipeline(pipeline: Pipeline, hostile_media: str) -> None:
    pipeline.extra_env.update(
        STREAMS_MEDIA_ALLOW_HOSTS="127.0.0.1",
        STREAMS_MEDIA_DEADLINE_S="2",
        STREAMS_PROFILE_PUBLISH_INTERVAL_S="0",
    )
    pipeline.start_worker({"STREAMS_AGENTS": "enrich,profiles,trends,media"})
    pipeline.start_worker({"STREAMS_AGENTS": "enrich,profiles,trends"})

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each example costs a pipeline run
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(messages(hostile_media))
    def examples(drawn: list[tuple[str, Any]]) -> None:
        run_example(pipeline, drawn)

    examples()
