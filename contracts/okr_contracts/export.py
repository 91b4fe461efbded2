"""The history export: a portfolio's records, one canonical JSON object per line, hash-chained.

A record is what checkins stores for each event of ``okr.kr-events.v1``: its
``position`` in the portfolio's stream (1, 2, …), ``event_id``, ``type``,
``schema_version``, ``occurred_at``, ``recorded_at``, ``producer``, the payload as
``data``, and the chain fields ``prev_hash`` and ``hash``. The export
(``GET /v1/portfolios/{p}/export``) and ``okr audit export`` write exactly these.

Each record's ``hash`` is SHA-256 over the previous record's hash, a newline,
and the record's canonical JSON without its ``hash`` field. Canonical JSON is
UTF-8 with keys sorted, no insignificant whitespace, non-ASCII kept literal and
numbers as Python's shortest round-trip repr (``json.dumps`` with
``sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False``).
The first record of a portfolio chains to 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from okr_contracts.envelope import Envelope
from okr_contracts.kr_events import KR_EVENTS, KrEvent

PAYLOADS: dict[str, TypeAdapter[Any]] = {cls.event_type(): TypeAdapter(cls) for cls in KR_EVENTS}
GENESIS = "0" * 64


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a JSON object, as hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record must carry, given its ``prev_hash`` and its other fields."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(record["prev_hash"].encode() + b"\n" + canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where and how a sequence of records stops being the chain it claims to be."""

    position: int
    reason: str


def verify_chain(records: Iterable[Mapping[str, Any]]) -> list[ChainBreak]:
    """Every break in a portfolio's records, in order (empty when the chain is intact)."""
    breaks: list[ChainBreak] = []
    previous, expected_position = GENESIS, 1
    for index, record in enumerate(records, start=1):
        position = int(record.get("position", -1))
        if position != expected_position:
            breaks.append(ChainBreak(index, f"position {position} where {expected_position} was expected"))
        if record.get("prev_hash") != previous:
            breaks.append(ChainBreak(index, "prev_hash does not match the previous record's hash"))
        if record_hash(record) != record.get("hash"):
            breaks.append(ChainBreak(index, "hash does not match the record's content"))
        previous, expected_position = str(record.get("hash")), position + 1
    return breaks


def payload_of(record: Mapping[str, Any]) -> KrEvent:
    """The contract event inside a record (a pydantic ValidationError, or KeyError for an unknown type, if it is not one)."""
    payload: KrEvent = PAYLOADS[record["type"]].validate_python(record["data"])
    return payload


def envelope_of(record: Mapping[str, Any]) -> Envelope[KrEvent]:
    """The okr.kr-events.v1 envelope of a record, as the checkins outbox publishes it: same event id, type, times and producer."""
    return Envelope.wrap(
        payload_of(record),
        producer=record["producer"],
        occurred_at=datetime.fromisoformat(record["occurred_at"]),
        recorded_at=datetime.fromisoformat(record["recorded_at"]),
        event_id=uuid.UUID(record["event_id"]),
    )
