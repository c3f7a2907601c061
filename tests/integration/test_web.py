"""The worker's HTTP server exposes only what the README documents; the query views take a token."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from tests.support import Pipeline, synthetic

TOKEN = "integration-test-token"
UNDOCUMENTED = [
    "/table/",
    "/table/seen-post-ids/",
    "/table/profiles/someone/",
    "/router/",
    "/graph/",
    "/stats/",
    "/performance/",
    "/signal/",
    "/nope",
]


def status(port: int, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_only_documented_endpoints_answer_and_queries_need_the_token(pipeline: Pipeline) -> None:
    pipeline.extra_env = {"STREAMS_WEB_TOKEN": TOKEN}
    pipeline.start_worker()
    port = pipeline.ports[0]
    assert {path: status(port, path) for path in UNDOCUMENTED} == {path: 404 for path in UNDOCUMENTED}
    assert status(port, "/metrics") == 200 and status(port, "/health") == 200
    queries = ["/profiles/nobody/", "/trends/top?kind=hashtag&k=5", "/trends/term?kind=hashtag&term=x"]
    assert [status(port, path) for path in queries] == [401, 401, 401]
    assert [status(port, path, "wrong") for path in queries] == [401, 401, 401]
    assert [status(port, path, TOKEN) for path in queries] == [404, 200, 404]  # none held yet; top is empty
    # A header that is not ASCII is the client's mistake: 400, not a server error.
    assert status(port, queries[1], "tökén") == 400
    assert body(port, "/health") == {"status": "ok"}  # the topology only to a holder of the token
    assert {"status", "assigned", "model"} <= set(body(port, "/health", TOKEN))
    # STREAMS_WEB_HOST (loopback by default) is the address bound, not only the name in the URL.
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1; every interface would be 00000000

    # Posts dated before the trends watermark are enriched but counted nowhere: /health says so.
    posts = synthetic(120, seed=5)
    pipeline.produce(posts)
    pipeline.consume_keys("enriched", {key for key, _ in posts})
    old = []
    for _, value in posts:
        post = orjson.loads(value)
        post.update(id=f"{post['id']}-old", created_at=post["created_at"] - 400 * 86_400_000)
        old.append((post["id"].encode(), orjson.dumps(post)))
    pipeline.produce(old)
    deadline = time.monotonic() + 90
    while (trends := body(port, "/health", TOKEN)["trends"])["mentions_late"] == 0:
        assert time.monotonic() < deadline, trends
        time.sleep(0.5)
    assert trends["watermark"] is not None and trends["mentions_added"] > 0


def body(port: int, path: str, token: str | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(orjson.loads(response.read()))


def listening_addresses(port: int) -> set[str]:
    """The local addresses a socket listens on at ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found
