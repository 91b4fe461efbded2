"""A key result's chart and markers, made from its history records (the shape checkins stores and exports)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from okr_contracts.export import GENESIS, payload_of, record_hash, verify_chain
from okr_contracts.kr_events import (
    CheckInRecorded,
    KeyResultDefined,
    KeyResultEscalated,
    KeyResultKind,
    KrEvent,
    RecoveryOption,
    RecoveryPlanFiled,
    TargetChanged,
    ValueObserved,
)
from okr_web.key_result import build_chart, marker_labels, moment_of, table_rows
from okr_web.session import Viewer

START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
ANA = "ana@example.com"
VIEWER = Viewer(ANA, "t-ana", ZoneInfo("Europe/Berlin"), by_cookie=True)
KR = {"kr_id": "activated", "title": "Activated accounts", "unit": "%", "baseline": 20.0, "target": 36.0}


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def common(version: int) -> dict[str, Any]:
    return {"portfolio_id": "acme", "aggregate_id": "activated", "aggregate_version": version, "actor": ANA, "kr_id": "activated"}


def records(*told: tuple[datetime, KrEvent]) -> list[dict[str, Any]]:
    """History records of the events, chained as checkins chains them."""
    chained: list[dict[str, Any]] = []
    previous = GENESIS
    for position, (at, event) in enumerate(told, start=1):
        record = {
            "position": position,
            "event_id": str(uuid.uuid4()),
            "type": event.event_type(),
            "schema_version": event.schema_version,
            "occurred_at": at.isoformat(),
            "recorded_at": at.isoformat(),
            "producer": "checkins",
            "data": event.model_dump(mode="json"),
            "prev_hash": previous,
        }
        record["hash"] = previous = record_hash(record)
        chained.append(record)
    return chained


def defined(version: int = 1) -> KeyResultDefined:
    spec = {"objective_id": "activation", "cycle_id": "q4", "tier": 2, "title": "Activated accounts", "kind": KeyResultKind.METRIC}
    return KeyResultDefined(**common(version), **spec, baseline=20, target=40, unit="%", owner=ANA)


def check_in(version: int, confidence: float, value: float | None = None) -> CheckInRecorded:
    return CheckInRecorded(**common(version), confidence=confidence, value=value, what_changed="weekly")


def target(version: int, old: float, new: float) -> TargetChanged:
    return TargetChanged(**common(version), old_target=old, new_target=new, reason="agreed at the sync")


def plan(version: int) -> RecoveryPlanFiled:
    option = RecoveryOption.CHANGE_RESOURCES
    return RecoveryPlanFiled(**common(version), option=option, description="An analyst.", owner=ANA, decision_needed="Move one.")


def escalated(version: int) -> KeyResultEscalated:
    return KeyResultEscalated(**common(version), escalated_to="cpo@example.com", reason="No analyst.")


QUARTER = records(
    (day(0), defined()),
    (day(7), check_in(2, 0.7, 23)),
    (day(7), ValueObserved(**common(3), value=23, observed_at=day(7), source="check-in")),
    (day(10), ValueObserved(**common(4), value=24, observed_at=day(9), source="warehouse")),  # recorded a day after it was true
    (day(15), target(5, 40, 38)),
    (day(16), plan(6)),
    (day(17), escalated(7)),
    (day(18), target(8, 38, 36)),
    (day(21), check_in(9, 0.6)),
)
"""Three weeks of a key result: check-ins, a late value, two target changes, a plan and an escalation."""


def test_the_records_are_shaped_as_checkins_stores_them() -> None:
    assert verify_chain(QUARTER) == []
    assert [type(payload_of(r)).__name__ for r in QUARTER][:3] == ["KeyResultDefined", "CheckInRecorded", "ValueObserved"]


def test_target_changes_plans_and_escalations_are_numbered_in_order_and_nothing_else_is_labelled() -> None:
    labels = marker_labels(QUARTER)
    assert labels == {
        QUARTER[4]["event_id"]: "T1",
        QUARTER[5]["event_id"]: "R1",
        QUARTER[6]["event_id"]: "E1",
        QUARTER[7]["event_id"]: "T2",
    }


def test_a_value_happened_when_it_was_observed_and_anything_else_when_it_occurred() -> None:
    assert moment_of(QUARTER[3]) == day(9)
    assert moment_of(QUARTER[1]) == day(7)
    assert moment_of(QUARTER[4]) == day(15)


def test_the_chart_plots_values_targets_and_confidence_from_the_history() -> None:
    chart = build_chart(KR, QUARTER, [], VIEWER, now=day(30))
    assert chart.values == [(day(7), 23.0), (day(9), 24.0)]
    assert chart.targets == [(day(0), 40.0), (day(15), 38.0), (day(18), 36.0)]
    assert chart.confidence == [(day(7), 0.7), (day(21), 0.6)]
    assert (chart.baseline, chart.unit, chart.zone) == (20.0, "%", ZoneInfo("Europe/Berlin"))


def test_the_chart_marks_each_labelled_event_by_its_kind() -> None:
    chart = build_chart(KR, QUARTER, [], VIEWER, now=day(30))
    assert [(m.label, m.kind, m.at) for m in chart.markers] == [
        ("T1", "target", day(15)),
        ("R1", "plan", day(16)),
        ("E1", "escalation", day(17)),
        ("T2", "target", day(18)),
    ]


def test_progress_is_placed_at_the_event_it_scored_or_else_at_its_as_of() -> None:
    scores = [
        {"as_of": day(7).isoformat(), "progress": 0.15, "source_event_id": QUARTER[3]["event_id"]},  # the late value: drawn when observed
        {"as_of": day(25).isoformat(), "progress": 0.5, "source_event_id": "an-event-of-another-node"},
    ]
    chart = build_chart(KR, QUARTER, scores, VIEWER, now=day(30))
    assert chart.progress == [(day(9), 0.15), (day(25), 0.5)]


def test_the_chart_spans_the_first_record_to_now() -> None:
    chart = build_chart(KR, QUARTER, [], VIEWER, now=day(30))
    assert (chart.start, chart.end) == (day(0), day(30))
    behind = build_chart(KR, QUARTER, [], VIEWER, now=day(20))  # a clock behind the records still shows them all
    assert behind.end == day(21)


def test_a_key_result_without_records_or_unit_charts_an_empty_span_at_now() -> None:
    chart = build_chart({"kr_id": "new", "unit": None, "baseline": None}, [], [], VIEWER, now=day(3))
    assert (chart.start, chart.end, chart.unit, chart.baseline) == (day(3), day(3), "", None)
    assert (chart.values, chart.targets, chart.progress, chart.confidence, chart.markers) == ([], [], [], [], [])


def test_the_charts_table_lists_every_point_oldest_first() -> None:
    rows = table_rows(build_chart(KR, QUARTER, [], VIEWER, now=day(30)))
    assert [(r["at"], r["series"]) for r in rows] == sorted((r["at"], r["series"]) for r in rows)
    assert [r["series"] for r in rows if r["at"] == day(7)] == ["confidence", "value"]
    assert len(rows) == 2 + 3 + 2
