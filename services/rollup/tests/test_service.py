"""The service layer over a real store (SQLite and PostgreSQL): stored before published, rebuilt on restart, refusals dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from okr_contracts.scores import score_key
from okr_rollup.application import RollupService
from okr_rollup.store import ScoreStore, SeqConflict, SqliteScoreStore
from okr_runtime.consumer import Delivery, Rejected


class Published:
    """A publisher that records what it was given and can be told to fail (Kafka down)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.fail = False

    async def __call__(self, records: Sequence[tuple[str, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("kafka unavailable")
        self.records += records

    def latest(self) -> dict[str, dict[str, Any]]:
        return {key.partition("/")[2]: json.loads(value)["data"] for key, value in self.records}


async def feed(service: RollupService, events: list[Any]) -> None:
    for envelope in events:
        await service.handle(envelope)


async def test_scores_are_stored_then_published_and_survive_a_restart(store: ScoreStore, history: Any) -> None:
    sent = Published()
    events = [*history.standard(), history.value("a1", 50.0), history.check_in("a1", 0.8)]
    await feed(RollupService(store, sent), events)
    stored = store.latest(history.pid)
    assert dict(sent.records) == {score_key(history.pid, node): value for node, value in stored.items()}
    assert store.unpublished(history.pid) == []
    restarted, again = RollupService(store, Published()), Published()
    restarted.publish = again
    await feed(restarted, events)  # redelivered after the restart: all duplicates
    assert again.records == []
    assert (await restarted.projection(history.pid)).published == (await RollupService(store, sent).projection(history.pid)).published


async def test_records_stored_while_kafka_was_down_are_published_before_the_next_event(store: ScoreStore, history: Any) -> None:
    sent = Published()
    service = RollupService(store, sent)
    await feed(service, history.standard())
    sent.fail = True
    value = history.value("b1", 70.0)
    with pytest.raises(ConnectionError):
        await service.handle(value)
    assert [key for key, _ in store.unpublished(history.pid)] == [score_key(history.pid, n) for n in ["b1", "B", "p1", "P"]]
    assert store.unpublished_count() == 4  # the outbox backlog
    sent.fail = False
    restarted = RollupService(store, sent)
    await restarted.handle(value)  # the consumer redelivers the uncommitted event
    assert store.unpublished(history.pid) == []
    assert store.unpublished_count() == 0
    assert sent.latest()["P"]["progress"] == pytest.approx(0.7 / 3)
    assert [node for node, _ in sent.records].count(score_key(history.pid, "b1")) == 2  # pending at definition, then 0.7 once


async def test_an_unscorable_event_is_rejected_and_nothing_is_stored(store: ScoreStore, history: Any) -> None:
    service = RollupService(store, Published())
    await feed(service, [history.portfolio("kpi"), history.objective("P", 1), history.kr("p1", "P", 1, unit="users", kind="derived")])
    before = store.latest(history.pid)
    with pytest.raises(Rejected, match="unit-mismatch"):
        await service.handle(history.objective("A", 2, parent="p1"))
    assert store.latest(history.pid) == before
    assert len(store.load(history.pid).envelopes) == 3


async def test_a_replica_behind_the_store_reloads_instead_of_diverging(store: ScoreStore, history: Any) -> None:
    events = history.standard()
    first, second = RollupService(store, Published()), RollupService(store, Published())
    await feed(first, events[:4])
    await second.projection(history.pid)  # loaded now, then left behind
    await feed(first, events[4:6])
    with pytest.raises(SeqConflict):
        await second.handle(events[6])
    await second.handle(events[6])  # the consumer's retry: rebuilt from the store
    assert len(store.load(history.pid).envelopes) == 7


async def test_scores_as_of_a_past_moment(store: ScoreStore, history: Any) -> None:
    service = RollupService(store, Published())
    await feed(service, [*history.standard(), history.value("a1", 20.0)])
    moment = history.now
    await feed(service, [history.value("a1", 90.0)])
    then, now = store.latest(history.pid, moment), store.latest(history.pid)
    assert json.loads(then["a1"])["data"]["progress"] == pytest.approx(0.2)
    assert json.loads(now["a1"])["data"]["progress"] == pytest.approx(0.9)
    assert store.latest(history.pid, moment - timedelta(days=30)) == {}
    assert [json.loads(r)["data"]["progress"] for r in store.history(history.pid, "a1")][-2:] == [pytest.approx(0.2), pytest.approx(0.9)]


def delivered(events: list[Any]) -> list[tuple[Any, Delivery]]:
    return [(envelope, Delivery("okr.kr-events.v1", 0, n, None, {})) for n, envelope in enumerate(events)]


async def test_a_batch_stores_and_publishes_exactly_what_one_at_a_time_does(store: ScoreStore, history: Any, tmp_path: Path) -> None:
    events = [*history.standard(), history.value("a1", 50.0), history.check_in("a1", 0.8), history.value("b1", 30.0)]
    one_by_one, batched = Published(), Published()
    other_store = SqliteScoreStore(tmp_path / "one-by-one.sqlite")
    await feed(RollupService(other_store, one_by_one), events)
    verdicts = await RollupService(store, batched).handle_batch(delivered(events))
    assert verdicts == [None] * len(events)
    assert batched.records == one_by_one.records
    assert store.latest(history.pid) == other_store.latest(history.pid)
    assert store.load(history.pid).envelopes == other_store.load(history.pid).envelopes
    assert store.unpublished_count() == 0
    other_store.close()
    again = Published()
    assert await RollupService(store, again).handle_batch(delivered(events)) == [None] * len(events)  # redelivered: all seen
    assert again.records == []


async def test_a_refused_event_in_a_batch_is_rejected_alone_and_the_rest_is_stored(store: ScoreStore, history: Any) -> None:
    events = [history.portfolio("kpi"), history.objective("P", 1), history.kr("p1", "P", 1, unit="users", kind="derived")]
    unscorable = history.objective("A", 2, parent="p1")
    service = RollupService(store, Published())
    verdicts = await service.handle_batch(delivered([*events, unscorable, history.objective("B", 1)]))
    assert [type(v).__name__ if v else None for v in verdicts] == [None, None, None, "Rejected", None]
    assert "unit-mismatch" in str(verdicts[3])
    assert len(store.load(history.pid).envelopes) == 4


async def test_a_batch_that_cannot_be_published_stays_in_the_outbox_and_goes_first_next_time(store: ScoreStore, history: Any) -> None:
    sent = Published()
    service = RollupService(store, sent)
    await service.handle_batch(delivered(history.standard()))
    sent.fail = True
    value = history.value("b1", 70.0)
    with pytest.raises(ConnectionError):
        await service.handle_batch(delivered([value]))
    assert store.unpublished_count() == 4
    sent.fail = False
    await RollupService(store, sent).handle_batch(delivered([value, history.value("a1", 10.0)]))  # redelivered with the next one
    assert store.unpublished_count() == 0
    assert [key for key, _ in sent.records].count(score_key(history.pid, "b1")) == 2  # pending at definition, then 0.7 once


async def test_a_batch_that_fails_midway_leaves_memory_as_the_store_so_one_at_a_time_stores_every_event(
    store: ScoreStore, history: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = history.standard()
    service = RollupService(store, Published())
    projection = await service.projection(history.pid)
    applied = 0
    real_apply = projection.apply

    def apply_until_a_bug(envelope: Any) -> Any:
        nonlocal applied
        applied += 1
        if applied == 4:
            raise RuntimeError("a bug in the projection")
        return real_apply(envelope)

    monkeypatch.setattr(projection, "apply", apply_until_a_bug)
    with pytest.raises(RuntimeError, match="a bug"):
        await service.handle_batch(delivered(events))
    assert len(store.load(history.pid).envelopes) == 0
    await feed(service, events)  # the consumer takes the batch one event at a time
    assert len(store.load(history.pid).envelopes) == len(events)
