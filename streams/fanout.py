"""The fan-out agent: the one reader of posts.enriched (and control.erasure) in a worker.

It hands each micro-batch to the profiles and trends stages, which route it by
user and by term; the batch is acknowledged once both have their outputs
acknowledged. One stream per input topic: two agents reading the same topic
share its offsets, and one slow or stalled reader holds back (or, at a
rebalance, loses the place of) the other.
"""

from __future__ import annotations

from faust.types import StreamT

from streams.app import Runtime

BATCH = 500
LINGER_S = 0.2


def install_fanout(runtime: Runtime) -> None:
    settings = runtime.settings
    profiles, trends = runtime.profiles, runtime.trends
    if profiles is None and trends is None:
        return
    names = [settings.topic_enriched] + ([settings.topic_erasure] if profiles is not None else [])
    source = runtime.app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    # concurrency=1: the stages write tables (de-duplication of routed posts).
    @runtime.app.agent(source, name="fanout", concurrency=1)
    async def fanout(stream: StreamT) -> None:
        # take_events is faust-streaming API that its StreamT interface does not declare.
        async for batch in stream.take_events(BATCH, within=LINGER_S):  # type: ignore[attr-defined]
            events = list(batch)
            if profiles is not None:
                await profiles.route(events)
            if trends is not None:
                await trends.route([e for e in events if e.message.topic == settings.topic_enriched])
