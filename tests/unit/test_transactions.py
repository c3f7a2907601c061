"""Exactly-once routing of records to transactions, against stand-ins for Faust's
transaction manager and producer (the real ones run in tests/integration/test_exactly_once.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.exceptions import ProducerSendError
from faust.types import TP

from streams.commits import CommitGate, gated, processed
from streams.faust_compat import processing
from streams.transactions import SourceTransactions

APP = "app"
GROUPS = {"posts.enriched": 1, "app-profiles-by-user": 1, "app-profiles-changelog": 1, "users.profiles": 1}


@dataclass
class Transactional:
    """An aiokafka transactional producer: counts its commits and aborts."""

    commits: int = 0
    begun: int = 0
    aborts: int = 0
    open: bool = True

    @property
    def _txn_manager(self) -> Any:
        return SimpleNamespace(is_in_transaction=lambda: self.open)

    async def abort_transaction(self) -> None:
        self.aborts += 1
        self.open = False

    async def commit_transaction(self) -> None:
        self.commits += 1
        self.open = False

    async def begin_transaction(self) -> None:
        self.begun += 1
        self.open = True


@dataclass
class Producer:
    """Faust's aiokafka Producer: one transactional producer per id, and the sends made through them."""

    _transaction_producers: dict[str, Transactional] = field(default_factory=dict)
    _trn_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    sent: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def own(self, *tids: str) -> None:
        for tid in tids:
            self._transaction_producers[tid] = Transactional()
            self._trn_locks[tid] = asyncio.Lock()

    async def send(self, topic: str, key: Any, value: Any, partition: int | None, *_: Any,
                   transactional_id: str | None = None) -> None:  # fmt: skip
        self.sent.append((topic, partition, transactional_id))

    aborted: list[str] = field(default_factory=list)

    async def flush(self) -> None:
        pass

    async def abort_transaction(self, tid: str) -> None:
        self.aborted.append(tid)

    async def stop_transaction(self, tid: str) -> None:
        self.stopped.append(tid)
        self._transaction_producers.pop(tid)

    async def maybe_begin_transaction(self, tid: str) -> None:
        self.own(tid)


class Manager:
    """Faust's TransactionManager: ids from active partitions, commits by input partition."""

    def __init__(self, producer: Producer, standby: set[TP]) -> None:
        self.producer = producer
        self.standby = standby
        self.consumer = SimpleNamespace(key_partition=lambda topic, key, partition: partition)
        self.committed: list[dict[TP, int]] = []

    def _tps_to_transactional_ids(self, tps: set[TP]) -> set[str]:
        return {f"{APP}-{GROUPS[tp.topic]}-{tp.partition}" for tp in tps if tp not in self.standby}

    async def commit(self, offsets: dict[TP, int], start_new_transaction: bool = True) -> bool:
        self.committed.append(offsets)
        return True


@dataclass
class Store:
    """Faust's memory store: rows, and the partition of each key it knows."""

    data: dict[str, Any] = field(default_factory=dict)
    _key_partition: dict[str, int] = field(default_factory=dict)


class ProfilesTable:
    """A Faust table: its store, changelog topic and changelog writes."""

    def __init__(self) -> None:
        self.data = Store()
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-profiles-changelog")

    def send_changelog(self, partition: int | None, key: Any, value: Any, *args: Any, **kwargs: Any) -> None:
        self.data.data[key] = value


class Tables(dict[str, Any]):
    """Faust's table manager: tables by name, and the recovery's offsets."""

    def __init__(self) -> None:
        super().__init__(profiles=ProfilesTable())
        self.recovery = SimpleNamespace(active_offsets={})


def installed(
    *owned: str, standby: frozenset[TP] = frozenset(), acked: dict[TP, list[int]] | None = None
) -> tuple[SourceTransactions, Producer, Any]:  # Any: send and on_rebalance are installed
    producer = Producer()
    producer.own(*owned)
    manager = Manager(producer, set(standby))
    installed_manager: Any = manager  # on_partitions_revoked is installed below

    async def forget_acks(revoked: set[TP]) -> None:  # Faust's consumer, then its transaction manager
        await installed_manager.on_partitions_revoked(revoked)

    async def commit() -> bool:
        return True

    app: Any = SimpleNamespace(
        conf=SimpleNamespace(id=APP),
        rebalancing=False,
        assignor=SimpleNamespace(_topic_groups=GROUPS),
        consumer=SimpleNamespace(
            transactions=manager,
            _acked=acked or {},
            _gap={},
            _committed_offset={},
            _acked_index={},
            on_partitions_revoked=forget_acks,
            commit=commit,
        ),  # fmt: skip
        tables=Tables(),
    )
    transactions = SourceTransactions(app, CommitGate())
    transactions.install()
    return transactions, producer, manager


