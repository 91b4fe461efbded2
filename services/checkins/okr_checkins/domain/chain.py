"""The per-portfolio hash chain that makes the history tamper-evident.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
