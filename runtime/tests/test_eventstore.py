import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment

from okr_runtime.eventstore import EventStoreConfigError, event_store_env
from okr_runtime.settings import RuntimeSettings


def test_sqlite_is_the_default_event_store(tmp_path: Path) -> None:
    env = event_store_env(RuntimeSettings(sqlite_path=tmp_path / "db" / "store.sqlite"))
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == str(tmp_path / "db" / "store.sqlite")
    assert (tmp_path / "db").is_dir()


def test_postgres_settings_come_from_one_dsn() -> None:
    env = event_store_env(RuntimeSettings(event_store="postgres", postgres_dsn="postgresql://okr:s%40cret@db.internal:6432/okr"))
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == ("db.internal", "6432", "okr")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("okr", "s@cret")


@pytest.mark.parametrize(
    ("dsn", "message"),
    [(None, "needs OKR_POSTGRES_DSN"), ("mysql://db/okr", "must look like"), ("postgresql://db", "must look like")],
)
def test_unusable_postgres_settings_are_refused_clearly(dsn: str | None, message: str) -> None:
    with pytest.raises(EventStoreConfigError, match=message):
        event_store_env(RuntimeSettings(event_store="postgres", postgres_dsn=dsn))


def _round_trip(env: dict[str, str]) -> list[StoredEvent]:
    factory = InfrastructureFactory.construct(Environment(name=f"t{uuid.uuid4().hex[:8]}", env=env))
    try:
        recorder = factory.application_recorder()
        aggregate = uuid.uuid4()
        events = [StoredEvent(aggregate, v, "okr_test:Event", f"state {v}".encode()) for v in (1, 2)]
        recorder.insert_events(events)
        return list(recorder.select_events(aggregate))
    finally:
        factory.close()


def test_the_sqlite_store_records_and_reads_back_events(tmp_path: Path) -> None:
    stored = _round_trip(event_store_env(RuntimeSettings(sqlite_path=tmp_path / "store.sqlite")))
    assert [(e.originator_version, e.state) for e in stored] == [(1, b"state 1"), (2, b"state 2")]


@pytest.mark.integration
def test_the_postgres_store_records_and_reads_back_events(postgres_dsn: str) -> None:
    stored = _round_trip(event_store_env(RuntimeSettings(event_store="postgres", postgres_dsn=postgres_dsn)))
    assert [(e.originator_version, e.state) for e in stored] == [(1, b"state 1"), (2, b"state 2")]
