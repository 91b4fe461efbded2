"""Fixtures of the drift tests: a 100-day cycle, and a portfolio fed with contract envelopes on a clock the tests set.

Every moment is given as a day of the cycle (``day(14)`` is midnight UTC fourteen
days after the cycle started), so a rule's boundary reads as the number in its
documentation. Nothing reads a clock: each input is applied and evaluated at the
moment the test names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from okr_contracts.delivery import DeliverySource, SignalKind, SignalRaised, StatusCategory, WorkItemChanged
from okr_contracts.envelope import Envelope
from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleCadence,
    CycleScored,
    CycleStarted,
    KeyResultDefined,
    KeyResultEscalated,
    KeyResultKind,
    KeyResultRetired,
    KrEvent,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RecoveryOption,
    RecoveryPlanFiled,
    RollupMethod,
    TeamDefined,
    ValueObserved,
)
from okr_contracts.scores import Derivation, NodeKind, NodeScored, ScoreStatus
from okr_drift.domain.alerts import Change
from okr_drift.domain.evaluation import PortfolioDrift
from okr_drift.domain.facts import CycleFacts
from okr_drift.domain.portfolio import Touched

CYCLE = "2026-Q3"
STARTS_ON = date(2026, 7, 1)
ENDS_ON = date(2026, 10, 8)
"""The cycle's last day: it is over at midnight after it, 2026-10-09T00:00Z, exactly 100 days after it started."""
CYCLE_START = datetime(2026, 7, 1, tzinfo=UTC)

KR = "kr-activation"
OBJECTIVE = "obj-billing"
PRODUCT = "billing"
TEAM = "payments"
KR_OWNER = "pm.ana"
PRODUCT_LEAD = "lead.bo"
TEAM_LEAD = "lead.sam"
PORTFOLIO_LEAD = "cpo"


def day(n: float, *, hours: float = 0, minutes: float = 0) -> datetime:
    """The moment `n` days (and hours, minutes) after the cycle started; day 50 is its middle, day 100 its end."""
    return CYCLE_START + timedelta(days=n, hours=hours, minutes=minutes)


Input = Callable[[PortfolioDrift], Touched | None]


