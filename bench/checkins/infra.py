"""Where the benchmark runs: a Kafka broker (given or started with deploy/local/kafka.sh) and the two event stores."""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from okr_runtime.eventstore import event_store_env
from okr_runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from local_kafka import kafka as kafka  # noqa: E402 (one module starts the benchmarks' broker; re-exported for run.py)


@dataclass(frozen=True)
class Store:
    """One event store to measure: the check-in application's environment and the raw baseline's, side by side."""

    label: str
    where: str
    env: dict[str, str]
    raw_env: dict[str, str]
    raw_name: str


@contextmanager
def sqlite_store() -> Iterator[Store]:
    """Two fresh SQLite files in a temporary directory: the check-ins' and the raw baseline's (same settings)."""
    with tempfile.TemporaryDirectory(prefix="okr-bench-") as tmp:
        env = event_store_env(RuntimeSettings(event_store="sqlite", sqlite_path=Path(tmp) / "checkins.sqlite"))
        raw_env = {**env, "SQLITE_DBNAME": str(Path(tmp) / "raw.sqlite")}
        yield Store("SQLite", f"{tmp}/*.sqlite, WAL", env, raw_env, "bench_raw")


@contextmanager
def postgres_store(dsn: str) -> Iterator[Store]:
    """A fresh schema in the given database, dropped afterwards; the raw baseline uses its own table in it."""
    schema = f"bench_checkins_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        version = conn.execute("SHOW server_version").fetchone()
    try:
        env = event_store_env(RuntimeSettings(event_store="postgres", postgres_dsn=dsn), schema=schema)
        yield Store("PostgreSQL", f"server {version[0] if version else '?'}, schema {schema}", env, env, "bench_raw")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
