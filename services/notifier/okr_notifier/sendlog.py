"""The notifier's durable send log: one row per alert state, recipient and channel, and every attempt at it.

``notifier_sends`` is keyed by (alert id, state, recipient, channel), so an alert
event redelivered by Kafka, or replayed after a restart, enqueues nothing: each
notification exists once and is sent once. A send is ``pending`` until an
attempt succeeds (``sent``) or fails for good (``dead``); ``next_attempt_at``
holds a retry back. ``notifier_attempts`` keeps the outcome of every attempt for
audit. :meth:`SendLog.record` writes the attempt and the send's new status in one
transaction, so the audit trail and the status never disagree.

Times are stored as UTC ISO-8601 text of one fixed width, so they order as text
on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from okr_runtime.sqlstore import PostgresBackend, SqliteBackend, SqlStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifier_sends (
    alert_id TEXT NOT NULL,
    state TEXT NOT NULL,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    PRIMARY KEY (alert_id, state, recipient, channel)
);
CREATE INDEX IF NOT EXISTS notifier_sends_due ON notifier_sends (next_attempt_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS notifier_attempts (
    alert_id TEXT NOT NULL,
    state TEXT NOT NULL,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'retry', 'permanent')),
    detail TEXT NOT NULL,
    PRIMARY KEY (alert_id, state, recipient, channel, attempt)
);
CREATE TABLE IF NOT EXISTS notifier_raised (
    alert_id TEXT PRIMARY KEY,
    event TEXT NOT NULL
);
"""

Status = Literal["pending", "sent", "dead"]
Outcome = Literal["ok", "retry", "permanent"]

_SEND_COLUMNS = "alert_id, state, recipient, channel, address, payload, status, attempts, next_attempt_at, last_error, created_at, sent_at"
_KEY = "alert_id = ? AND state = ? AND recipient = ? AND channel = ?"
_STATUS_AFTER: dict[Outcome, Status] = {"ok": "sent", "retry": "pending", "permanent": "dead"}