class Scenario:
    """One portfolio's drift fed the way the service feeds it, each input evaluated at the moment it happened.

    History events go in contract envelopes with per-aggregate versions, as checkins
    publishes them; scores and work-item changes as rollup and the connectors do. Every
    input is kept, so a fresh ``PortfolioDrift`` can be rebuilt from the same facts.
    """

    def __init__(self, portfolio_id: str = "acme") -> None:
        self.portfolio_id = portfolio_id
        self.drift = PortfolioDrift(portfolio_id)
        self.writer = HistoryWriter(portfolio_id, actor=PORTFOLIO_LEAD)
        self.inputs: list[Input] = []
        self.envelopes: list[Envelope[Any]] = []

    # --- feeding ---------------------------------------------------------------------------------------------

    def event(self, cls: type[KrEvent], aggregate_id: str, at: datetime, **fields: Any) -> Envelope[Any]:
        """A history event of `aggregate_id`, its next version, occurred at `at` (not applied)."""
        envelope = self.writer.event(cls, aggregate_id, at=at, **fields)
        self.envelopes.append(envelope)
        return envelope

    def deliver(self, envelope: Envelope[Any], at: datetime | None = None) -> list[Change] | None:
        """Apply a history envelope and evaluate what it touched at `at` (its occurrence); ``None`` if it changed nothing."""
        return self._feed(lambda d: d.state.apply_history(envelope.data, envelope.occurred_at), at or envelope.occurred_at)

    def record(self, cls: type[KrEvent], aggregate_id: str, at: datetime, **fields: Any) -> list[Change]:
        """Publish and deliver a new history event; what its evaluation raised and resolved."""
        changes = self.deliver(self.event(cls, aggregate_id, at, **fields))
        assert changes is not None, f"a new {cls.__name__} must change the facts"
        return changes

    def _feed(self, step: Input, at: datetime) -> list[Change] | None:
        touched = step(self.drift)
        if touched is None:
            return None
        self.inputs.append(step)
        return self.drift.evaluate(at, touched)

    def tick(self, at: datetime) -> list[Change]:
        """A clock tick: every node evaluated at `at`."""
        return self.drift.evaluate(at)

    def rebuilt(self) -> PortfolioDrift:
        """A fresh drift fed the same inputs in the same order (nothing evaluated yet)."""
        drift = PortfolioDrift(self.portfolio_id)
        for step in self.inputs:
            step(drift)
        return drift

    # --- the portfolio ---------------------------------------------------------------------------------------

    def seed(self, at: datetime) -> list[Change]:
        """Portfolio (lead cpo), product billing (lead.bo), team payments (lead.sam), the cycle, one objective and one key result."""
        return [
            *self.record(PortfolioDefined, self.portfolio_id, at, name="Acme", owner=PORTFOLIO_LEAD, rollup_method=RollupMethod.WEIGHTED),
            *self.record(ProductDefined, PRODUCT, at, product_id=PRODUCT, name="Billing", lead=PRODUCT_LEAD),
            *self.record(TeamDefined, TEAM, at, team_id=TEAM, name="Payments", product_id=PRODUCT, lead=TEAM_LEAD),
            *self.start_cycle(CYCLE, at, STARTS_ON, ENDS_ON),
            *self.objective(OBJECTIVE, at),
            *self.key_result(KR, at),
        ]

    def objective(self, objective_id: str, at: datetime, *, tier: int = 2, team: str | None = TEAM) -> list[Change]:
        return self.record(
            ObjectiveDefined,
            objective_id,
            at,
            objective_id=objective_id,
            cycle_id=CYCLE,
            tier=tier,
            title="Make billing effortless",
            owner=PRODUCT_LEAD,
            product_id=PRODUCT,
            team_id=team,
        )

    def key_result(self, kr_id: str, at: datetime, *, objective: str = OBJECTIVE, **fields: Any) -> list[Change]:
        """A metric key result phrased as an outcome, with baseline and target, owned by pm.ana."""
        definition: dict[str, Any] = {
            "title": "Raise activation from 20% to 40%",
            "kind": KeyResultKind.METRIC,
            "baseline": 20.0,
            "target": 40.0,
            "unit": "%",
            **fields,
        }
        return self.record(
            KeyResultDefined, kr_id, at, kr_id=kr_id, objective_id=objective, cycle_id=CYCLE, tier=2, owner=KR_OWNER, **definition
        )

    # --- a key result's history ------------------------------------------------------------------------------

    def check_in(self, at: datetime, confidence: float, kr_id: str = KR) -> list[Change]:
        return self.record(CheckInRecorded, kr_id, at, kr_id=kr_id, confidence=confidence, what_changed="weekly check-in")

    def value(self, at: datetime, value: float, kr_id: str = KR) -> list[Change]:
        return self.record(ValueObserved, kr_id, at, kr_id=kr_id, value=value, observed_at=at, source="manual")

    def escalate(self, at: datetime, kr_id: str = KR) -> list[Change]:
        return self.record(KeyResultEscalated, kr_id, at, kr_id=kr_id, escalated_to=PRODUCT_LEAD, reason="needs a decision")

    def plan(self, at: datetime, kr_id: str = KR) -> list[Change]:
        return self.record(
            RecoveryPlanFiled,
            kr_id,
            at,
            kr_id=kr_id,
            option=RecoveryOption.CHANGE_TACTIC,
            description="Guided setup instead of the tour",
            owner=KR_OWNER,
            decision_needed="Two engineers for three weeks",
        )

    def retire(self, at: datetime, kr_id: str = KR) -> list[Change]:
        return self.record(KeyResultRetired, kr_id, at, kr_id=kr_id, reason="replaced by a better measure")

    def start_cycle(self, cycle_id: str, at: datetime, starts_on: date, ends_on: date) -> list[Change]:
        fields = {"cycle_id": cycle_id, "name": cycle_id, "cadence": CycleCadence.CUSTOM, "starts_on": starts_on, "ends_on": ends_on}
        return self.record(CycleStarted, cycle_id, at, **fields)

    def close_cycle(self, at: datetime, *, carried: tuple[str, ...] = (), next_cycle: str | None = None) -> list[Change]:
        """Score 2026-Q3: the key results in `carried` move to `next_cycle`, the others are retired with it."""
        return self.record(CycleScored, CYCLE, at, cycle_id=CYCLE, scored_at=at, carried_over=carried, next_cycle_id=next_cycle)

    # --- the other topics ------------------------------------------------------------------------------------

    def score(self, at: datetime, progress: float, kr_id: str = KR, *, source: str | None = None) -> list[Change] | None:
        """Rollup's record of the key result's progress as of `at` (okr.scores.v1), after the history event `source`.

        Rollup scores after every history event, as of the event's recording time: the
        check-in and the value of one check-in command share that moment.
        """
        record = NodeScored(
            portfolio_id=self.portfolio_id,
            node_id=kr_id,
            node_kind=NodeKind.KEY_RESULT,
            tier=2,
            cycle_id=CYCLE,
            objective_id=OBJECTIVE,
            status=ScoreStatus.SCORED,
            progress=progress,
            derivation=Derivation(method="metric", formula=f"progress = {progress}"),
            scoring_rules_version="1",
            as_of=at,
            source_event_id=source or f"{kr_id}@{at.isoformat()}",
        )
        window = timedelta(days=31)  # the service keeps the longer of the busy and not-moving windows, and a day
        return self._feed(lambda d: d.state.apply_score(record, window), at)

    def work_item(self, at: datetime, key: str, *, done: bool = True, kr_id: str = KR) -> list[Change] | None:
        """A linked Jira issue changed at `at`: reached done then, or moved back to in progress (okr.delivery.v1)."""
        change = WorkItemChanged(
            source=DeliverySource.JIRA,
            external_id=key,
            kr_ids=(kr_id,),
            portfolio_id=self.portfolio_id,
            key=key,
            title=f"Work item {key}",
            status="Done" if done else "In Progress",
            status_category=StatusCategory.DONE if done else StatusCategory.IN_PROGRESS,
            changed_at=at,
            completed_at=at if done else None,
        )
        window = timedelta(days=30)  # the busy window
        return self._feed(lambda d: d.state.apply_delivery(kr_id, f"jira:{key}", change, window), at)

    def blocker(self, at: datetime, text: str, *, kr_id: str = KR) -> list[Change] | None:
        """A Slack message posted at `at` in the key result's channel raised a blocker (okr.delivery.v1)."""
        ts = f"{at.timestamp():.6f}"
        signal = SignalRaised(
            source=DeliverySource.SLACK,
            external_id=f"C06NRA6JLER:{ts}",
            kr_ids=(kr_id,),
            portfolio_id=self.portfolio_id,
            kind=SignalKind.BLOCKER,
            channel="C06NRA6JLER",
            author="U024BE7LH",
            text=text,
            posted_at=at,
        )
        return self._feed(lambda d: d.state.apply_delivery(kr_id, f"slack:C06NRA6JLER:{ts}", signal, timedelta(days=30)), at)


@pytest.fixture
def at_day() -> Callable[..., datetime]:
    """``at_day(n, hours=…, minutes=…)``: the moment n days into the 100-day cycle."""
    return day


@pytest.fixture
def cycle() -> CycleFacts:
    """The 100-day cycle 2026-Q3: starts 2026-07-01T00:00Z, over at 2026-10-09T00:00Z."""
    return CycleFacts(cycle_id=CYCLE, starts_on=STARTS_ON, ends_on=ENDS_ON)


def seeded(portfolio_id: str = "acme") -> Scenario:
    """A seeded portfolio: everything defined the day before the cycle starts, so the key result's clock starts at day 0."""
    scenario = Scenario(portfolio_id)
    assert scenario.seed(day(-1)) == []
    return scenario


@pytest.fixture
def portfolio() -> Scenario:
    """The seeded portfolio "acme"."""
    return seeded()


@pytest.fixture
def seeded_portfolio() -> Callable[[str], Scenario]:
    """``seeded_portfolio(portfolio_id)``: another seeded portfolio, the same as "acme" but for its id."""
    return seeded
