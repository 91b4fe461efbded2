"""Portfolios' own connector mappings, kept in the connectors' store and merged after the operators' file.

A portfolio lead replaces their portfolio's mapping as a whole (``PUT
/v1/connectors/mappings/{portfolio_id}``). ``connector_mappings`` holds each
portfolio's mapping as canonical JSON with a version that grows by one with every
change; storing the same content again changes nothing. ``connector_mapping_channels``
gives every Slack channel one owner: its primary key refuses a channel another
portfolio's stored mapping claims, in the same transaction, on both backends.

:class:`LiveMapping` is the mapping in force: the file's rules first (operators keep
precedence), then the stored mappings in portfolio id order; a channel the file claims
is the file's. It re-reads the stored mappings when their versions' total moved, so a
change applies to the next item without a restart, in every process sharing the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from okr_connectors.mapping import Mapping
from okr_runtime.sqlstore import SqlStore

MAPPINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS connector_mappings (
    portfolio_id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connector_mapping_channels (
    channel TEXT PRIMARY KEY,
    portfolio_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class StoredMapping:
    """A portfolio's stored mapping; version 0 (and an empty mapping) until one is stored."""

    portfolio_id: str
    mapping: Mapping
    version: int = 0
    updated_at: str | None = None
    updated_by: str | None = None


class ChannelClaimed(Exception):
    """A Slack channel another portfolio's stored mapping already claims; nothing was stored."""

    def __init__(self, channel: str, owner: str) -> None:
        super().__init__(f"Slack channel {channel} is already mapped to portfolio {owner}; its mapping must release it first")
        self.channel, self.owner = channel, owner


def canonical(mapping: Mapping) -> str:
    """The mapping as the store keeps it: the same content always gives the same text."""
    return json.dumps(mapping.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))


class MappingTables(SqlStore):
    """The stored portfolio mappings; part of the connectors' store."""

    def portfolio_mapping(self, portfolio_id: str) -> StoredMapping:
        """A portfolio's stored mapping, or the empty one at version 0."""
        with self.transaction() as cur:
            cur.execute(self._q(f"{_SELECT} WHERE portfolio_id = ?"), (portfolio_id,))
            row = cur.fetchone()
        return _stored(row) if row else StoredMapping(portfolio_id, Mapping())

    def portfolio_mappings(self) -> list[StoredMapping]:
        """Every stored portfolio mapping, in portfolio id order."""
        with self.transaction() as cur:
            cur.execute(f"{_SELECT} ORDER BY portfolio_id")
            rows = cur.fetchall()
        return [_stored(row) for row in rows]

    def mappings_version(self) -> int:
        """The total of the stored mappings' versions: it grows with every change (rows are replaced, never removed)."""
        with self.transaction() as cur:
            cur.execute("SELECT COALESCE(SUM(version), 0) FROM connector_mappings")
            (total,) = cur.fetchone()
        return int(total)

    def put_portfolio_mapping(self, portfolio_id: str, mapping: Mapping, by: str) -> tuple[StoredMapping, bool]:
        """Replace a portfolio's mapping; whether it changed. :class:`ChannelClaimed` when another portfolio has a channel.

        Nothing stored is the empty mapping, so storing an empty one for a portfolio without one changes nothing.
        """
        with self.transaction() as cur:
            if mapping == Mapping():
                cur.execute(self._q(f"{_SELECT} WHERE portfolio_id = ?"), (portfolio_id,))
                if cur.fetchone() is None:
                    return StoredMapping(portfolio_id, mapping), False
            cur.execute(
                self._q(
                    "INSERT INTO connector_mappings (portfolio_id, document, version, updated_at, updated_by) VALUES (?, ?, 1, ?, ?) "
                    "ON CONFLICT (portfolio_id) DO UPDATE SET document = excluded.document, version = connector_mappings.version + 1, "
                    "updated_at = excluded.updated_at, updated_by = excluded.updated_by "
                    "WHERE connector_mappings.document <> excluded.document"
                ),
                (portfolio_id, canonical(mapping), datetime.now(UTC).isoformat(), by),
            )
            changed = cur.rowcount == 1
            if changed:
                self._claim_channels(cur, portfolio_id, mapping)
            cur.execute(self._q(f"{_SELECT} WHERE portfolio_id = ?"), (portfolio_id,))
            return _stored(cur.fetchone()), changed

    def _claim_channels(self, cur: Any, portfolio_id: str, mapping: Mapping) -> None:
        cur.execute(self._q("DELETE FROM connector_mapping_channels WHERE portfolio_id = ?"), (portfolio_id,))
        for channel in sorted(mapping.slack_channels):
            cur.execute(
                self._q("INSERT INTO connector_mapping_channels (channel, portfolio_id) VALUES (?, ?) ON CONFLICT (channel) DO NOTHING"),
                (channel, portfolio_id),
            )
            if cur.rowcount == 0:
                cur.execute(self._q("SELECT portfolio_id FROM connector_mapping_channels WHERE channel = ?"), (channel,))
                raise ChannelClaimed(channel, cur.fetchone()[0])  # the transaction is rolled back: nothing of this call stays


_SELECT = "SELECT portfolio_id, document, version, updated_at, updated_by FROM connector_mappings"


def _stored(row: Any) -> StoredMapping:
    return StoredMapping(row[0], Mapping.model_validate_json(row[1]), int(row[2]), row[3], row[4])


class LiveMapping:
    """The mapping in force: the operators' file, then the portfolios' stored mappings (see the module's docstring)."""

    def __init__(self, file: Mapping, store: MappingTables) -> None:
        self.file = file
        self.store = store
        self._merged: tuple[int, Mapping] | None = None  # replaced whole, so threads never see half of it

    def current(self) -> Mapping:
        """The merged mapping; one small query when nothing changed since the last call."""
        total = self.store.mappings_version()
        if self._merged is not None and self._merged[0] == total:
            return self._merged[1]
        stored = self.store.portfolio_mappings()
        merged = self.file.merged(s.mapping for s in stored)
        self._merged = (sum(s.version for s in stored), merged)
        return merged