@dataclass
class Event:
    message: Any


def event(topic: str, partition: int) -> Event:
    return Event(SimpleNamespace(topic=topic, partition=partition))


def test_a_record_joins_the_transaction_of_the_input_it_was_made_for_not_its_own_partition() -> None:
    _, producer, manager = installed("app-1-2")  # this worker owns partition 2 only
    post = event("posts.enriched", 2)

    async def route() -> None:
        with processing(post):
            await manager.send("app-profiles-by-user", b"user", b"v", 0, None, None)

    asyncio.run(route())
    assert producer.sent == [("app-profiles-by-user", 0, "app-1-2")]


def test_a_write_made_outside_any_event_joins_its_own_partitions_transaction() -> None:
    _, producer, manager = installed("app-1-3")
    asyncio.run(manager.send("app-profiles-changelog", b"user", b"v", 3, None, None))  # a buffered table write
    assert producer.sent == [("app-profiles-changelog", 3, "app-1-3")]


def test_a_record_for_an_input_this_worker_does_not_own_fails_with_a_line_naming_both() -> None:
    _, producer, manager = installed("app-1-0")
    post = event("posts.enriched", 4)

    async def route() -> None:
        with processing(post):
            await manager.send("users.profiles", b"user", b"v", 0, None, None)

    with pytest.raises(
        ProducerSendError, match=r"users.profiles\[0\] \(input posts.enriched\[4\], transaction app-1-4\)"
    ):
        asyncio.run(route())
    assert producer.sent == []


def test_a_rebalance_stops_the_producers_of_partitions_that_left_standby_replicas_included() -> None:
    kept, moved_to_standby = TP("posts.enriched", 0), TP("posts.enriched", 1)
    transactions, producer, manager = installed("app-1-0", "app-1-1", standby=frozenset({moved_to_standby}))
    new = TP("posts.enriched", 5)
    asyncio.run(manager.on_rebalance({kept, moved_to_standby, new}, set(), {new}))
    assert producer.stopped == ["app-1-1"]  # Faust counts it as still assigned: its producer would be fenced
    assert set(transactions.producers) == {"app-1-0", "app-1-5"}
    assert producer._transaction_producers["app-1-0"].begun == 0  # the open transaction goes on


def test_a_kept_partition_whose_transaction_the_revocation_ended_gets_a_new_one() -> None:
    # Faust's last commit of a revocation ends the transactions it commits and begins none:
    # the partition stays here, and its next record would find no transaction open.
    transactions, producer, manager = installed("app-1-0", "app-1-1")
    producer._transaction_producers["app-1-1"].open = False
    kept = {TP("posts.enriched", 0), TP("posts.enriched", 1)}
    asyncio.run(manager.on_rebalance(kept, set(), set()))
    assert producer._transaction_producers["app-1-1"].begun == 1
    assert producer._transaction_producers["app-1-0"].begun == 0  # still open: left as it is


def test_every_commit_also_commits_the_transactions_a_timer_wrote_to_without_new_offsets() -> None:
    transactions, producer, manager = installed("app-1-0", "app-1-1")

    async def run() -> None:
        with processing(event("posts.enriched", 0)):
            await manager.send("users.profiles", b"a", b"v", 1, None, None)
        with processing(event("posts.enriched", 1)):  # a timer's publication, no new input on 1
            await manager.send("users.profiles", b"b", b"v", 0, None, None)
        await manager.commit({TP("posts.enriched", 0): 10})  # Faust commits 0 with its offsets
        await transactions.commit_written()

    asyncio.run(run())
    assert producer._transaction_producers["app-1-0"].commits == 0  # committed by Faust, with its offsets
    assert producer._transaction_producers["app-1-1"].commits == 1
    assert producer._transaction_producers["app-1-1"].begun == 1
    asyncio.run(transactions.commit_written())
    assert producer._transaction_producers["app-1-1"].commits == 1  # nothing new written: nothing to commit


