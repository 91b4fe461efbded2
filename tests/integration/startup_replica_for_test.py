"""One replica of every service starting on PostgreSQL, run in a subprocess by the concurrent start-up test.

It opens what each service opens at start-up (the checkins event store and its
outbox tracking, the rollup's, drift's, the connectors' and the notifier's
stores), each in a thread of its own, all at once when the test writes a line
on stdin (one after another with ``sequential``); it then prints one JSON line:
each service's ``ok`` or the error it raised.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from okr_checkins.bootstrap import open_event_store
from okr_checkins.settings import CheckinsSettings
from okr_connectors.bootstrap import open_store as open_connector_store
from okr_connectors.settings import ConnectorsSettings
from okr_drift.bootstrap import open_store as open_drift_store
from okr_drift.settings import DriftSettings
from okr_notifier.sendlog import PostgresSendLog, SqliteSendLog
from okr_notifier.settings import NotifierSettings
from okr_rollup.bootstrap import open_store as open_score_store
from okr_rollup.settings import RollupSettings
from okr_runtime.sqlstore import open_sql_store

UNUSED = Path("/nonexistent/okrstream.sqlite")


def openers(dsn: str, schema: str) -> dict[str, Callable[[], object]]:
    """What each service opens at start-up, as its bootstrap opens it."""
    on_postgres = {"event_store": "postgres", "postgres_dsn": dsn, "postgres_schema": schema}
    notifier = NotifierSettings.model_validate(on_postgres)
    return {
        "checkins": lambda: open_event_store(CheckinsSettings.model_validate(on_postgres)),
        "rollup": lambda: open_score_store(RollupSettings.model_validate(on_postgres)),
        "drift": lambda: open_drift_store(DriftSettings.model_validate(on_postgres)),
        "connectors": lambda: open_connector_store(ConnectorsSettings.model_validate(on_postgres)),
        "notifier": lambda: open_sql_store(notifier, SqliteSendLog, PostgresSendLog, UNUSED),
    }


def close(opened: object) -> None:
    """Close a store, or the checkins application and its tracking recorder (through the recorder's datastore)."""
    for part in opened if isinstance(opened, tuple) else (opened,):
        closable: Any = getattr(part, "datastore", part)
        closable.close()


def main(dsn: str, schema: str, *, sequential: bool) -> None:
    outcomes: dict[str, str] = {}

    def start(name: str, opener: Callable[[], object]) -> None:
        try:
            close(opener())
            outcomes[name] = "ok"
        except Exception as exc:  # reported to the test, which fails on it
            outcomes[name] = repr(exc)

    threads = [threading.Thread(target=start, args=item) for item in openers(dsn, schema).items()]
    print("ready", flush=True)
    sys.stdin.readline()
    for thread in threads:
        thread.start()
        if sequential:
            thread.join()
    for thread in threads:
        thread.join()
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sequential=sys.argv[3:] == ["sequential"])
