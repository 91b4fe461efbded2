"""Checking published scores against a replay: every published record must be one the history produces, byte for byte.

Records are matched by event id: a score record's id is derived from its portfolio,
node and source event, so the replay names every record exactly as the rollup did.
``okr.scores.v1`` is compacted, so older records of a node may be gone from the
topic: those are counted as superseded, not as differences. What must hold:

- every published record of the portfolio is produced by the replay, with the same bytes;
- each node's latest record in the replay is on the topic (the scorecard shows it);
- records caused by events after the end of the history (or after ``as_of``) are
  left out of the comparison and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from okr_audit.replay import Replayed


class Discrepancy(StrEnum):
    """How a published record and the replay disagree."""

    DIFFERS = "differs"
    NOT_DERIVABLE = "not-derivable"
    MISSING = "missing"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Difference:
    """One disagreement between the topic and the replay."""

    kind: Discrepancy
    node_id: str | None
    event_id: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.node_id or '?'} (record {self.event_id or '?'}): {self.detail}"


@dataclass
class CheckReport:
    """The outcome of a check: how many published records matched, and every difference."""

    portfolio_id: str
    compared: int = 0
    matched: int = 0
    repeated: int = 0
    superseded: int = 0
    later: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every published record matched and every node's latest score is published."""
        return not self.differences


def check(replayed: Replayed, published: Iterable[bytes]) -> CheckReport:
    """Compare the portfolio's published records (message values, any order, other portfolios ignored) with a replay.

    Published records caused after the replay's ``as_of`` (or, without one, after the
    history's last event) are counted in ``later`` and not compared.
    """
    end = replayed.as_of or replayed.last_recorded_at
    report = CheckReport(replayed.portfolio_id)
    by_id = {r.event_id: r for r in replayed.records}
    by_value = {r.value: r for r in by_id.values()}
    seen: dict[str, bytes] = {}
    for value in published:
        mine = by_value.get(value)
        if mine is not None and not (end is not None and mine.as_of > end):
            # The bytes of the record its id names, as of a time within the replay: what parsing it would conclude.
            if seen.get(mine.event_id) == value:
                report.repeated += 1
                continue
            seen[mine.event_id] = value
            report.compared += 1
            report.matched += 1
            continue
        parsed = _parse(value)
        if parsed is None:
            report.differences.append(
                Difference(Discrepancy.UNREADABLE, None, None, f"a message value that is not a score record: {value[:80]!r}")
            )
            continue
        data = parsed.get("data", {})
        if data.get("portfolio_id") != replayed.portfolio_id:
            continue
        event_id, node_id = str(parsed.get("event_id")), str(data.get("node_id"))
        if end is not None and datetime.fromisoformat(str(data.get("as_of"))) > end:
            report.later += 1
            continue
        if seen.get(event_id) == value:
            report.repeated += 1  # at-least-once delivery: the same record sent twice
            continue
        seen[event_id] = value
        report.compared += 1
        mine = by_id.get(event_id)
        if mine is None:
            detail = f"no event of the history produces it (source event {data.get('source_event_id')}, as of {data.get('as_of')})"
            report.differences.append(Difference(Discrepancy.NOT_DERIVABLE, node_id, event_id, detail))
        elif mine.value == value:
            report.matched += 1
        else:
            report.differences.append(Difference(Discrepancy.DIFFERS, node_id, event_id, _what_differs(parsed, json.loads(mine.value))))
    _missing(replayed, seen, report)
    return report


def _missing(replayed: Replayed, seen: dict[str, bytes], report: CheckReport) -> None:
    """Each node's latest replayed record must be published; older unpublished ones were compacted away."""
    for node_id, latest in sorted(replayed.latest.items()):
        event_id = latest.event_id
        if event_id not in seen:
            data = latest.envelope.data
            detail = f"the history's latest score of this node (as of {data.as_of.isoformat()}, progress {data.progress}) is not published"
            report.differences.append(Difference(Discrepancy.MISSING, node_id, event_id, detail))
    latest_ids = {r.event_id for r in replayed.latest.values()}
    report.superseded = sum(1 for r in replayed.records if r.event_id not in seen and r.event_id not in latest_ids)


def _parse(value: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("data"), dict) else None


def _what_differs(published: dict[str, Any], replayed: dict[str, Any], limit: int = 6) -> str:
    """The fields that differ, published value first; the bytes if only their form differs."""
    diffs: list[str] = []
    for key in sorted(set(published) | set(replayed)):
        if key == "data":
            continue
        if published.get(key) != replayed.get(key):
            diffs.append(f"{key}: published {published.get(key)!r}, replayed {replayed.get(key)!r}")
    mine, theirs = replayed.get("data", {}), published.get("data", {})
    for key in sorted(set(mine) | set(theirs)):
        if theirs.get(key) != mine.get(key):
            diffs.append(f"{key}: published {_short(theirs.get(key))}, replayed {_short(mine.get(key))}")
    if not diffs:
        return "same content, different bytes (not canonical JSON)"
    return "; ".join(diffs[:limit]) + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False) if isinstance(value, dict | list) else repr(value)
    return text if len(text) <= 120 else text[:117] + "…"
