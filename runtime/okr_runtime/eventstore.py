"""Event-store configuration for the `eventsourcing` library: SQLite by default, PostgreSQL in production.

On PostgreSQL every process creates the schema and its tables at start-up
(``CREATE … IF NOT EXISTS``, and the library's ``CREATE TYPE`` and ``CREATE OR
REPLACE FUNCTION``). Run concurrently, those statements fail on the catalog's
unique indexes ("duplicate key … pg_type_typname_nsp_index") or with "tuple
concurrently updated", so all start-up DDL runs inside :func:`schema_lock`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from okr_runtime.settings import RuntimeSettings


class EventStoreConfigError(ValueError):
    """The event-store settings cannot work."""


def event_store_env(settings: RuntimeSettings, *, schema: str | None = None) -> dict[str, str]:
    """The environment an `eventsourcing` Application takes, built from our settings."""
    if settings.event_store == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if not settings.postgres_dsn:
        raise EventStoreConfigError("OKR_EVENT_STORE=postgres needs OKR_POSTGRES_DSN")
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", **_postgres_env(settings.postgres_dsn, schema or settings.postgres_schema)}


class SchemaLockTimeout(RuntimeError):
    """Another process held the schema's start-up lock for longer than this one would wait."""


@contextmanager
def schema_lock(dsn: str, schema: str | None, *, wait_s: float = 120) -> Iterator[None]:
    """Hold the start-up lock of `schema` (created if missing): one process at a time creates tables in it.

    A session-level advisory lock on a connection of its own, so it spans the
    transactions of other connections (the library's, a store's pool); each
    must commit inside the block. Not re-entrant: never nest two blocks.
    """
    name = f"okrstream.schema:{schema or 'default'}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, round(wait_s * 1000))}ms",))
        try:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        except psycopg.errors.LockNotAvailable as exc:
            raise SchemaLockTimeout(f"another process held the start-up lock of schema {schema or 'default'} for {wait_s:g} s") from exc
        try:
            if schema and conn.execute("SELECT to_regnamespace(%s) IS NULL", (schema,)).fetchall() == [(True,)]:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            yield
        finally:
            with contextlib.suppress(psycopg.Error):  # a lost connection has released the lock already
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


def creating_tables(settings: RuntimeSettings) -> AbstractContextManager[None]:
    """Held while this process creates its schema and tables: the schema's lock on PostgreSQL, nothing on SQLite."""
    if settings.event_store != "postgres" or not settings.postgres_dsn:
        return nullcontext()
    return schema_lock(settings.postgres_dsn, settings.postgres_schema)


def _postgres_env(dsn: str, schema: str | None) -> dict[str, str]:
    url = urlsplit(dsn)
    if url.scheme not in {"postgres", "postgresql"} or not url.hostname or not url.path.strip("/"):
        raise EventStoreConfigError(f"OKR_POSTGRES_DSN must look like postgresql://user@host:port/dbname, got {url.scheme}://…")
    env = {
        "POSTGRES_DBNAME": unquote(url.path.strip("/")),
        "POSTGRES_HOST": url.hostname,
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "y",
        "CREATE_TABLE": "y",
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    return env
