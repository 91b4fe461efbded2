"""Portfolios' stored mappings on SQLite and PostgreSQL: versions, idempotent replacement, one owner per channel, the mapping in force."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from okr_connectors.mapping import Mapping, MappingRule, SlackChannel
from okr_connectors.portfolio_mappings import ChannelClaimed, LiveMapping
from okr_connectors.store import ConnectorStore, PostgresConnectorStore, SqliteConnectorStore

OpenStore = Callable[[], ConnectorStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store on the same database each time it is called (as another process would); all are closed after the test."""
    opened: list[ConnectorStore] = []

    def open_one() -> ConnectorStore:
        if request.param == "sqlite":
            store: ConnectorStore = SqliteConnectorStore(tmp_path / "connectors.sqlite")
        else:
            store = PostgresConnectorStore(request.getfixturevalue("postgres_dsn"), request.getfixturevalue("postgres_schema"))
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> ConnectorStore:
    return open_store()


def rule(portfolio: str, **matchers: str) -> MappingRule:
    return MappingRule.model_validate({**matchers, "portfolio_id": portfolio, "kr_ids": [f"kr-{portfolio}"]})


def channels(portfolio: str, *ids: str) -> dict[str, SlackChannel]:
    return {channel: SlackChannel(portfolio_id=portfolio, kr_ids=(f"kr-{portfolio}",)) for channel in ids}


def test_a_portfolio_without_a_stored_mapping_has_the_empty_one_at_version_zero(store: ConnectorStore) -> None:
    found = store.portfolio_mapping("acme")
    assert (found.mapping, found.version, found.updated_by) == (Mapping(), 0, None)
    assert store.put_portfolio_mapping("acme", Mapping(), "ana")[1] is False  # nothing stored is the empty mapping already
    assert (store.portfolio_mappings(), store.mappings_version()) == ([], 0)


def test_a_stored_mapping_is_read_back_with_its_version_and_who_changed_it(store: ConnectorStore) -> None:
    mapping = Mapping(rules=(rule("acme", source="jira", project="PAY"), rule("acme", label="okr")), slack_channels=channels("acme", "C1"))
    stored, changed = store.put_portfolio_mapping("acme", mapping, "ana")
    assert (changed, stored.version, stored.updated_by, stored.mapping) == (True, 1, "ana", mapping)
    assert store.portfolio_mapping("acme") == stored
    replaced, changed = store.put_portfolio_mapping("acme", Mapping(rules=(rule("acme", label="okr"),)), "ben")
    assert (changed, replaced.version, replaced.updated_by, replaced.mapping.slack_channels) == (True, 2, "ben", {})


def test_storing_the_same_mapping_again_changes_nothing(store: ConnectorStore) -> None:
    mapping = Mapping(rules=(rule("acme", project="PAY"),), slack_channels=channels("acme", "C1", "C2"))
    first, _ = store.put_portfolio_mapping("acme", mapping, "ana")
    same = Mapping(rules=(rule("acme", project="PAY"),), slack_channels=dict(reversed(channels("acme", "C1", "C2").items())))
    again, changed = store.put_portfolio_mapping("acme", same, "ben")
    assert (changed, again) == (False, first)
    assert store.mappings_version() == 1


def test_a_channel_another_portfolio_has_is_refused_and_nothing_of_the_call_is_stored(store: ConnectorStore) -> None:
    store.put_portfolio_mapping("acme", Mapping(slack_channels=channels("acme", "C1")), "ana")
    before = store.put_portfolio_mapping("beta", Mapping(rules=(rule("beta", project="B"),)), "bo")[0]
    with pytest.raises(ChannelClaimed, match="Slack channel C1 is already mapped to portfolio acme") as refused:
        store.put_portfolio_mapping(
            "beta", Mapping(rules=(rule("beta", project="NEW"),), slack_channels=channels("beta", "C0", "C1")), "bo"
        )
    assert (refused.value.channel, refused.value.owner) == ("C1", "acme")
    assert store.portfolio_mapping("beta") == before
    store.put_portfolio_mapping("beta", Mapping(slack_channels=channels("beta", "C0")), "bo")  # C0 was not kept by the refused call


def test_a_channel_its_portfolio_released_may_be_claimed_by_another(store: ConnectorStore) -> None:
    store.put_portfolio_mapping("acme", Mapping(slack_channels=channels("acme", "C1", "C2")), "ana")
    store.put_portfolio_mapping("acme", Mapping(slack_channels=channels("acme", "C2")), "ana")
    stored, changed = store.put_portfolio_mapping("beta", Mapping(slack_channels=channels("beta", "C1")), "bo")
    assert (changed, list(stored.mapping.slack_channels)) == (True, ["C1"])


def test_the_mapping_in_force_is_the_files_then_the_stored_ones_in_portfolio_order_and_the_file_keeps_its_channels(
    store: ConnectorStore,
) -> None:
    file = Mapping(rules=(rule("ops", project="PAY"),), slack_channels=channels("ops", "C1"))
    store.put_portfolio_mapping("zeta", Mapping(rules=(rule("zeta", project="PAY"),), slack_channels=channels("zeta", "C2")), "z")
    store.put_portfolio_mapping("alpha", Mapping(rules=(rule("alpha", label="okr"),), slack_channels=channels("alpha", "C1", "C3")), "a")
    merged = LiveMapping(file, store).current()
    assert [r.portfolio_id for r in merged.rules] == ["ops", "alpha", "zeta"]
    assert {c: s.portfolio_id for c, s in merged.slack_channels.items()} == {"C1": "ops", "C2": "zeta", "C3": "alpha"}


def test_a_change_stored_by_another_process_is_in_force_for_the_next_item(open_store: OpenStore) -> None:
    here, elsewhere = open_store(), open_store()
    live = LiveMapping(Mapping(), here)
    assert live.current() == Mapping()
    assert live.current() is live.current()  # nothing changed: the merged mapping is not rebuilt
    elsewhere.put_portfolio_mapping("acme", Mapping(rules=(rule("acme", project="PAY"),)), "ana")
    assert [r.project for r in live.current().rules] == ["PAY"]
    elsewhere.put_portfolio_mapping("acme", Mapping(rules=(rule("acme", project="WEB"),)), "ana")
    assert [r.project for r in live.current().rules] == ["WEB"]
