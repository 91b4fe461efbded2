"""Why a configuration cannot be scored: the projection refuses the event that would cause it."""

from __future__ import annotations


class ScoringRefused(ValueError):
    """An event would leave a node that cannot be scored under the portfolio's rules."""

    code = "scoring-refused"


class UnitMismatch(ScoringRefused):
    """A KPI rollup was asked to add values in a unit other than the parent's."""

    code = "unit-mismatch"


class MixedMethodsRefused(ScoringRefused):
    """A node overrides the portfolio's rollup method and the portfolio does not allow mixing."""

    code = "mixed-methods-refused"
