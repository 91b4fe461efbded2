"""Which version of the scoring rules scores which part of a history.

A :class:`RuleSet` names a version and the pure functions that score under it.
Every version ever published stays here, so a replay of an older period scores it
with the rules that were in force then. The :class:`Schedule` says which version
is in force for a history event, by the event's ``recorded_at``: a new version is
added with the moment it takes effect (normally the start of the next cycle) and
deployed before that moment. The first event of a portfolio recorded under a new
version rescores every node, so each node's next record names the new version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from okr_rollup.domain import scoring
from okr_rollup.domain.scoring import Score

ScoreFunction = Callable[..., Score]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RuleSet:
    """One version of the scoring rules: a function per rule (same signatures as in ``scoring``)."""

    version: str
    metric: ScoreFunction = field(default=scoring.score_metric, repr=False)
    threshold: ScoreFunction = field(default=scoring.score_threshold, repr=False)
    weighted: ScoreFunction = field(default=scoring.score_weighted, repr=False)
    say_do: ScoreFunction = field(default=scoring.score_say_do, repr=False)
    kpi: ScoreFunction = field(default=scoring.score_kpi, repr=False)
    objective: ScoreFunction = field(default=scoring.score_objective, repr=False)
    retired: Callable[[], Score] = field(default=scoring.retired, repr=False)


V1 = RuleSet(scoring.RULES_VERSION)
"""The rules of docs/scoring.md."""


@dataclass(frozen=True)
class InForce:
    """A version of the rules, in force for history events recorded at or after `since` (until the next entry)."""

    since: datetime
    rules: RuleSet


class UnknownRules(ValueError):
    """A rules version that this code does not have."""


class Schedule:
    """The versions of the rules in the order they took effect."""

    def __init__(self, entries: Iterable[InForce]) -> None:
        self.entries = tuple(sorted(entries, key=lambda e: e.since))
        if not self.entries or self.entries[0].since != EPOCH:
            raise ValueError("a schedule starts with the rules in force since the epoch")
        if len({e.since for e in self.entries}) != len(self.entries):
            raise ValueError("two versions of the rules cannot take effect at the same moment")

    @classmethod
    def only(cls, rules: RuleSet) -> Schedule:
        """One version for every event (what an auditor asks for with ``--rules``)."""
        return cls([InForce(EPOCH, rules)])

    def at(self, recorded_at: datetime) -> RuleSet:
        """The rules in force for a history event recorded at that moment."""
        found = self.entries[0].rules
        for entry in self.entries[1:]:
            if entry.since > recorded_at:
                break
            found = entry.rules
        return found

    def describe(self) -> list[dict[str, Any]]:
        """The schedule as data: each version and when it took effect."""
        return [{"version": e.rules.version, "since": e.since.isoformat()} for e in self.entries]


SCHEDULE = Schedule([InForce(EPOCH, V1)])
"""The rules in force over time; add an entry, never change or remove one (docs/scoring.md, section 16)."""

VERSIONS: Mapping[str, RuleSet] = {entry.rules.version: entry.rules for entry in SCHEDULE.entries}


def rules_version(version: str) -> RuleSet:
    """The rules of that version, or :class:`UnknownRules`."""
    try:
        return VERSIONS[version]
    except KeyError:
        known = ", ".join(sorted(VERSIONS))
        raise UnknownRules(f"scoring rules version {version!r} is not known to this code (known: {known})") from None
