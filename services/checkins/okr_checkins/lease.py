"""Which replica's outbox relay publishes: the holder of a PostgreSQL advisory lock.

The lock lives as long as the session that took it, so a replica that dies
(or loses its connection) frees it and another replica takes over from the
recorded position.
"""

from __future__ import annotations

import logging
import zlib

import psycopg

log = logging.getLogger(__name__)


def lock_key(schema: str | None) -> int:
    """The advisory-lock key of the outbox of the event store in `schema` (deployments may share a database)."""
    return zlib.crc32(f"okrstream.checkins.outbox:{schema or 'default'}".encode())


class PostgresLease:
    """Holds `pg_try_advisory_lock` on a dedicated connection while this replica relays."""

    def __init__(self, dsn: str, *, key: int) -> None:
        self.dsn = dsn
        self.key = key
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._held = False

    async def held(self) -> bool:
        """Take the lock if free; True while held (a lost connection loses it)."""
        try:
            if self._conn is None or self._conn.closed:
                self._held = False
                self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=10)
            if not self._held:
                cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                row = await cursor.fetchone()
                self._held = bool(row and row[0])
                if self._held:
                    log.info("this replica now relays the outbox")
            else:
                await self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            log.warning("outbox lease lost: %r", exc)
            await self.release()
        return self._held

    async def release(self) -> None:
        """Close the session, which frees the lock."""
        self._held = False
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
