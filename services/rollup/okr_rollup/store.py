"""Where the rollup keeps what it applied and what it scored: SQLite by default, PostgreSQL in production.

Three tables. ``rollup_inputs`` holds each applied history event per portfolio in
order (``seq``), so a projection is rebuilt by replaying them; the primary key
(portfolio, seq) makes two replicas that both think they own a portfolio collide
instead of diverging. ``rollup_scores`` holds every score record produced, with
the history event that produced it: it answers "as of" and trend queries, and is
the outbox for ``okr.scores.v1`` (``published`` is set once Kafka acknowledged).
``rollup_capacity`` holds each cycle's capacity view every time an event changed it,
keyed by the event's position, so "as of" reads take the latest row per cycle.
An event's input row, its score rows and its capacity rows are written in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from okr_contracts.scores import score_key
from okr_rollup.domain.projection import CapacityView, ScoreRecord
from okr_runtime.sqlstore import PostgresBackend, SqliteBackend, SqlStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_inputs (
    portfolio_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (portfolio_id, seq)
);
CREATE TABLE IF NOT EXISTS rollup_scores (
    id {identity},
    portfolio_id TEXT NOT NULL,
    input_seq BIGINT NOT NULL,
    node_id TEXT NOT NULL,
    as_of TEXT NOT NULL,
    record TEXT NOT NULL,
    published BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS rollup_scores_node ON rollup_scores (portfolio_id, node_id, id);
CREATE INDEX IF NOT EXISTS rollup_scores_as_of ON rollup_scores (portfolio_id, as_of);
CREATE INDEX IF NOT EXISTS rollup_scores_unpublished ON rollup_scores (portfolio_id, input_seq) WHERE NOT published;
CREATE TABLE IF NOT EXISTS rollup_capacity (
    portfolio_id TEXT NOT NULL,
    cycle_id TEXT NOT NULL,
    input_seq BIGINT NOT NULL,
    as_of TEXT NOT NULL,
    view TEXT NOT NULL,
    PRIMARY KEY (portfolio_id, cycle_id, input_seq)
);
"""

INSERT_CAPACITY = "INSERT INTO rollup_capacity (portfolio_id, cycle_id, input_seq, as_of, view) VALUES (?, ?, ?, ?, ?)"
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Applied:
    """An event the projection applied at position `seq` of its portfolio: the score records it produced, the capacity views it changed."""

    portfolio_id: str
    seq: int
    event_id: str
    envelope: bytes
    records: Sequence[ScoreRecord]
    capacity: Sequence[CapacityView] = field(default=())


@dataclass(frozen=True)
class StoredView:
    """A cycle's capacity view as stored: true from `as_of`, set by the event at position `seq`."""

    cycle_id: str
    seq: int
    as_of: datetime
    view: bytes


class SeqConflict(RuntimeError):
    """Another process applied events to this portfolio since it was loaded here; reload and retry."""


def stamp(moment: datetime) -> str:
    """A time as stored: UTC with microseconds, fixed width, so text order is time order."""
    return moment.astimezone(UTC).strftime(STAMP)


def unstamp(text: str) -> datetime:
    """A stored time read back."""
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Loaded:
    """A portfolio's applied events, oldest first, whether some score records still await publishing, and its capacity rows."""

    envelopes: list[bytes]
    unpublished: bool
    capacity_rows: int = 0


