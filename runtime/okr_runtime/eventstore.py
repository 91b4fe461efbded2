"""Event-store configuration for the `eventsourcing` library: SQLite by default, PostgreSQL in production."""

from __future__ import annotations

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


def ensure_schema(settings: RuntimeSettings) -> None:
    """Create the configured PostgreSQL schema if it is missing (the library creates tables, not schemas)."""
    if settings.event_store != "postgres" or not settings.postgres_dsn or not settings.postgres_schema:
        return
    with psycopg.connect(settings.postgres_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.postgres_schema)))


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
