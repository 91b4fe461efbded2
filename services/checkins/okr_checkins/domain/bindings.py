"""The index from a KPI metric key to the key results bound to it, kept as a small aggregate per metric.

It is saved in the same transaction as the key result's definition, so a KPI
sample never finds a binding that its portfolio does not have, or misses one
it has.
"""

from __future__ import annotations

import uuid

from eventsourcing.domain import Aggregate

from okr_checkins.domain.portfolio import NAMESPACE


def binding_uuid(metric: str) -> uuid.UUID:
    """The aggregate id of a metric's binding index."""
    return uuid.uuid5(NAMESPACE, f"metric:{metric}")


class MetricBinding(Aggregate):
    """Which key results, in which portfolios, take their values from one metric."""

    class Opened(Aggregate.Created):
        metric: str

    class Bound(Aggregate.Event):
        portfolio_id: str
        kr_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, MetricBinding)
            aggregate.key_results.append((self.portfolio_id, self.kr_id))

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.key_results: list[tuple[str, str]] = []

    @classmethod
    def open(cls, metric: str) -> MetricBinding:
        """A new, empty index for `metric`."""
        return cls._create(cls.Opened, id=binding_uuid(metric), metric=metric)

    def bind(self, portfolio_id: str, kr_id: str) -> None:
        """Note that a key result takes its values from this metric."""
        self.trigger_event(self.Bound, portfolio_id=portfolio_id, kr_id=kr_id)