class ScoreStore(SqlStore):
    """The rollup's tables behind one API; a backend (SQLite or PostgreSQL) provides the connections."""

    schema_sql = SCHEMA

    def load(self, portfolio_id: str) -> Loaded:
        """Everything needed to rebuild a portfolio's projection."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT envelope FROM rollup_inputs WHERE portfolio_id = ? ORDER BY seq"), (portfolio_id,))
            envelopes = [_bytes(row[0]) for row in cur.fetchall()]
            cur.execute(self._q("SELECT 1 FROM rollup_scores WHERE portfolio_id = ? AND NOT published LIMIT 1"), (portfolio_id,))
            unpublished = bool(cur.fetchall())
            cur.execute(self._q("SELECT COUNT(*) FROM rollup_capacity WHERE portfolio_id = ?"), (portfolio_id,))
            return Loaded(envelopes, unpublished, int(cur.fetchone()[0]))

    def append(
        self,
        portfolio_id: str,
        seq: int,
        event_id: str,
        envelope: bytes,
        records: Sequence[ScoreRecord],
        capacity: Sequence[CapacityView] = (),
    ) -> None:
        """Store an applied event, its score records and capacity views, atomically; :class:`SeqConflict` if `seq` is taken."""
        self.append_many([Applied(portfolio_id, seq, event_id, envelope, records, capacity)])

    def append_many(self, applied: Sequence[Applied]) -> None:
        """Store applied events (of any portfolios, each in order), their score records and capacity views in one transaction.

        All or nothing: :class:`SeqConflict` if any position is taken, and then none is stored.
        """
        inputs = [(a.portfolio_id, a.seq, a.event_id, a.envelope.decode()) for a in applied]
        scores = [(a.portfolio_id, a.seq, r.node_id, stamp(r.as_of), r.value.decode()) for a in applied for r in a.records]
        views = [(a.portfolio_id, v.cycle_id, a.seq, stamp(v.as_of), v.view.decode()) for a in applied for v in a.capacity]
        try:
            with self.transaction() as cur:
                cur.executemany(self._q("INSERT INTO rollup_inputs (portfolio_id, seq, event_id, envelope) VALUES (?, ?, ?, ?)"), inputs)
                if scores:
                    cur.executemany(
                        self._q("INSERT INTO rollup_scores (portfolio_id, input_seq, node_id, as_of, record) VALUES (?, ?, ?, ?, ?)"),
                        scores,
                    )
                if views:
                    cur.executemany(self._q(INSERT_CAPACITY), views)
        except (sqlite3.IntegrityError, psycopg.errors.UniqueViolation) as exc:
            taken = ", ".join(f"{a.portfolio_id}@{a.seq}" for a in applied[:3])
            raise SeqConflict(f"a position among {len(applied)} ({taken}, …) is already stored") from exc

    def unpublished(self, portfolio_id: str) -> list[tuple[str, bytes]]:
        """Score records stored but not yet acknowledged by Kafka, in order: (Kafka key, value)."""
        with self.transaction() as cur:
            cur.execute(
                self._q("SELECT node_id, record FROM rollup_scores WHERE portfolio_id = ? AND NOT published ORDER BY id"), (portfolio_id,)
            )
            return [(score_key(portfolio_id, row[0]), _bytes(row[1])) for row in cur.fetchall()]

    def unpublished_count(self) -> int:
        """How many score records of every portfolio await publishing (the outbox backlog)."""
        with self.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM rollup_scores WHERE NOT published")
            return int(cur.fetchone()[0])

    def mark_published(self, *portfolio_ids: str) -> None:
        """Note that every stored record of the portfolios reached Kafka."""
        with self.transaction() as cur:
            cur.executemany(
                self._q("UPDATE rollup_scores SET published = TRUE WHERE portfolio_id = ? AND NOT published"), [(p,) for p in portfolio_ids]
            )

    def latest(self, portfolio_id: str, as_of: datetime | None = None) -> dict[str, bytes]:
        """Each node's latest score record (as of a time, if given), by node id."""
        bound = stamp(as_of) if as_of is not None else "9999"
        with self.transaction() as cur:
            cur.execute(
                self._q(
                    "SELECT node_id, record FROM rollup_scores WHERE id IN ("
                    "SELECT MAX(id) FROM rollup_scores WHERE portfolio_id = ? AND as_of <= ? GROUP BY node_id)"
                ),
                (portfolio_id, bound),
            )
            return {row[0]: _bytes(row[1]) for row in cur.fetchall()}

    def history(self, portfolio_id: str, node_id: str, *, since: datetime | None = None, limit: int = 500) -> list[bytes]:
        """A node's score records, oldest first, from `since` on."""
        bound = stamp(since) if since is not None else ""
        with self.transaction() as cur:
            cur.execute(
                self._q("SELECT record FROM rollup_scores WHERE portfolio_id = ? AND node_id = ? AND as_of >= ? ORDER BY id LIMIT ?"),
                (portfolio_id, node_id, bound, limit),
            )
            return [_bytes(row[0]) for row in cur.fetchall()]

    def restore_capacity(self, portfolio_id: str, views: Sequence[tuple[int, CapacityView]]) -> int:
        """Store those of a replay's capacity views (position, view) that are missing (events stored before views were kept); how many."""
        rows = [(portfolio_id, v.cycle_id, seq, stamp(v.as_of), v.view.decode()) for seq, v in views]
        with self.transaction() as cur:
            cur.execute(self._q("SELECT COUNT(*) FROM rollup_capacity WHERE portfolio_id = ?"), (portfolio_id,))
            before = int(cur.fetchone()[0])
            cur.executemany(self._q(f"{INSERT_CAPACITY} ON CONFLICT DO NOTHING"), rows)
            cur.execute(self._q("SELECT COUNT(*) FROM rollup_capacity WHERE portfolio_id = ?"), (portfolio_id,))
            return int(cur.fetchone()[0]) - before

    def capacity(self, portfolio_id: str, as_of: datetime | None = None, cycle_id: str | None = None) -> list[StoredView]:
        """Each cycle's latest capacity view (as of a time, if given; only `cycle_id`, if given), in cycle order."""
        bound = stamp(as_of) if as_of is not None else "9999"
        with self.transaction() as cur:
            cur.execute(
                self._q(
                    "SELECT c.cycle_id, c.input_seq, c.as_of, c.view FROM rollup_capacity c JOIN ("
                    "SELECT cycle_id, MAX(input_seq) AS seq FROM rollup_capacity WHERE portfolio_id = ? AND as_of <= ? GROUP BY cycle_id"
                    ") m ON c.cycle_id = m.cycle_id AND c.input_seq = m.seq WHERE c.portfolio_id = ? ORDER BY c.cycle_id"
                ),
                (portfolio_id, bound, portfolio_id),
            )
            found = [StoredView(row[0], int(row[1]), unstamp(row[2]), _bytes(row[3])) for row in cur.fetchall()]
        return [v for v in found if cycle_id is None or v.cycle_id == cycle_id]

    def known(self, portfolio_id: str) -> bool:
        """Whether any event of the portfolio was applied."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT 1 FROM rollup_inputs WHERE portfolio_id = ? LIMIT 1"), (portfolio_id,))
            return bool(cur.fetchall())

    def portfolios(self) -> list[str]:
        """Portfolios with at least one applied event."""
        with self.transaction() as cur:
            cur.execute("SELECT DISTINCT portfolio_id FROM rollup_inputs ORDER BY portfolio_id")
            return [row[0] for row in cur.fetchall()]


class SqliteScoreStore(SqliteBackend, ScoreStore):
    """The embedded default: one SQLite file."""


class PostgresScoreStore(PostgresBackend, ScoreStore):
    """Production: PostgreSQL, in the configured schema."""


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
