"""The webhooks' group commit: concurrent requests share one mapping read and one transaction, each gets its own answer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from okr_connectors.group_commit import GroupCommit, Write, Written
from okr_connectors.mapping import Mapping
from okr_connectors.store import Item, Outgoing, SqliteConnectorStore


class GatedStore(SqliteConnectorStore):
    """Holds its first group commit until released (so that requests gather behind it), records each one's size, refuses key `bad`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []

    def accept_all(self, deliveries: Sequence[tuple[str, Sequence[Item]]]) -> list[int]:
        self.batches.append(len(deliveries))
        self.started.set()
        self.release.wait(timeout=10)
        return super().accept_all(deliveries)

    def _insert(self, cur: Any, source: str, items: Sequence[Item], now: str) -> int:
        if any(item.dedup_key == "bad" for item in items):
            raise sqlite3.IntegrityError("refused by the test store")
        return super()._insert(cur, source, items, now)


class CountingMapping:
    """A fixed mapping that counts how often it was asked for."""

    def __init__(self) -> None:
        self.reads = 0

    def current(self) -> Mapping:
        self.reads += 1
        return Mapping()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatedStore]:
    found = GatedStore(tmp_path / "connectors.sqlite")
    yield found
    found.close()


def write(key: str) -> Write:
    return Write("jira", [Item(key, Outgoing("okr.delivery.v1", "acme", f'{{"key": "{key}"}}'.encode()))])


def writing(key: str) -> Callable[[Mapping], Write]:
    return lambda _: write(key)


async def test_requests_arriving_while_a_batch_commits_share_the_next_transaction_and_one_mapping_read(store: GatedStore) -> None:
    mapping = CountingMapping()
    commit = GroupCommit(store, mapping)
    first = asyncio.create_task(commit.run(writing("k0")))
    await asyncio.to_thread(store.started.wait, 10)
    rest = [asyncio.create_task(commit.run(writing(f"k{n}"))) for n in range(1, 4)]
    await asyncio.sleep(0.05)
    store.release.set()
    answers = await asyncio.gather(first, *rest)
    assert store.batches == [1, 3]
    assert mapping.reads == 2
    assert [a.new for a in answers if isinstance(a, Written)] == [1, 1, 1, 1]


async def test_a_request_is_answered_only_once_its_row_is_committed(store: GatedStore, tmp_path: Path) -> None:
    store.release.set()
    answer = await GroupCommit(store, CountingMapping()).run(writing("k1"))
    assert isinstance(answer, Written)
    other = sqlite3.connect(tmp_path / "connectors.sqlite")  # another connection sees it: it is in the file, not in a transaction
    try:
        assert other.execute("SELECT dedup_key FROM connector_inbox").fetchall() == [("k1",)]
    finally:
        other.close()


async def test_a_write_the_store_refuses_fails_its_own_request_and_the_rest_of_its_batch_is_stored(store: GatedStore) -> None:
    commit = GroupCommit(store, CountingMapping())
    first = asyncio.create_task(commit.run(writing("k0")))
    await asyncio.to_thread(store.started.wait, 10)
    rest = [asyncio.create_task(commit.run(writing(k))) for k in ("k1", "bad", "k2")]
    await asyncio.sleep(0.05)
    store.release.set()
    answers = await asyncio.gather(first, *rest, return_exceptions=True)
    assert isinstance(answers[2], sqlite3.IntegrityError)
    assert [a.new for a in answers if isinstance(a, Written)] == [1, 1, 1]
    assert sorted(out.value for _, out in store.unpublished()) == [b'{"key": "k0"}', b'{"key": "k1"}', b'{"key": "k2"}']


async def test_a_plan_that_fails_or_answers_without_writing_concerns_only_its_request(store: GatedStore) -> None:
    store.release.set()
    commit = GroupCommit(store, CountingMapping())

    def broken(_: Mapping) -> Write:
        raise ValueError("this payload cannot be mapped")

    answers = await asyncio.gather(commit.run(broken), commit.run(lambda _: "ignored"), commit.run(writing("k1")), return_exceptions=True)
    assert isinstance(answers[0], ValueError)
    assert answers[1] == "ignored"
    assert isinstance(answers[2], Written)
    assert answers[2].new == 1
    assert store.counts()["accepted"] == {"jira": 1}
