import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment
from psycopg import sql

from okr_runtime.eventstore import EventStoreConfigError, SchemaLockTimeout, event_store_env, schema_lock
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


@pytest.fixture
def new_schemas(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    """Names of two schemas that do not exist yet, dropped after the test if something created them."""
    names = (f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}")
    yield names
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _schema_exists(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchall() == [(True,)]


@pytest.mark.integration
def test_the_schema_lock_creates_the_schema_and_admits_one_process_at_a_time(postgres_dsn: str, new_schemas: tuple[str, str]) -> None:
    schema, other = new_schemas
    with schema_lock(postgres_dsn, schema):
        assert _schema_exists(postgres_dsn, schema)
        with pytest.raises(SchemaLockTimeout, match=schema), schema_lock(postgres_dsn, schema, wait_s=0.2):
            pass
        with schema_lock(postgres_dsn, other):  # another schema has a lock of its own
            assert _schema_exists(postgres_dsn, other)
    with schema_lock(postgres_dsn, schema, wait_s=0.2):
        pass


@pytest.mark.integration
def test_the_schema_lock_is_released_when_start_up_fails(postgres_dsn: str, new_schemas: tuple[str, str]) -> None:
    schema, _ = new_schemas
    with pytest.raises(RuntimeError, match="table creation failed"), schema_lock(postgres_dsn, schema):
        raise RuntimeError("table creation failed")
    with schema_lock(postgres_dsn, schema, wait_s=0.2):
        pass
