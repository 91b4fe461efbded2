"""The two SQL backends a service's own tables live in: a SQLite file (the embedded default) or PostgreSQL.

A service writes its queries once against :class:`SqlStore` with ``?``
placeholders and a schema template with an ``{identity}`` column type; it gets
both backends by combining its store with :class:`SqliteBackend` or
:class:`PostgresBackend`::

    class SqliteScoreStore(SqliteBackend, ScoreStore): ...
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from psycopg_pool import ConnectionPool

from okr_runtime.eventstore import EventStoreConfigError, schema_lock
from okr_runtime.settings import RuntimeSettings

StoreT = TypeVar("StoreT", bound="SqlStore")

SQLITE_IDENTITY = "INTEGER PRIMARY KEY AUTOINCREMENT"
POSTGRES_IDENTITY = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"


class SqlStore(ABC):
    """Tables behind one API; a backend provides connections and the parameter style."""

    placeholder = "?"
    schema_sql = ""
    """``CREATE … IF NOT EXISTS`` statements separated by ``;``, with ``{identity}`` for an auto-increment key."""

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager yielding a cursor inside one transaction."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def _q(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def ping(self) -> None:
        """Fail unless the store answers (a readiness check)."""
        with self.transaction() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()


class SqliteBackend(SqlStore):
    """One SQLite file (WAL), one connection shared under a lock; the schema is created on opening."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(self.schema_sql.format(identity=SQLITE_IDENTITY))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One IMMEDIATE transaction (writers queue instead of failing on upgrade)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class PostgresBackend(SqlStore):
    """A connection pool on the schema, which is created with the tables under the schema's start-up lock."""

    placeholder = "%s"

    def __init__(self, dsn: str, schema: str | None = None, *, max_size: int = 4) -> None:
        options = {"options": f"-c search_path={schema}"} if schema else {}
        self._pool = ConnectionPool(dsn, min_size=1, max_size=max_size, kwargs=options, open=True, timeout=10)
        try:
            with schema_lock(dsn, schema), self.transaction() as cur:  # committed before the lock is released
                for statement in self.schema_sql.format(identity=POSTGRES_IDENTITY).split(";"):
                    if statement.strip():
                        cur.execute(statement.encode())
        except BaseException:
            self._pool.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on a pooled connection."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()


def open_sql_store(
    settings: RuntimeSettings, sqlite: Callable[[Path], StoreT], postgres: Callable[[str, str | None], StoreT], sqlite_path: Path
) -> StoreT:
    """The configured backend of a store: its SQLite file, or PostgreSQL in the configured schema (``OKR_EVENT_STORE``)."""
    if settings.event_store == "sqlite":
        return sqlite(sqlite_path)
    if not settings.postgres_dsn:
        raise EventStoreConfigError("OKR_EVENT_STORE=postgres needs OKR_POSTGRES_DSN")
    return postgres(settings.postgres_dsn, settings.postgres_schema)
