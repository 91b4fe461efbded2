"""The score records' bytes are pinned: two generated histories against digests taken from the reference implementation.

The histories exercise every rule and every kind of event the projection reads
(placeholders, late values, relinks, reweighing, retirements, a cycle closed,
settings redefined, mixed methods, KPI units, refusals, redeliveries, a new rules
version, non-ASCII and escaped text, awkward floats, offsets and microseconds in
times), plus a bench-shaped tree under random updates. Each event's outcome is
compared with ``golden_scores.txt``: refused (and why), a redelivery, or the
SHA-256 of the records it produced. The digests were written by the projection as
it was before its serialization was rewritten for speed (``--write-golden`` is not
offered on purpose: a change to these bytes is a change to the published contract).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from okr_contracts.envelope import Envelope
from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleScored,
    KeyResultDefined,
    KeyResultRetired,
    KrEvent,
    Link,
    LinkChanged,
    ObjectiveDefined,
    PortfolioDefined,
    RollupMethod,
    TargetChanged,
    ValueObserved,
    WeightChanged,
)
from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.domain import scoring
from okr_rollup.domain.errors import ScoringRefused
from okr_rollup.domain.projection import PortfolioProjection
from okr_rollup.domain.records import SCORE_ID_NAMESPACE, Placement, RecordWriter, ScoreRecord, Source, score_id
from okr_rollup.domain.rules import EPOCH, V1, InForce, RuleSet, Schedule
from okr_rollup.domain.scoring import Score

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).with_name("golden_scores.txt")
EVENT_IDS = uuid.UUID("0d7c3c55-8a43-4b0e-9a8e-6a1f4b2c9e10")
START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
V2 = RuleSet("2-golden")
"""The same functions under a new version: switching to it rescores every node."""


class Writer:
    """A portfolio's history with deterministic event ids and times (versions per aggregate, as checkins keeps them)."""

    def __init__(self, pid: str) -> None:
        self.pid = pid
        self.now = START
        self.versions: dict[str, int] = {}
        self.envelopes: list[Envelope[Any]] = []

    def add(self, cls: type[KrEvent], aggregate_id: str, *, step: timedelta = timedelta(minutes=1), **fields: Any) -> Envelope[Any]:
        self.now += step
        self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        version = self.versions[aggregate_id]
        payload = cls(portfolio_id=self.pid, aggregate_id=aggregate_id, aggregate_version=version, actor="cpo", **fields)
        event_id = uuid.uuid5(EVENT_IDS, f"{self.pid}/{len(self.envelopes)}")
        envelope = Envelope.wrap(payload, producer="checkins", occurred_at=self.now, recorded_at=self.now, event_id=event_id)
        self.envelopes.append(envelope)
        return envelope

    def again(self, index: int) -> None:
        """Redeliver an earlier event (at-least-once delivery)."""
        self.envelopes.append(self.envelopes[index])

    def portfolio(self, method: str, *, allow_mixed: bool = False, hit: float = 1.0) -> None:
        self.add(
            PortfolioDefined,
            self.pid,
            name="Golden",
            owner="cpo",
            rollup_method=RollupMethod(method),
            allow_mixed_methods=allow_mixed,
            say_do_hit_threshold=hit,
        )

    def objective(self, oid: str, tier: int, *, parent: str | None = None, weight: float = 1.0, **extra: Any) -> None:
        fields: dict[str, Any] = {"cycle_id": "q3", "tier": tier, "title": f"Objective {oid}", "owner": "cpo", **extra}
        link = Link(parent_id=parent, weight=weight) if parent else None
        self.add(ObjectiveDefined, oid, objective_id=oid, contributes_to=link, **fields)

    def kr(self, kid: str, objective: str, tier: int, *, parent: str | None = None, link_weight: float = 1.0, **extra: Any) -> None:
        fields: dict[str, Any] = {"kind": "metric", "baseline": 0.0, "target": 100.0, "unit": "%", "title": f"Key result {kid}", **extra}
        link = Link(parent_id=parent, weight=link_weight) if parent else None
        fields.update(cycle_id="q3", tier=tier, owner="pm", contributes_to=link)
        self.add(KeyResultDefined, kid, kr_id=kid, objective_id=objective, **fields)

    def value(self, kid: str, value: float, *, observed: datetime | None = None, step: timedelta = timedelta(minutes=1)) -> None:
        at = observed or self.now + step
        self.add(ValueObserved, kid, step=step, kr_id=kid, value=value, observed_at=at, source="manual")

    def check_in(self, kid: str, confidence: float, **extra: Any) -> None:
        self.add(CheckInRecorded, kid, kr_id=kid, confidence=confidence, what_changed="weekly", **extra)


