"""Replicas of every service starting at once on one PostgreSQL database, as a Kubernetes roll-out starts them.

Each replica is a process of its own (its own connections), opening what every
service opens at start-up; they start together on a schema that does not exist
yet, so they all try to create the schema and every table at the same moment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

pytestmark = pytest.mark.integration

REPLICAS = 8
SCRIPT = Path(__file__).with_name("startup_replica_for_test.py")


def start_replicas(dsn: str, schema: str, count: int, *mode: str) -> list[dict[str, str]]:
    """Start `count` replicas, let them all open their stores at the same moment, and return what each reported."""
    processes = [
        subprocess.Popen([sys.executable, str(SCRIPT), dsn, schema, *mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        for process in processes:  # every replica has imported everything and waits
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        return [json.loads(process.communicate(timeout=120)[0]) for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                process.wait()


def catalog(dsn: str, schema: str) -> dict[str, Any]:
    """What start-up left in the schema: relations (tables, indexes, sequences, types), functions, tracking rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchall()
        relations = conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = to_regnamespace(%s) ORDER BY 1, 2", (schema,)
        ).fetchall()
        functions = conn.execute("SELECT proname FROM pg_proc WHERE pronamespace = to_regnamespace(%s) ORDER BY 1", (schema,)).fetchall()
        tracking = conn.execute(sql.SQL("SELECT * FROM {}.checkins_outbox_tracking ORDER BY 1").format(sql.Identifier(schema))).fetchall()
    return {"schemas": schemas, "relations": relations, "functions": functions, "tracking": tracking}


@pytest.fixture
def fresh_schemas(postgres_dsn: str) -> Iterator[list[str]]:
    """Names of schemas that do not exist yet (the replicas create them), dropped after the test."""
    names: list[str] = []
    yield names
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def failures(outcomes: list[dict[str, str]]) -> list[str]:
    return [f"{service}: {error}" for outcome in outcomes for service, error in outcome.items() if error != "ok"]


def test_replicas_starting_together_on_a_new_schema_create_it_and_every_table_once(postgres_dsn: str, fresh_schemas: list[str]) -> None:
    alone, together = f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}"
    fresh_schemas += [alone, together]
    assert failures(start_replicas(postgres_dsn, alone, 1, "sequential")) == []
    expected = catalog(postgres_dsn, alone)
    assert {"checkins_events", "checkins_outbox_tracking", "rollup_scores", "drift_alerts", "connector_inbox", "notifier_sends"} <= {
        name for name, _ in expected["relations"]
    }

    assert failures(start_replicas(postgres_dsn, together, REPLICAS)) == []
    assert catalog(postgres_dsn, together) == expected


def test_replicas_restarting_together_on_existing_tables_leave_them_as_they_are(postgres_dsn: str, fresh_schemas: list[str]) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    fresh_schemas.append(schema)
    assert failures(start_replicas(postgres_dsn, schema, 1, "sequential")) == []
    before = catalog(postgres_dsn, schema)

    assert failures(start_replicas(postgres_dsn, schema, REPLICAS)) == []  # the library replaces its insert function every start
    assert catalog(postgres_dsn, schema) == before
