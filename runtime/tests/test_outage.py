"""Which failures are outages (wait them out) and which are faults (retry a few times, then dead-letter)."""

from __future__ import annotations

import sqlite3

import eventsourcing.persistence as eventsourcing_errors
import psycopg
import psycopg_pool
import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError

from okr_runtime.consumer import is_outage


def caused_by(cause: BaseException) -> RuntimeError:
    try:
        raise cause
    except BaseException as inner:
        try:
            raise RuntimeError("storing the batch failed") from inner
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
        eventsourcing_errors.OperationalError("server closed the connection unexpectedly"),
        eventsourcing_errors.InterfaceError("connection already closed"),
        sqlite3.OperationalError("database is locked"),
        KafkaConnectionError("connection refused"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        caused_by(psycopg.OperationalError("the database system is starting up")),
    ],
    ids=repr,
)
def test_an_unreachable_or_busy_dependency_is_an_outage(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("projection bug"),
        sqlite3.OperationalError("no such table: rollup_inputs"),
        psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
        RecordTooLargeError(),
        KeyError("kr-1"),
        caused_by(ValueError("a bug under a wrapper")),
    ],
    ids=repr,
)
def test_a_fault_of_the_message_or_the_code_is_not(exc: BaseException) -> None:
    assert not is_outage(exc)
