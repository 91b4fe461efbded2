"""Writing a key-result history the way checkins publishes it, for consumers' tests and benchmarks.

Every event of ``okr.kr-events.v1`` carries its aggregate's version (1 for the first event,
then +1); :class:`HistoryWriter` keeps those counters so a test can build a portfolio's
history event by event without counting by hand.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from okr_contracts.envelope import Envelope
from okr_contracts.kr_events import KrEvent


class HistoryWriter:
    """One portfolio's history events, versioned per aggregate, by one actor, wrapped as the checkins producer does."""

    def __init__(self, portfolio_id: str, *, actor: str = "cpo", producer: str = "checkins") -> None:
        self.portfolio_id = portfolio_id
        self.actor = actor
        self.producer = producer
        self.versions: dict[str, int] = defaultdict(int)

    def event(self, cls: type[KrEvent], aggregate_id: str, *, at: datetime, **fields: Any) -> Envelope[Any]:
        """The aggregate's next event, occurred and recorded at `at`."""
        self.versions[aggregate_id] += 1
        payload = cls(
            portfolio_id=self.portfolio_id,
            aggregate_id=aggregate_id,
            aggregate_version=self.versions[aggregate_id],
            actor=fields.pop("actor", self.actor),
            **fields,
        )
        return Envelope.wrap(payload, producer=self.producer, occurred_at=at, recorded_at=at)
