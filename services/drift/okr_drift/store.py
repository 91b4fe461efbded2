"""Where drift keeps its facts and alerts: SQLite by default, PostgreSQL in production.

Three tables. ``drift_facts`` holds each fact entity as a JSON document, so an
input rewrites only what it touched. ``drift_alerts`` holds every alert with
its lifecycle state; a partial unique index allows one alert that is not
resolved per portfolio, rule and node. ``drift_outbox`` holds each lifecycle
event until Kafka acknowledged it. What one input or one tick changed is
written in one transaction, before the event is published and the offset committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from okr_drift.domain.alerts import Alert, AlertState
from okr_runtime.sqlstore import PostgresBackend, SqliteBackend, SqlStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS drift_facts (
    portfolio_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (portfolio_id, kind, entity_id)
);
CREATE TABLE IF NOT EXISTS drift_alerts (
    portfolio_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    node_id TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    product_id TEXT,
    owner TEXT,
    raised_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (portfolio_id, alert_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS drift_alerts_one_open ON drift_alerts (portfolio_id, rule, node_id) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS drift_alerts_state ON drift_alerts (portfolio_id, state, raised_at);
CREATE TABLE IF NOT EXISTS drift_outbox (
    id {identity},
    portfolio_id TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    value TEXT NOT NULL,
    published BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS drift_outbox_unpublished ON drift_outbox (portfolio_id, id) WHERE NOT published;
"""
ACTIVE = (AlertState.OPEN.value, AlertState.ACKNOWLEDGED.value)


@dataclass(frozen=True)
class Write:
    """What one input or one tick changed in a portfolio: fact documents, alerts, and events to publish."""

    portfolio_id: str
    facts: Sequence[tuple[str, str, str]] = ()
    """(kind, entity id, JSON document)."""
    alerts: Sequence[Alert] = ()
    events: Sequence[tuple[str, bytes]] = ()
    """(event id, envelope value)."""


@dataclass(frozen=True)
class AlertQuery:
    """Filters of the alert list."""

    states: tuple[str, ...] = ACTIVE
    product_id: str | None = None
    owner: str | None = None
    rule: str | None = None
    node_id: str | None = None
    limit: int | None = 500
    """At most this many; none is every match."""


class DriftStore(SqlStore):
    """Drift's tables behind one API; a backend (SQLite or PostgreSQL) provides the connections."""

    schema_sql = SCHEMA

    def write(self, change: Write) -> None:
        """Store a portfolio's changed facts, alerts and outgoing events atomically."""
        self.write_many([change])

    def write_many(self, changes: Sequence[Write]) -> None:
        """Store several writes (of one or more portfolios, in order) in one transaction."""
        with self.transaction() as cur:
            for change in changes:
                self._write(cur, change)

    def _write(self, cur: Any, change: Write) -> None:
        pid = change.portfolio_id
        if change.facts:
            cur.executemany(
                self._q(
                    "INSERT INTO drift_facts (portfolio_id, kind, entity_id, doc) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (portfolio_id, kind, entity_id) DO UPDATE SET doc = excluded.doc"
                ),
                [(pid, kind, entity_id, doc) for kind, entity_id, doc in change.facts],
            )
        for alert in change.alerts:  # one by one: a resolve must free the open slot before a raise takes it
            cur.execute(
                self._q(
                    "INSERT INTO drift_alerts "
                    "(portfolio_id, alert_id, rule, node_id, state, severity, product_id, owner, raised_at, doc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (portfolio_id, alert_id) DO UPDATE SET state = excluded.state, doc = excluded.doc"
                ),
                _alert_row(alert),
            )
        if change.events:
            cur.executemany(
                self._q("INSERT INTO drift_outbox (portfolio_id, event_id, value) VALUES (?, ?, ?)"),
                [(pid, event_id, value.decode()) for event_id, value in change.events],
            )

    def facts(self) -> Iterator[tuple[str, str, str, str]]:
        """Every stored fact as (portfolio, kind, entity id, JSON document)."""
        with self.transaction() as cur:
            cur.execute("SELECT portfolio_id, kind, entity_id, doc FROM drift_facts ORDER BY portfolio_id, kind, entity_id")
            rows = cur.fetchall()
        yield from rows

    def alerts(self, portfolio_id: str | None = None, query: AlertQuery | None = None) -> list[Alert]:
        """Alerts matching the query (every portfolio's active alerts when no portfolio is given), newest first."""
        query = query or AlertQuery()
        clauses, params = [f"state IN ({', '.join('?' for _ in query.states)})"], list[Any](query.states)
        for column, value in (("portfolio_id", portfolio_id), ("product_id", query.product_id), ("owner", query.owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for column, value in (("rule", query.rule), ("node_id", query.node_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT doc FROM drift_alerts WHERE {' AND '.join(clauses)} ORDER BY raised_at DESC, alert_id"  # noqa: S608 (fixed columns)
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        with self.transaction() as cur:
            cur.execute(self._q(sql), params)
            return [Alert.model_validate_json(row[0]) for row in cur.fetchall()]

    def alert(self, portfolio_id: str, alert_id: str) -> Alert | None:
        """One alert by id."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT doc FROM drift_alerts WHERE portfolio_id = ? AND alert_id = ?"), (portfolio_id, alert_id))
            row = cur.fetchone()
        return Alert.model_validate_json(row[0]) if row else None

    def alert_ids(self) -> Iterator[tuple[str, str]]:
        """Every alert id ever used, as (portfolio, alert id): ids are never reused."""
        with self.transaction() as cur:
            cur.execute("SELECT portfolio_id, alert_id FROM drift_alerts")
            rows = cur.fetchall()
        yield from rows

    def unpublished(self) -> list[tuple[int, str, bytes]]:
        """Events stored but not yet acknowledged by Kafka, in order: (row id, portfolio, value)."""
        with self.transaction() as cur:
            cur.execute("SELECT id, portfolio_id, value FROM drift_outbox WHERE NOT published ORDER BY id")
            return [(row[0], row[1], row[2].encode()) for row in cur.fetchall()]

    def unpublished_count(self) -> int:
        """How many lifecycle events await publishing (the outbox backlog)."""
        with self.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM drift_outbox WHERE NOT published")
            return int(cur.fetchone()[0])

    def mark_published(self, row_ids: Iterable[int]) -> None:
        """Note that these outbox rows reached Kafka."""
        ids = [(i,) for i in row_ids]
        if ids:
            with self.transaction() as cur:
                cur.executemany(self._q("UPDATE drift_outbox SET published = TRUE WHERE id = ?"), ids)


def _alert_row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.portfolio_id,
        alert.alert_id,
        alert.rule.value,
        alert.node_id,
        alert.state.value,
        alert.severity.value,
        alert.subject.product_id,
        alert.subject.owner,
        alert.raised_at.isoformat(),
        alert.model_dump_json(),
    )


class SqliteDriftStore(SqliteBackend, DriftStore):
    """The embedded default: one SQLite file."""


class PostgresDriftStore(PostgresBackend, DriftStore):
    """Production: PostgreSQL, in the configured schema."""
