"""Batches processed at once by the enrich agent publish in the order they were taken."""

from __future__ import annotations

import asyncio

import pytest

from streams.ingest.agent import Turns


def test_a_later_batch_publishes_only_after_every_batch_before_it() -> None:
    published: list[str] = []

    async def batch(turns: Turns, name: str, model_s: float) -> None:
        async with turns.take() as my_turn:
            await asyncio.sleep(model_s)  # the model: the later batch is done with it first
            await my_turn()
            published.append(name)

    async def main() -> None:
        turns = Turns()
        await asyncio.gather(batch(turns, "first", 0.05), batch(turns, "second", 0), batch(turns, "third", 0.01))

    asyncio.run(main())
    assert published == ["first", "second", "third"]


def test_a_batch_that_failed_does_not_hold_the_next_one_forever() -> None:
    published: list[str] = []

    async def failing(turns: Turns) -> None:
        async with turns.take():
            await asyncio.sleep(0.01)
            raise TimeoutError("send timed out")

    async def next_one(turns: Turns) -> None:
        async with turns.take() as my_turn:
            await my_turn()
            published.append("next")

    async def main() -> None:
        turns = Turns()
        first = asyncio.create_task(failing(turns))
        second = asyncio.create_task(next_one(turns))
        with pytest.raises(TimeoutError):
            await first
        await asyncio.wait_for(second, 5)

    asyncio.run(main())
    assert published == ["next"]