@dataclass(frozen=True)
class Send:
    """One notification to one recipient on one channel: where it goes (address), what it says (payload) and how far it got."""

    alert_id: str
    state: str
    recipient: str
    channel: str
    address: str
    payload: dict[str, Any] = field(hash=False)
    status: Status = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes a send unique: alert id, alert state, recipient, channel."""
        return (self.alert_id, self.state, self.recipient, self.channel)


@dataclass(frozen=True)
class Attempt:
    """One attempt at a send, for audit."""

    alert_id: str
    state: str
    recipient: str
    channel: str
    attempt: int
    at: datetime
    outcome: Outcome
    detail: str


class SendNotPending(Exception):
    """A send was recorded that is no longer pending as the caller saw it (another dispatcher got there first)."""


class SendLog(SqlStore):
    """The send log behind one API; a backend (SQLite or PostgreSQL) provides the connections."""

    schema_sql = SCHEMA

    def enqueue(self, sends: Sequence[Send], *, now: datetime | None = None) -> int:
        """Store the sends whose key is new, due at once (or at their own ``next_attempt_at``); how many were new."""
        return self.intake([], [(sends, now or datetime.now(UTC))])[0]

    def intake(self, raised: Sequence[tuple[str, str]], planned: Sequence[tuple[Sequence[Send], datetime]]) -> list[int]:
        """In one transaction: keep raised events (alert id, event JSON) as :meth:`remember_raised` does, then
        enqueue each group of sends as :meth:`enqueue` does at its own time; how many of each group were new."""
        news = []
        with self.transaction() as cur:
            for alert_id, event_json in raised:
                cur.execute(
                    self._q("INSERT INTO notifier_raised (alert_id, event) VALUES (?, ?) ON CONFLICT DO NOTHING"), (alert_id, event_json)
                )
            for sends, now in planned:
                created, new = _text(now), 0
                for send in sends:
                    due = _text(send.next_attempt_at) if send.next_attempt_at else created
                    cur.execute(
                        self._q(
                            "INSERT INTO notifier_sends "
                            "(alert_id, state, recipient, channel, address, payload, next_attempt_at, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                        ),
                        (*send.key, send.address, json.dumps(send.payload, sort_keys=True), due, created),
                    )
                    new += cur.rowcount
                news.append(new)
        return news

    def due(self, now: datetime, limit: int = 100) -> list[Send]:
        """Pending sends whose time has come, oldest (first enqueued) first."""
        sql = (
            f"SELECT {_SEND_COLUMNS} FROM notifier_sends WHERE status = 'pending' AND next_attempt_at <= ? "  # noqa: S608
            "ORDER BY created_at, alert_id, state, recipient, channel LIMIT ?"
        )
        with self.transaction() as cur:
            cur.execute(self._q(sql), (_text(now), limit))
            return [_send(row) for row in cur.fetchall()]

    def get(self, alert_id: str, state: str, recipient: str, channel: str) -> Send | None:
        """One send by its key."""
        with self.transaction() as cur:
            cur.execute(self._q(f"SELECT {_SEND_COLUMNS} FROM notifier_sends WHERE {_KEY}"), (alert_id, state, recipient, channel))  # noqa: S608
            row = cur.fetchone()
        return _send(row) if row else None

    def record(self, send: Send, outcome: Outcome, *, at: datetime, detail: str, next_attempt_at: datetime | None = None) -> int:
        """Record an attempt and move the send on (``ok`` → sent, ``retry`` → pending until ``next_attempt_at``, ``permanent`` → dead).

        Returns the attempt's number. Raises :class:`SendNotPending` when the send is not
        pending with the attempts the caller saw, so two dispatchers never both record it.
        """
        if outcome == "retry" and next_attempt_at is None:
            raise ValueError("a retry needs next_attempt_at")
        attempt = send.attempts + 1
        with self.transaction() as cur:
            cur.execute(
                self._q(
                    "UPDATE notifier_sends SET status = ?, attempts = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                    "last_error = ?, sent_at = ? "
                    "WHERE alert_id = ? AND state = ? AND recipient = ? AND channel = ? AND status = 'pending' AND attempts = ?"
                ),
                (
                    _STATUS_AFTER[outcome],
                    attempt,
                    _text(next_attempt_at) if next_attempt_at else None,
                    None if outcome == "ok" else detail,
                    _text(at) if outcome == "ok" else None,
                    *send.key,
                    send.attempts,
                ),
            )
            if cur.rowcount != 1:
                raise SendNotPending(f"send {send.key} is not pending after {send.attempts} attempts")
            cur.execute(
                self._q(
                    "INSERT INTO notifier_attempts (alert_id, state, recipient, channel, attempt, at, outcome, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (*send.key, attempt, _text(at), outcome, detail),
            )
        return attempt

    def known(self, alert_id: str) -> bool:
        """Whether any send was queued under this key (an alert, or a cadence occurrence such as `digest:acme:2026-11-16`)."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT 1 FROM notifier_sends WHERE alert_id = ? LIMIT 1"), (alert_id,))
            return cur.fetchone() is not None

    def remember_raised(self, alert_id: str, event_json: str) -> None:
        """Keep an alert's raised event: its acknowledgement and resolution are announced to the same people."""
        self.intake([(alert_id, event_json)], [])

    def raised(self, alert_id: str) -> str | None:
        """The raised event of an alert, as kept."""
        return self.raised_many([alert_id]).get(alert_id)

    def raised_many(self, alert_ids: Sequence[str]) -> dict[str, str]:
        """The raised events kept of these alerts, by alert id (an alert never raised here is absent)."""
        found: dict[str, str] = {}
        with self.transaction() as cur:
            for alert_id in dict.fromkeys(alert_ids):
                cur.execute(self._q("SELECT event FROM notifier_raised WHERE alert_id = ?"), (alert_id,))
                row = cur.fetchone()
                if row:
                    found[alert_id] = str(row[0])
        return found

    def counts(self) -> dict[str, int]:
        """How many sends are pending, sent and dead."""
        found = {"pending": 0, "sent": 0, "dead": 0}
        with self.transaction() as cur:
            cur.execute("SELECT status, COUNT(*) FROM notifier_sends GROUP BY status")
            found.update(dict(cur.fetchall()))
        return found

    def pending_count(self) -> int:
        """How many sends are not delivered yet, due or waiting to retry (the send log's backlog)."""
        with self.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM notifier_sends WHERE status = 'pending'")
            return int(cur.fetchone()[0])

    def attempts(self, alert_id: str) -> list[Attempt]:
        """Every attempt at every send of one alert, in the order they happened."""
        with self.transaction() as cur:
            cur.execute(
                self._q(
                    "SELECT alert_id, state, recipient, channel, attempt, at, outcome, detail FROM notifier_attempts "
                    "WHERE alert_id = ? ORDER BY at, state, recipient, channel, attempt"
                ),
                (alert_id,),
            )
            rows = cur.fetchall()
        return [Attempt(r[0], r[1], r[2], r[3], r[4], _time(r[5]), r[6], r[7]) for r in rows]


class SqliteSendLog(SqliteBackend, SendLog):
    """The embedded default: one SQLite file."""


class PostgresSendLog(PostgresBackend, SendLog):
    """Production: PostgreSQL, in the configured schema."""


def _text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("send log times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _send(row: Sequence[Any]) -> Send:
    return Send(
        alert_id=row[0],
        state=row[1],
        recipient=row[2],
        channel=row[3],
        address=row[4],
        payload=json.loads(row[5]),
        status=row[6],
        attempts=row[7],
        next_attempt_at=_time(row[8]),
        last_error=row[9],
        created_at=_time(row[10]),
        sent_at=_time(row[11]) if row[11] else None,
    )