def every_rule() -> tuple[Writer, Schedule]:
    """A hand-written history touching every rule and event kind, the rules switching to a new version half way."""
    w = Writer("golden-rules")
    w.check_in("c1", 0.4)  # a check-in before its key result exists: kept on a placeholder
    w.kr("c1", "C", 3, parent="b2", title="Réduire le churn — «fidélité» 🚀", baseline=5.0, target=2.0, unit="€")
    w.objective("C", 3, parent="B", product_id="beta", title='Ship "v2" \\ fast\tand\nwell')  # before its parent
    w.portfolio("weighted")
    w.objective("P", 1, title="成长 Grow")
    w.kr("p1", "P", 1, kind="derived", unit="%")
    w.kr("p2", "P", 1, kind="threshold", target=99.9, direction="at_least", unit="µs")
    w.objective("A", 2, parent="p1", product_id="alpha", weight=2.0)
    w.kr("a1", "A", 2, parent="p1", link_weight=0.5)
    w.kr("a2", "A", 2, baseline=10.0, target=0.0, weight=3.0)
    w.kr("a3", "A", 2, baseline=7.0, target=7.0)  # not measurable
    w.kr("a4", "A", 2, baseline=None, target=None)  # not measurable either
    w.kr("a5", "A", 2, kind="threshold", target=300.0, direction="at_most", unit="ms")
    w.kr("a6", "A", 2, kind="threshold", target=None, direction=None)
    w.objective("B", 2, parent="p1", product_id="beta")
    w.kr("b1", "B", 2, weight=0.001)
    w.kr("b2", "B", 2, kind="derived", unit="€")
    for n in range(14):  # more children than a formula writes out
        w.kr(f"d{n:02d}", "D", 2, parent="p1", link_weight=1.0 + n / 7, baseline=n * 0.1, target=1e16 if n % 5 == 0 else 100.0)
    w.objective("D", 2, parent="p1", product_id="delta")
    for kid, value in (("a1", 12.5), ("a2", 7.5), ("a3", 7.0), ("b1", -0.0), ("c1", 3.3333333333333335), ("a5", 250.0), ("p2", 99.95)):
        w.value(kid, value)
    for n in range(14):
        w.value(f"d{n:02d}", [0.1 + 0.2, 1e-9, 123456.789, 5e-324, 2.5e15, -1e-7, 1 / 3][n % 7])
    w.value("a1", 140.0)  # over-achieved: raw ratio kept, progress clamped
    w.value("a1", 1.0, observed=START)  # older than the latest: ignored
    w.check_in("a1", 0.75, value=99.0)
    w.check_in("b2", 0.0)
    w.check_in("p1", 1.0)
    w.check_in("a2", 0.3333333333333333)
    w.again(30)  # a redelivery
    w.add(TargetChanged, "a2", kr_id="a2", old_target=0.0, new_target=5.0, reason="re-planned")
    w.add(WeightChanged, "A", node_id="A", parent_id="p1", old_weight=2.0, new_weight=0.25, reason="focus")
    w.add(WeightChanged, "a2", node_id="a2", parent_id="A", old_weight=3.0, new_weight=1.5, reason="focus")
    w.add(LinkChanged, "C", node_id="C", old_link=Link(parent_id="B"), new_link=Link(parent_id="A", weight=4.0), reason="moved")
    w.add(LinkChanged, "a1", node_id="a1", old_link=Link(parent_id="p1", weight=0.5), new_link=None, reason="unlinked")
    w.add(KeyResultRetired, "a3", kr_id="a3", reason="wrong metric")
    switch = w.now + timedelta(seconds=30)
    w.value("a5", 301.0, step=timedelta(minutes=1, microseconds=123456))
    w.objective("E", 2, rollup_method="say_do")  # mixed methods while the portfolio does not allow them: refused
    w.portfolio("say_do", allow_mixed=True, hit=0.7)  # settings redefined: everything rescored
    w.objective("E2", 2, parent="p1", rollup_method="kpi")
    w.kr("e1", "E2", 2, parent="d00", kind="derived", unit="%", rollup_method="kpi", baseline=0.0, target=50.0)
    w.kr("e2", "E2", 2, parent="e1")
    w.kr("e3", "E2", 2, parent="e1", unit="pts")  # a unit mismatch under kpi: refused
    w.value("e2", 30.0)
    w.portfolio("kpi", allow_mixed=True)
    w.kr("k1", "P", 1, kind="derived", unit="%", baseline=10.0, target=20.0)
    w.kr("k2", "A", 2, parent="k1", unit="%")
    w.value("k2", 15.0)
    w.add(CycleScored, "q3", cycle_id="q3", scored_at=w.now, carried_over=("a1", "k2"), retired=("a4",), next_cycle_id="q4")
    w.portfolio("weighted")  # e1's kpi override is now refused whenever it is rescored
    w.portfolio("weighted", allow_mixed=True)
    for i, kid in enumerate(("a1", "a2", "b1", "c1", "d03", "d07")):
        w.add(CheckInRecorded, kid, step=timedelta(seconds=7, microseconds=i), kr_id=kid, confidence=i / 6, what_changed="after")
    w.again(len(w.envelopes) - 3)
    schedule = Schedule([InForce(EPOCH, V1), InForce(switch, V2)])
    return w, schedule