def test_records_of_inputs_whose_offsets_were_not_committed_stay_in_their_open_transaction() -> None:
    # Partition 1 has acknowledged offsets Faust did not commit (a gap, a rebalance): committing
    # its transaction without them would let those inputs' records come again when they are re-read.
    transactions, producer, manager = installed("app-1-1", acked={TP("posts.enriched", 1): [7, 8]})

    async def run() -> None:
        with processing(event("posts.enriched", 1)):
            await manager.send("users.profiles", b"a", b"v", 0, None, None)
        await transactions.commit_written()

    asyncio.run(run())
    assert producer._transaction_producers["app-1-1"].commits == 0
    assert transactions.written == {"app-1-1"}


def test_a_transaction_with_offsets_acknowledged_past_a_gap_is_held_whole() -> None:
    # Partition 1's transaction also holds the profile records made from posts.enriched[1]:
    # committed with profiles-by-user[1]'s offsets alone, they would come again when the
    # posts past the gap are read again after a rebalance.
    gap_on_1 = {TP("posts.enriched", 1): [7, 9], TP("app-profiles-by-user", 1): [3, 4]}
    transactions, _, _ = installed("app-1-0", "app-1-1", acked={TP("posts.enriched", 0): [5, 6], **gap_on_1})
    assert transactions.committable() == {TP("posts.enriched", 0)}
    gap_on_1[TP("posts.enriched", 1)].append(8)  # the gap filled: both partitions may commit
    app: Any = transactions.app  # the stand-ins of installed()
    app.consumer._acked.update(gap_on_1)
    assert transactions.committable() == {TP("posts.enriched", 0), *gap_on_1}


def test_a_revoked_partition_holding_records_is_aborted_and_its_table_rows_recovered_again() -> None:
    # Faust forgets a revoked partition's acknowledged offsets: its records can no longer
    # commit with them, and committed alone they would come again from the new owner.
    transactions, producer, manager = installed("app-1-0", "app-1-1")
    app: Any = transactions.app  # the stand-ins of installed()
    profiles = app.tables["profiles"]
    profiles.send_changelog(0, "kept", 1)
    profiles.send_changelog(1, "ahead", 2)  # written with the records about to be aborted
    app.tables.recovery.active_offsets[TP("app-profiles-changelog", 1)] = 40

    async def run() -> None:
        with processing(event("posts.enriched", 1)):
            await manager.send("users.profiles", b"a", b"v", 0, None, None)
        await app.consumer.on_partitions_revoked({TP("posts.enriched", 0), TP("posts.enriched", 1)})
        await transactions.commit_written()  # before the new assignment: nothing may commit

    asyncio.run(run())
    assert producer._transaction_producers["app-1-1"].aborts == 1
    assert producer._transaction_producers["app-1-0"].aborts == 0  # nothing written since its last commit
    assert producer._transaction_producers["app-1-1"].commits == 0 and transactions.written == set()
    assert profiles.data.data == {"kept": 1}  # recovered from the changelog, which holds committed rows only
    assert app.tables.recovery.active_offsets == {}


def test_a_timer_waits_out_a_rebalance_before_it_writes() -> None:
    gate = CommitGate()
    rebalancing = [True]
    gate.rebalancing = lambda: rebalancing[0]
    entered: list[bool] = []

    async def timer() -> None:
        async with gated(gate):
            entered.append(True)

    async def run() -> None:
        task = asyncio.create_task(timer())
        await asyncio.sleep(0.3)
        assert entered == []  # the revoked partitions' transactions are gone, the tables not yet recovered
        rebalancing[0] = False
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert entered == [True]


def test_a_batch_in_flight_finishes_during_a_rebalance_and_acknowledges_its_events() -> None:
    # Faust's revocation waits for the events in flight to be acknowledged: a batch that
    # waited for the rebalance to end would hold the revocation until Faust gives up.
    gate = CommitGate()
    gate.rebalancing = lambda: True
    acked: list[Any] = []

    async def ack(event: Any) -> None:
        acked.append(event)

    stream: Any = SimpleNamespace(ack=ack)
    events = [event("posts.enriched", 0), event("posts.enriched", 1)]
    for e in events:
        e.ack = True  # type: ignore[attr-defined]  # a Faust event has one

    async def batch() -> None:
        async with processed(gate, stream, events):
            pass

    asyncio.run(asyncio.wait_for(batch(), 2))
    assert acked == events and gate.in_flight == 0
