"""How much of the history the outbox relay has not published yet: one COUNT over the event store's notification index.

The relay publishes the notifications of the history topics after its recorded
position; the count is of those, on whichever backend the event store uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier


def unpublished_count(recorder: ApplicationRecorder, after: int, topics: Sequence[str]) -> int:
    """How many notifications of `topics` the log holds after notification id `after`."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        marks = ",".join("?" for _ in topics)
        statement = f"SELECT COUNT(*) AS n FROM {recorder.events_table_name} WHERE rowid > ? AND topic IN ({marks})"  # noqa: S608 (the library's own table name)
        with recorder.datastore.transaction(commit=False) as cur:
            cur.execute(statement, [after, *topics])
            return int(cur.fetchone()["n"])
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL("SELECT COUNT(*) AS n FROM {}.{} WHERE notification_id > %s AND topic = ANY(%s)").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )
        with recorder.datastore.transaction(commit=False) as pg:
            pg.execute(query, (after, list(topics)))
            row = pg.fetchone()
            return int(row["n"]) if row else 0
    raise TypeError(f"no backlog count for a {type(recorder).__name__}")