def kpi_sums() -> Writer:
    """A KPI portfolio: values summed up the tree (whole numbers on the wire too), thresholds and an unmeasurable parent."""
    w = Writer("golden-kpi")
    w.portfolio("kpi")
    w.objective("P", 1)
    w.kr("p1", "P", 1, kind="derived", unit="users", baseline=100, target=1000)
    w.kr("p2", "P", 1, kind="derived", unit="users", baseline=None, target=None)
    w.objective("A", 2, parent="P", weight=3)
    for n, (baseline, target) in enumerate(((0, 400), (10.5, 300.25), (0, 1e-3))):
        w.kr(f"a{n}", "A", 2, parent="p1" if n < 2 else "p2", unit="users", baseline=baseline, target=target, weight=n + 1)
    w.kr("t1", "A", 2, parent="p1", kind="threshold", unit="users", target=50, direction="at_least")
    for kid, value in (("a0", 250), ("t1", 49.99), ("a1", 300.25), ("a2", 7), ("t1", 50), ("a0", 1e15)):
        w.value(kid, value)
    w.check_in("a1", 1)
    w.add(TargetChanged, "p1", kr_id="p1", old_target=1000.0, new_target=100.0, reason="reset")
    w.add(KeyResultRetired, "a0", kr_id="a0", reason="double counted")
    return w


def bench_shaped(seed: int = 11) -> Writer:
    """A three-tier tree with fan-in 8 (as bench/rollup builds), then random single-KR updates, some in another time zone."""
    w, rnd = Writer("golden-tree"), random.Random(seed)
    w.portfolio("weighted")
    metrics: list[str] = []
    for t1 in range(2):
        w.objective(f"o{t1}", 1)
        for k in range(2):
            w.kr(f"o{t1}k{k}", f"o{t1}", 1, kind="derived")
        for t2 in range(4):
            o2 = f"o{t1}.{t2}"
            w.objective(o2, 2, parent=f"o{t1}", product_id=f"prod{t2 % 2}")
            for k in range(2):
                w.kr(f"{o2}k{k}", o2, 2, parent=f"o{t1}k{k}", kind="derived")
            for t3 in range(4):
                o3 = f"{o2}.{t3}"
                w.objective(o3, 3, parent=o2, product_id=f"prod{t2 % 2}")
                for k in range(2):
                    w.kr(f"{o3}k{k}", o3, 3, parent=f"{o2}k{k}", baseline=rnd.uniform(0, 50), target=rnd.uniform(60, 500))
                    metrics.append(f"{o3}k{k}")
    for kid in metrics:
        w.value(kid, round(rnd.uniform(0, 100), 2))
    for n in range(300):
        kid = rnd.choice(metrics)
        step = timedelta(minutes=rnd.randint(1, 90), microseconds=rnd.randint(0, 999_999))
        if n % 3 == 0:
            w.add(CheckInRecorded, kid, step=step, kr_id=kid, confidence=rnd.choice([0.1, 0.5, 0.9, 1 / 3]), what_changed="weekly")
        else:
            w.value(kid, rnd.uniform(-50, 700), step=step)
        if n % 50 == 49:
            w.now = w.now.astimezone(CEST if w.now.utcoffset() == timedelta(0) else UTC)
    return w


class ModelsOnly(RecordWriter):
    """Every record through the contract's models, as the direct path does for what it does not vouch for."""

    def record(self, place: Placement, score: Score, mixed: bool, version: str, source: Source) -> ScoreRecord | None:
        return self.validated(place, score, mixed, version, source)


class ThroughModels(PortfolioProjection):
    def __init__(self, portfolio_id: str, schedule: Schedule) -> None:
        super().__init__(portfolio_id, schedule)
        self.writer = ModelsOnly(portfolio_id)
        self.published = self.writer.published


