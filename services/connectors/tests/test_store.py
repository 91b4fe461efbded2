"""The connectors' store on SQLite and PostgreSQL: dedup, outbox order, checkpoints moving with their items, unmapped counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okr_connectors.store import ConnectorStore, Item, Outgoing, PostgresConnectorStore, SqliteConnectorStore, Unmapped


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConnectorStore]:
    if request.param == "sqlite":
        found: ConnectorStore = SqliteConnectorStore(tmp_path / "connectors.sqlite")
        yield found
        found.close()
        return
    found = PostgresConnectorStore(request.getfixturevalue("postgres_dsn"), request.getfixturevalue("postgres_schema"))
    yield found
    found.close()


def out(n: int) -> Outgoing:
    return Outgoing("okr.delivery.v1", "acme", f'{{"n": {n}}}'.encode())


def test_an_item_seen_before_is_not_stored_again(store: ConnectorStore) -> None:
    assert store.accept("jira", [Item("jira:1:t1", out(1)), Item("jira:2:t1", out(2))]) == 2
    assert store.accept("jira", [Item("jira:1:t1", out(1)), Item("jira:1:t2", out(3))]) == 1
    assert store.accept("linear", [Item("jira:1:t1", out(4))]) == 1  # keys are per source
    assert [o.value for _, o in store.unpublished()] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}', b'{"n": 4}']
    assert store.counts()["accepted"] == {"jira": 3, "linear": 1}


def test_several_deliveries_share_one_transaction_and_a_later_repeat_is_the_duplicate(store: ConnectorStore) -> None:
    news = store.accept_all([("jira", [Item("d-1"), Item("jira:1:t1", out(1))]), ("jira", [Item("d-2"), Item("jira:1:t1", out(2))])])
    assert news == [2, 1]  # the second delivery repeats the first one's change: its own key is new, the change is not
    assert [o.value for _, o in store.unpublished()] == [out(1).value]
    assert store.accept_all([("linear", [Item("d-1")]), ("jira", [Item("d-1")])]) == [1, 0]


def test_published_rows_leave_the_outbox_in_order(store: ConnectorStore) -> None:
    store.accept("jira", [Item(f"k{i}", out(i)) for i in range(5)])
    first = store.unpublished(limit=2)
    assert [o.value for _, o in first] == [b'{"n": 0}', b'{"n": 1}']
    store.mark_published([row_id for row_id, _ in first])
    assert [o.value for _, o in store.unpublished()] == [b'{"n": 2}', b'{"n": 3}', b'{"n": 4}']
    assert store.counts()["unpublished"] == store.unpublished_count() == 3


def test_a_checkpoint_moves_only_with_its_items(store: ConnectorStore) -> None:
    assert store.checkpoint("jira") is None
    store.accept("jira", [Item("a", out(1))], ("jira", {"updated": "2026-11-01T10:00:00+00:00"}))
    assert store.checkpoint("jira") == {"updated": "2026-11-01T10:00:00+00:00"}

    broken = Item("b", Outgoing("okr.delivery.v1", "acme", b"\xff\xfe"))  # not UTF-8: the insert fails inside the transaction
    with pytest.raises(UnicodeDecodeError):
        store.accept("jira", [Item("c", out(2)), broken], ("jira", {"updated": "2026-11-02T10:00:00+00:00"}))
    assert store.checkpoint("jira") == {"updated": "2026-11-01T10:00:00+00:00"}
    assert [o.value for _, o in store.unpublished()] == [b'{"n": 1}']
    assert store.accept("jira", [Item("c", out(2))]) == 1  # nothing of the failed call was remembered


def test_unmapped_items_are_counted_not_published(store: ConnectorStore) -> None:
    summary = {"key": "ABC-1", "project": "ABC", "labels": ["growth"]}
    for _ in range(3):
        store.accept("jira", [Item(None, unmapped=Unmapped("jira", "10001", summary))])
    store.accept("linear", [Item(None, unmapped=Unmapped("linear", "x-1", {"project": "p"}))])
    assert store.unpublished() == []
    [item] = store.unmapped("jira")
    assert (item["external_id"], item["seen"], item["summary"]) == ("10001", 3, summary)
    assert store.counts()["unmapped"] == {"jira": {"items": 1, "deliveries": 3}, "linear": {"items": 1, "deliveries": 1}}


def test_pruning_drops_published_rows_and_old_inbox_keys_and_keeps_the_rest(store: ConnectorStore) -> None:
    store.accept("jira", [Item("old", out(1)), Item("new", out(2))])
    first = store.unpublished(limit=1)
    store.mark_published([row_id for row_id, _ in first])
    assert store.prune(datetime.now(UTC) - timedelta(days=7)) == (1, 0)  # nothing is a week old yet
    assert [o.value for _, o in store.unpublished()] == [b'{"n": 2}']  # unpublished rows are never pruned
    assert store.prune(datetime.now(UTC) + timedelta(seconds=1)) == (0, 2)
    assert store.accept("jira", [Item("old", out(3))]) == 1  # a key past the horizon no longer deduplicates
