"""Where the benchmark runs: a Kafka broker (given or started with deploy/local/kafka.sh) and the two event stores."""

from __future__ import annotations

import os
import subprocess
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
KAFKA_ENV = {
    "OKR_KAFKA_PORT": "29192",
    "OKR_KAFKA_CONTROLLER_PORT": "29193",
    "OKR_STATE_DIR": str(ROOT / ".local" / "bench"),
}


@dataclass(frozen=True)
class Store:
    """One event store to measure: the check-in application's environment and the raw baseline's, side by side."""

    label: str
    where: str
    env: dict[str, str]
    raw_env: dict[str, str]
    raw_name: str


@contextmanager
def kafka() -> Iterator[tuple[str, str]]:
    """Bootstrap servers and where they come from: OKR_KAFKA_BOOTSTRAP, or a broker this run starts and stops."""
    if bootstrap := os.environ.get("OKR_KAFKA_BOOTSTRAP"):
        yield bootstrap, "from OKR_KAFKA_BOOTSTRAP"
        return
    running = _kafka_script("status", check=False)
    if running:
        yield running, "already running, deploy/local/kafka.sh"
        return
    bootstrap = _kafka_script("start")
    try:
        yield bootstrap, "started by deploy/local/kafka.sh for this run"
    finally:
        _kafka_script("stop", check=False)


def _kafka_script(command: str, *, check: bool = True) -> str:
    """Run deploy/local/kafka.sh on the benchmark's own ports and state dir; returns what it printed (the bootstrap)."""
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / "kafka.sh"), command],
        env={**os.environ, **KAFKA_ENV},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        if check:
            sys.stderr.write(result.stderr[-4000:])
            raise RuntimeError(f"deploy/local/kafka.sh {command} failed ({result.returncode})")
        return ""
    return result.stdout.strip()


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
