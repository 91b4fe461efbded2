"""Where the connectors keep what they accepted: SQLite by default, PostgreSQL in production.

``connector_inbox`` remembers every accepted delivery or polled item by a dedup
key (a webhook delivery id, an issue id with its update time), so a retried
webhook or an overlapping poll adds nothing. ``connector_outbox`` holds the
normalised events until Kafka acknowledged them. ``connector_checkpoints`` holds
each poller's position. ``connector_unmapped`` counts items no mapping rule
claimed, so they are visible rather than dropped. One :meth:`ConnectorStore.accept`
writes all of it in one transaction: a webhook is answered once its events are
stored, and a poller's checkpoint moves only with the items of its page. The
portfolios' stored connector mappings live here too (:mod:`okr_connectors.portfolio_mappings`).

Tables are created with ``CREATE … IF NOT EXISTS`` when the store opens, so a store
written by an earlier version gains the tables added since.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from okr_connectors.portfolio_mappings import MAPPINGS_SCHEMA, MappingTables
from okr_runtime.sqlstore import PostgresBackend, SqliteBackend

SCHEMA = """
CREATE TABLE IF NOT EXISTS connector_inbox (
    source TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    PRIMARY KEY (source, dedup_key)
);
CREATE TABLE IF NOT EXISTS connector_outbox (
    id {identity},
    topic TEXT NOT NULL,
    message_key TEXT NOT NULL,
    value TEXT NOT NULL,
    published BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS connector_outbox_unpublished ON connector_outbox (id) WHERE NOT published;
CREATE TABLE IF NOT EXISTS connector_checkpoints (
    name TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connector_unmapped (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    seen INTEGER NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (source, external_id)
);
"""


@dataclass(frozen=True)
class Outgoing:
    """A normalised event to publish: topic, Kafka key and the envelope's JSON."""

    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Unmapped:
    """An item no mapping rule claimed, with what an operator needs to write one (project, labels, title)."""

    source: str
    external_id: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class Item:
    """One delivery or polled item: its dedup key, and what it becomes (an event to publish, or an unmapped record)."""

    dedup_key: str | None
    outgoing: Outgoing | None = None
    unmapped: Unmapped | None = None


class ConnectorStore(MappingTables):
    """The connectors' tables behind one API; a backend (SQLite or PostgreSQL) provides the connections."""

    schema_sql = SCHEMA + MAPPINGS_SCHEMA

    def accept(self, source: str, items: Sequence[Item], checkpoint: tuple[str, dict[str, Any]] | None = None) -> int:
        """Store the items not seen before (and the checkpoint) atomically; how many were new."""
        now = _now()
        with self.transaction() as cur:
            new = self._insert(cur, source, items, now)
            if checkpoint is not None:
                name, position = checkpoint
                cur.execute(
                    self._q(
                        "INSERT INTO connector_checkpoints (name, position, updated_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at"
                    ),
                    (name, json.dumps(position, sort_keys=True), now),
                )
        return new

    def accept_all(self, deliveries: Sequence[tuple[str, Sequence[Item]]]) -> list[int]:
        """Store several deliveries' items (each a source and its items) in one transaction; how many of each were new.

        A group commit: concurrent webhooks share one transaction, and each is as durable as if it had had its own.
        Within the transaction they are written in the order given, so a later one repeating an earlier one's key is the duplicate.
        """
        now = _now()
        with self.transaction() as cur:
            return [self._insert(cur, source, items, now) for source, items in deliveries]

    def _insert(self, cur: Any, source: str, items: Sequence[Item], now: str) -> int:
        new = 0
        for item in items:
            if item.dedup_key is not None:
                cur.execute(
                    self._q("INSERT INTO connector_inbox (source, dedup_key, accepted_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
                    (source, item.dedup_key, now),
                )
                if cur.rowcount == 0:
                    continue
            new += 1
            if item.outgoing is not None:
                out = item.outgoing
                cur.execute(
                    self._q("INSERT INTO connector_outbox (topic, message_key, value) VALUES (?, ?, ?)"),
                    (out.topic, out.key, out.value.decode()),
                )
            if item.unmapped is not None:
                self._count_unmapped(cur, item.unmapped, now)
        return new

    def _count_unmapped(self, cur: Any, unmapped: Unmapped, now: str) -> None:
        cur.execute(
            self._q(
                "INSERT INTO connector_unmapped (source, external_id, summary, seen, last_seen) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (source, external_id) DO UPDATE SET "
                "summary = excluded.summary, seen = connector_unmapped.seen + 1, last_seen = excluded.last_seen"
            ),
            (unmapped.source, unmapped.external_id, json.dumps(unmapped.summary, sort_keys=True), now),
        )

    def prune(self, inbox_before: datetime) -> tuple[int, int]:
        """Forget what no longer needs keeping: published outbox rows (Kafka has them) and inbox keys accepted before the horizon.

        The horizon must lie beyond the vendors' redelivery windows and the pollers' overlap, or a late
        redelivery is stored again (its event id is the same, so consumers still drop it). Returns (outbox, inbox) rows removed.
        """
        with self.transaction() as cur:
            cur.execute("DELETE FROM connector_outbox WHERE published")
            outbox = cur.rowcount
            cur.execute(self._q("DELETE FROM connector_inbox WHERE accepted_at < ?"), (inbox_before.astimezone(UTC).isoformat(),))
            return outbox, cur.rowcount

    def checkpoint(self, name: str) -> dict[str, Any] | None:
        """A poller's stored position."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT position FROM connector_checkpoints WHERE name = ?"), (name,))
            row = cur.fetchone()
        found: dict[str, Any] | None = json.loads(row[0]) if row else None
        return found

    def unpublished(self, limit: int = 500, *, after_marking: Sequence[int] = ()) -> list[tuple[int, Outgoing]]:
        """Events stored but not yet acknowledged by Kafka, oldest first (the `after_marking` rows marked published first, in one go)."""
        with self.transaction() as cur:
            if after_marking:
                self._mark(cur, after_marking)
            cur.execute(
                self._q("SELECT id, topic, message_key, value FROM connector_outbox WHERE NOT published ORDER BY id LIMIT ?"), (limit,)
            )
            return [(row[0], Outgoing(row[1], row[2], row[3].encode())) for row in cur.fetchall()]

    def unpublished_count(self) -> int:
        """How many normalised events await publishing (the outbox backlog)."""
        with self.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM connector_outbox WHERE NOT published")
            return int(cur.fetchone()[0])

    def mark_published(self, row_ids: Sequence[int]) -> None:
        """Note that these outbox rows reached Kafka."""
        if row_ids:
            with self.transaction() as cur:
                self._mark(cur, row_ids)

    def _mark(self, cur: Any, row_ids: Sequence[int]) -> None:
        cur.executemany(self._q("UPDATE connector_outbox SET published = TRUE WHERE id = ?"), [(i,) for i in row_ids])

    def unmapped(self, source: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Unmapped items, most recently seen first."""
        where, params = ("WHERE source = ?", [source]) if source else ("", [])
        sql = f"SELECT source, external_id, summary, seen, last_seen FROM connector_unmapped {where} ORDER BY last_seen DESC LIMIT ?"  # noqa: S608
        with self.transaction() as cur:
            cur.execute(self._q(sql), (*params, limit))
            rows = cur.fetchall()
        return [{"source": r[0], "external_id": r[1], "summary": json.loads(r[2]), "seen": r[3], "last_seen": r[4]} for r in rows]

    def counts(self) -> dict[str, Any]:
        """Totals for the status endpoint: accepted per source, unpublished, unmapped per source."""
        with self.transaction() as cur:
            cur.execute("SELECT source, COUNT(*) FROM connector_inbox GROUP BY source ORDER BY source")
            accepted = dict(cur.fetchall())
            cur.execute("SELECT COUNT(*) FROM connector_outbox WHERE NOT published")
            (pending,) = cur.fetchone()
            cur.execute("SELECT source, COUNT(*), COALESCE(SUM(seen), 0) FROM connector_unmapped GROUP BY source ORDER BY source")
            unmapped = {r[0]: {"items": r[1], "deliveries": r[2]} for r in cur.fetchall()}
        return {"accepted": accepted, "unpublished": pending, "unmapped": unmapped}

    def checkpoints(self) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Every poller's position and when it moved."""
        with self.transaction() as cur:
            cur.execute("SELECT name, position, updated_at FROM connector_checkpoints ORDER BY name")
            rows = cur.fetchall()
        for name, position, updated_at in rows:
            yield name, json.loads(position), updated_at


class SqliteConnectorStore(SqliteBackend, ConnectorStore):
    """The embedded default: one SQLite file."""


class PostgresConnectorStore(PostgresBackend, ConnectorStore):
    """Production: PostgreSQL, in the configured schema."""


def _now() -> str:
    return datetime.now(UTC).isoformat()