def outcomes(
    pid: str, envelopes: list[Envelope[Any]], schedule: Schedule, projection_class: type[PortfolioProjection] = PortfolioProjection
) -> Iterator[str]:
    """Each event's outcome as a line of the golden file: the event's index, then refused, duplicate or the records' digest."""
    projection = projection_class(pid, schedule)
    for index, envelope in enumerate(envelopes):
        decoded = KR_EVENTS_TOPIC.decode(envelope.to_json_bytes())  # as the consumer and a replay see it
        try:
            records = projection.apply(decoded)
        except ScoringRefused as exc:
            yield f"{pid} {index} refused {exc.code}"
            continue
        if records is None:
            yield f"{pid} {index} duplicate"
            continue
        digest = hashlib.sha256(b"\n".join(r.value for r in records)).hexdigest()
        yield f"{pid} {index} {len(records)} {' '.join(r.node_id for r in records)} {digest}"


def all_outcomes(projection_class: type[PortfolioProjection] = PortfolioProjection) -> list[str]:
    rules, schedule = every_rule()
    kpi, tree = kpi_sums(), bench_shaped()
    return [
        *outcomes(rules.pid, rules.envelopes, schedule, projection_class),
        *outcomes(kpi.pid, kpi.envelopes, Schedule.only(V1), projection_class),
        *outcomes(tree.pid, tree.envelopes, Schedule.only(V1), projection_class),
    ]


@pytest.mark.parametrize("projection_class", [PortfolioProjection, ThroughModels], ids=["direct", "through-models"])
def test_every_event_produces_the_pinned_score_record_bytes(projection_class: type[PortfolioProjection]) -> None:
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    found = all_outcomes(projection_class)
    for line, want in zip(found, expected, strict=True):
        assert line == want


def test_a_score_id_is_the_uuid5_of_portfolio_node_and_source_event() -> None:
    for name in ("acme/obj-growth/0d7c3c55-8a43-4b0e-9a8e-6a1f4b2c9e10", "", "é/中/🚀"):
        assert score_id(name) == str(uuid.uuid5(SCORE_ID_NAMESPACE, name))


def test_the_pinned_histories_reach_every_outcome() -> None:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert any(line.endswith(" refused mixed-methods-refused") for line in lines)
    assert any(line.endswith(" refused unit-mismatch") for line in lines)
    assert sum(line.endswith(" duplicate") for line in lines) == 2
    assert any(line.split()[2] == "0" for line in lines)  # an event that changes no score
    assert len(lines) > 500


def whole_numbers(children: Any, *, own_confidence: float | None = None, note: str = "") -> Score:
    """A rule that returns whole numbers where the contract has floats: the models turn them into floats."""
    return dataclasses.replace(scoring.score_weighted(children, own_confidence=own_confidence, note=note), progress=1, confidence=0)


def beyond_one(children: Any, *, own_confidence: float | None = None, note: str = "") -> Score:
    return dataclasses.replace(scoring.score_weighted(children, own_confidence=own_confidence, note=note), progress=1.5)


def small_history() -> Writer:
    w = Writer("golden-custom")
    w.portfolio("weighted")
    w.objective("P", 1)
    w.kr("p1", "P", 1, kind="derived")
    w.objective("A", 2, parent="p1")
    w.kr("a1", "A", 2, parent="p1")
    w.value("a1", 40.0)
    return w


def test_what_a_rule_returns_beyond_the_direct_path_gets_the_models_bytes_or_their_error() -> None:
    w, schedule = small_history(), Schedule.only(RuleSet("whole", weighted=whole_numbers))
    direct, models = PortfolioProjection(w.pid, schedule), ThroughModels(w.pid, schedule)
    found = [[r.value for r in direct.apply(e) or []] for e in w.envelopes]
    assert found == [[r.value for r in models.apply(e) or []] for e in w.envelopes]
    assert any(b'"confidence":0.0' in value and b'"progress":1.0' in value for values in found for value in values)
    projection = PortfolioProjection(w.pid, Schedule.only(RuleSet("beyond", weighted=beyond_one)))
    for envelope in w.envelopes[:2]:  # the portfolio and its objective: objectives are scored by another rule
        projection.apply(envelope)
    with pytest.raises(ValidationError, match="progress"):
        projection.apply(w.envelopes[2])


def _records_of_one_event() -> list[dict[str, Any]]:
    """Sanity for the reader of this file: the records are canonical JSON envelopes of NodeScored."""
    rules, schedule = every_rule()
    projection = PortfolioProjection(rules.pid, schedule)
    found: list[dict[str, Any]] = []
    for envelope in rules.envelopes[:8]:
        found += [json.loads(r.value) for r in projection.apply(envelope) or []]
    return found


def test_the_generated_records_are_node_scores() -> None:
    assert {r["type"] for r in _records_of_one_event()} == {"NodeScored"}
