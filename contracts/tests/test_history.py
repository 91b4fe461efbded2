"""The history writer numbers each aggregate's events from 1, as checkins does."""

from __future__ import annotations

from datetime import UTC, datetime

from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import CheckInRecorded, ProductDefined

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_each_aggregate_has_its_own_versions_and_the_envelope_carries_the_moment() -> None:
    writer = HistoryWriter("acme")
    product = writer.event(ProductDefined, "alpha", at=AT, product_id="alpha", name="Alpha", lead="ana")
    first = writer.event(CheckInRecorded, "k1", at=AT, kr_id="k1", confidence=0.5, what_changed="weekly")
    second = writer.event(CheckInRecorded, "k1", at=AT, kr_id="k1", confidence=0.6, what_changed="weekly", actor="pm-bo")
    assert [e.data.aggregate_version for e in (product, first, second)] == [1, 1, 2]
    assert (second.data.actor, first.data.actor) == ("pm-bo", "cpo")
    assert (second.occurred_at, second.recorded_at, second.producer) == (AT, AT, "checkins")
