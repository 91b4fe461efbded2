"""Checking the rollup's capacity answer against a replay: every number and flag of every cycle, field by field.

The rollup answers ``GET /v1/portfolios/{p}/capacity?as_of=T`` with each cycle's latest
view at ``T``; the replay folds the same views from the history with the rollup's own
pure code (:func:`okr_audit.replay.capacity_cycles`). Cycles are matched by id; inside
a cycle, squads, allocations, priorities and tag values are matched by their ids, so
each difference is named by its path (``squads[core].allocated``), served value first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

IDS = ("team_id", "objective_id", "priority", "value")
"""What names an item of a view's lists: a squad, an allocation, a priority, a tag value."""


class Absent:
    """A field one side has and the other does not."""

    def __repr__(self) -> str:
        return "absent"


ABSENT = Absent()


class CapacityDiscrepancy(StrEnum):
    """How the rollup's answer and the replay disagree about a cycle."""

    DIFFERS = "differs"
    MISSING = "missing"
    NOT_DERIVABLE = "not-derivable"


@dataclass(frozen=True)
class CapacityDifference:
    """One disagreement: a field of a cycle (or the whole cycle), what the rollup serves and what the replay computes."""

    kind: CapacityDiscrepancy
    cycle_id: str
    path: str
    served: Any
    replayed: Any

    def __str__(self) -> str:
        if self.kind is CapacityDiscrepancy.MISSING:
            return f"missing: {self.cycle_id}: the replay's view of this cycle (as of {self.replayed}) is not served"
        if self.kind is CapacityDiscrepancy.NOT_DERIVABLE:
            return f"not-derivable: {self.cycle_id}: served (as of {self.served}), but no event of the history gives this cycle a view"
        return f"differs: {self.cycle_id} {self.path}: served {shown(self.served)}, replayed {shown(self.replayed)}"


@dataclass
class CapacityReport:
    """The outcome of a capacity check: how many cycles were compared and matched, and every difference."""

    portfolio_id: str
    as_of: str | None
    compared: int = 0
    matched: int = 0
    differences: list[CapacityDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every cycle the rollup serves is the replay's, and the replay's cycles are all served."""
        return not self.differences


def compare_capacity(
    portfolio_id: str, served: Sequence[dict[str, Any]], replayed: Sequence[dict[str, Any]], as_of: datetime | None
) -> CapacityReport:
    """Compare the rollup's cycles (its answer's ``cycles``) with the replay's, as of the same moment."""
    report = CapacityReport(portfolio_id, as_of.isoformat() if as_of else None)
    theirs, mine = _by_cycle(served), _by_cycle(replayed)
    for cycle_id in sorted(theirs.keys() | mine.keys()):
        report.compared += 1
        if cycle_id not in theirs:
            report.differences.append(CapacityDifference(CapacityDiscrepancy.MISSING, cycle_id, "", None, mine[cycle_id].get("as_of")))
        elif cycle_id not in mine:
            found = CapacityDifference(CapacityDiscrepancy.NOT_DERIVABLE, cycle_id, "", theirs[cycle_id].get("as_of"), None)
            report.differences.append(found)
        else:
            found_in_cycle: list[tuple[str, Any, Any]] = []
            _diff("", theirs[cycle_id], mine[cycle_id], found_in_cycle)
            report.differences += [CapacityDifference(CapacityDiscrepancy.DIFFERS, cycle_id, *d) for d in found_in_cycle]
            if not found_in_cycle:
                report.matched += 1
    return report


def _by_cycle(cycles: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Cycles by id, each `as_of` as a UTC instant (the rollup stores times in UTC; the same moment is the same text)."""
    return {str(c["cycle_id"]): {**c, "as_of": _instant(c.get("as_of"))} for c in cycles}


def _instant(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()
    except ValueError:
        return value


def _diff(path: str, served: Any, replayed: Any, found: list[tuple[str, Any, Any]]) -> None:
    """Append (path, served, replayed) for every leaf that differs; lists of named items are matched by name."""
    if isinstance(served, dict) and isinstance(replayed, dict):
        for key in sorted(served.keys() | replayed.keys()):
            _diff(f"{path}.{key}" if path else key, served.get(key, ABSENT), replayed.get(key, ABSENT), found)
    elif isinstance(served, list) and isinstance(replayed, list):
        _diff_list(path, served, replayed, found)
    elif not _same(served, replayed):
        found.append((path, served, replayed))


def _diff_list(path: str, served: list[Any], replayed: list[Any], found: list[tuple[str, Any, Any]]) -> None:
    key = _identity(served, replayed)
    if key is None:
        for index in range(max(len(served), len(replayed))):
            _diff(f"{path}[{index}]", _at(served, index), _at(replayed, index), found)
        return
    theirs, mine = {str(item[key]): item for item in served}, {str(item[key]): item for item in replayed}
    for name in [*mine, *(n for n in theirs if n not in mine)]:
        _diff(f"{path}[{name}]", theirs.get(name, ABSENT), mine.get(name, ABSENT), found)
    if theirs.keys() == mine.keys() and list(theirs) != list(mine):
        found.append((f"{path} order", list(theirs), list(mine)))


def _identity(served: list[Any], replayed: list[Any]) -> str | None:
    """The field that names every item of both lists, uniquely on each side; none for lists of anything else."""
    items = [*served, *replayed]
    for key in IDS:
        named = bool(items) and all(isinstance(item, dict) and key in item for item in items)
        if named and all(len({str(item[key]) for item in side}) == len(side) for side in (served, replayed)):
            return key
    return None


def _at(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else ABSENT


def _same(served: Any, replayed: Any) -> bool:
    """Equal as JSON values: 6 and 6.0 are the same number, but true is not 1."""
    if isinstance(served, bool) or isinstance(replayed, bool):
        return type(served) is type(replayed) and served == replayed
    return bool(served == replayed)


def shown(value: Any) -> str:
    """A value as JSON (null, true, 2.5, "text"), shortened; `absent` for a field that is not there."""
    if value is ABSENT:
        return "absent"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "…"
