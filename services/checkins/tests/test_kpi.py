"""KPI samples become values of the key results bound to their metric, once each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from okr_checkins.kpi import KpiRecorder
from okr_contracts.metrics import KpiSampled
from okr_runtime.consumer import Rejected


def sample(metric: str, value: float, unit: str = "MEUR") -> KpiSampled:
    return KpiSampled(metric=metric, value=value, unit=unit, observed_at=datetime(2026, 8, 12, tzinfo=UTC), source="sql:warehouse")


def test_a_sample_becomes_the_bound_key_results_value(seeded: Any) -> None:
    appended = KpiRecorder(seeded.checkins).record(str(uuid.uuid4()), sample("arr-acme", 1.12))
    assert appended == 1
    kr = seeded.ok(seeded.get("/acme/key-results/revenue", "pm.ana"))
    assert kr["value"] == 1.12
    history = seeded.ok(seeded.get("/acme/key-results/revenue/history", "pm.ana"))["items"]
    assert history[-1]["data"]["source"] == "sql:warehouse"
    assert history[-1]["data"]["actor"] == "connector:kpi"


def test_a_redelivered_sample_appends_nothing(seeded: Any) -> None:
    recorder, sample_id = KpiRecorder(seeded.checkins), str(uuid.uuid4())
    assert recorder.record(sample_id, sample("arr-acme", 1.12)) == 1
    before = seeded.stored()
    assert recorder.record(sample_id, sample("arr-acme", 1.12)) == 0
    assert seeded.stored() == before


def test_a_sample_of_an_unbound_metric_is_rejected_with_the_reason(seeded: Any) -> None:
    with pytest.raises(Rejected, match="no key result is bound to metric 'nps'"):
        KpiRecorder(seeded.checkins).record(str(uuid.uuid4()), sample("nps", 41))


def test_a_sample_in_another_unit_is_rejected(seeded: Any) -> None:
    before = seeded.stored()
    with pytest.raises(Rejected, match="sampled in 'USD'"):
        KpiRecorder(seeded.checkins).record(str(uuid.uuid4()), sample("arr-acme", 1.3, unit="USD"))
    assert seeded.stored() == before


def test_a_retired_key_result_ignores_samples(seeded: Any) -> None:
    seeded.ok(seeded.post("/acme/key-results/revenue/retire", {"reason": "moved to finance OKRs"}, "pm.ana"))
    before = seeded.stored()
    assert KpiRecorder(seeded.checkins).record(str(uuid.uuid4()), sample("arr-acme", 1.3)) == 0
    assert seeded.stored() == before


def test_a_batch_of_samples_is_recorded_as_one_at_a_time_records_it_with_each_refusal_alone(seeded: Any) -> None:
    recorder = KpiRecorder(seeded.checkins)
    first, again, unbound, other_unit, last = (str(uuid.uuid4()) for _ in range(5))
    batch: list[tuple[str, KpiSampled] | Rejected] = [
        (first, sample("arr-acme", 1.1)),
        (again, sample("arr-acme", 1.2)),
        (unbound, sample("nps", 41)),
        (other_unit, sample("arr-acme", 9.9, unit="USD")),
        Rejected("AlertRaised is not a KPI sample"),
        (last, sample("arr-acme", 1.3)),
    ]
    verdicts = recorder.record_many(batch)
    assert [str(v) if v else None for v in verdicts] == [
        None,
        None,
        "no key result is bound to metric 'nps'",
        "metric arr-acme is sampled in 'USD' but key result revenue is in 'MEUR'",
        "AlertRaised is not a KPI sample",
        None,
    ]
    history = seeded.ok(seeded.get("/acme/key-results/revenue/history", "pm.ana"))["items"]
    assert [item["data"]["value"] for item in history if item["type"] == "ValueObserved"][-3:] == [1.1, 1.2, 1.3]
    assert {item["data"]["actor"] for item in history[-3:]} == {"connector:kpi"}
    before = seeded.stored()
    assert recorder.record_many(batch)[:2] == [None, None]  # the whole batch redelivered: nothing new
    assert seeded.stored() == before
