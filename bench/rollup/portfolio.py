"""A generated portfolio of any size with bounded fan-in, and single key-result updates on it, as okr.kr-events.v1 events.

The shape grows in breadth, never in fan-in. A tier-1 objective has 4 derived key
results; each takes 8 contributors, one key result from each of 8 tier-2 objectives
(4 derived key results each, one per tier-1 key result); each tier-2 key result
likewise takes one metric key result from each of 8 tier-3 objectives. Tier-2 and
tier-3 objectives also contribute to the objective one tier up, so an objective has
12 children (4 key results, 8 objectives). That makes 292 key results under each
tier-1 objective; a cycle holds up to 12 tier-1 objectives and the portfolio adds
cycles as it grows (the last tier-1 objective may be cut short to hit the size).
Tier-2 objectives are spread over 2 products per tier-1 objective of a cycle (at
most 24), tier-3 objectives belong to their tier-2 objective's product.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleCadence,
    CycleStarted,
    KeyResultDefined,
    KeyResultKind,
    Link,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RollupMethod,
    ValueObserved,
)

KRS_PER_OBJECTIVE = 4
CONTRIBUTORS = 8
TIER1_PER_CYCLE = 12
MAX_PRODUCTS = 24
KRS_PER_TIER1 = KRS_PER_OBJECTIVE * (1 + CONTRIBUTORS + CONTRIBUTORS**2)
SHAPE = (
    f"{KRS_PER_OBJECTIVE} KRs per objective; every tier-1/tier-2 KR takes {CONTRIBUTORS} contributors, every tier-1/tier-2 objective"
    f" {KRS_PER_OBJECTIVE} KRs + {CONTRIBUTORS} linked objectives; {KRS_PER_TIER1} KRs per tier-1 objective,"
    f" up to {TIER1_PER_CYCLE} tier-1 objectives per cycle, up to {MAX_PRODUCTS} products"
)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WHAT_CHANGED = (
    "Shipped the redesigned flow to 50% of traffic; early numbers are in line with the A/B test from last month.",
    "Two engineers were pulled into the incident review, so the migration slipped by a week.",
    "The partner integration went live on Tuesday and the first cohort is converting better than forecast.",
)


@dataclass(frozen=True)
class Metric:
    """A tier-3 metric key result: what an update needs to know of it."""

    kr_id: str
    baseline: float
    target: float
    first: bool


@dataclass
class Portfolio:
    """Counts of what the generated history defines, filled in as it is generated."""

    portfolio_id: str
    size: int
    products: int = 0
    cycles: int = 0
    tier1: int = 0
    objectives: int = 0
    key_results: int = 0
    events: int = 0
    metrics: list[Metric] = field(default_factory=list, repr=False)


class History:
    """Events of one portfolio in recorded order, each wrapped as the check-in service would, with a clock and ids of its own."""

    def __init__(self, portfolio: Portfolio, seed: int) -> None:
        self.portfolio = portfolio
        self.rng = random.Random(seed)
        self.versions: dict[str, int] = {}
        self.latest: dict[tuple[str, str], float] = {}
        self._tick = count()

    def wrap(self, payload: EventPayload) -> Envelope[EventPayload]:
        """The payload in an envelope recorded one second after the previous one (reproducible id)."""
        at = self.now()
        event_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        self.portfolio.events += 1
        return Envelope.wrap(payload, producer="checkins", occurred_at=at, recorded_at=at, event_id=event_id)

    def now(self) -> datetime:
        """The clock of the history: one second per event."""
        return START + timedelta(seconds=next(self._tick))

    def fresh(self, kr_id: str, name: str, draw: Callable[[], float]) -> float:
        """A new confidence or value for a key result, never the one it has (an update that changes nothing scores nothing)."""
        value = draw()
        while value == self.latest.get((kr_id, name)):
            value = draw()
        self.latest[kr_id, name] = value
        return value

    def head(self, aggregate_id: str, actor: str) -> dict[str, object]:
        """Fields every event of an aggregate carries, with its next version."""
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        return {"portfolio_id": self.portfolio.portfolio_id, "aggregate_id": aggregate_id, "aggregate_version": version, "actor": actor}


def definitions(history: History) -> Iterator[Envelope[EventPayload]]:
    """The portfolio, its products and cycles, and tier-1 objectives with everything under them until it has `size` key results."""
    p = history.portfolio
    tier1_total = -(-p.size // KRS_PER_TIER1)
    p.products = min(MAX_PRODUCTS, 2 * min(tier1_total, TIER1_PER_CYCLE))
    cpo = f"cpo@{p.portfolio_id}.example"
    yield history.wrap(
        PortfolioDefined(**history.head(p.portfolio_id, cpo), name="Acme products", owner=cpo, rollup_method=RollupMethod.WEIGHTED)
    )
    for n in range(p.products):
        product = f"product-{n:02d}"
        yield history.wrap(ProductDefined(**history.head(product, cpo), product_id=product, name=f"Product {n}", lead=_lead(product)))
    while p.key_results < p.size:
        if p.tier1 % TIER1_PER_CYCLE == 0:
            yield history.wrap(_cycle(history, cpo, p.cycles))
            p.cycles += 1
        yield from _tier1(history, cpo, f"c{p.cycles - 1:02d}-o{p.tier1 % TIER1_PER_CYCLE:02d}")
        p.tier1 += 1


def _cycle(history: History, cpo: str, n: int) -> CycleStarted:
    year, quarter = 2026 + n // 4, n % 4
    starts = date(year, 3 * quarter + 1, 1)
    ends = date(year + (quarter == 3), (3 * quarter + 3) % 12 + 1, 1) - timedelta(days=1)
    cycle = f"c{n:02d}"
    return CycleStarted(
        **history.head(cycle, cpo),
        cycle_id=cycle,
        name=f"{year}-Q{quarter + 1}",
        cadence=CycleCadence.QUARTERLY,
        starts_on=starts,
        ends_on=ends,
    )


def _tier1(history: History, cpo: str, o1: str) -> Iterator[Envelope[EventPayload]]:
    """One tier-1 objective, its key results, and the tier-2 and tier-3 objectives feeding them (depth first)."""
    p, cycle = history.portfolio, o1.split("-")[0]
    yield from _objective(history, o1, cycle, 1, None, None, cpo)
    kr1 = yield from _key_results(history, o1, cycle, 1, [None] * KRS_PER_OBJECTIVE, cpo)
    for j in range(CONTRIBUTORS):
        if p.key_results >= p.size:
            return
        product, o2 = f"product-{(p.tier1 % TIER1_PER_CYCLE * 2 + j % 2) % p.products:02d}", f"{o1}-{j}"
        yield from _objective(history, o2, cycle, 2, product, o1, _lead(product))
        kr2 = yield from _key_results(history, o2, cycle, 2, kr1, _lead(product))
        for m in range(CONTRIBUTORS):
            if p.key_results >= p.size:
                return
            o3, owner = f"{o2}-{m}", f"pm{m}@{p.portfolio_id}.example"
            yield from _objective(history, o3, cycle, 3, product, o2, owner)
            yield from _key_results(history, o3, cycle, 3, kr2, owner, first=m % KRS_PER_OBJECTIVE)


def _objective(
    history: History, objective: str, cycle: str, tier: int, product: str | None, parent: str | None, owner: str
) -> Iterator[Envelope[EventPayload]]:
    history.portfolio.objectives += 1
    yield history.wrap(
        ObjectiveDefined(
            **history.head(objective, owner),
            objective_id=objective,
            cycle_id=cycle,
            tier=tier,
            title=f"Make tier-{tier} objective {objective} the easiest part of the customer journey",
            owner=owner,
            product_id=product,
            contributes_to=Link(parent_id=parent) if parent else None,
        )
    )


def _key_results(
    history: History, objective: str, cycle: str, tier: int, parents: list[str | None], owner: str, first: int = -1
) -> Generator[Envelope[EventPayload], None, list[str | None]]:
    """Key results of one objective (metric at tier 3, derived above), the k-th linked to the k-th parent; returns their ids.

    `first` is the one (of a tier-3 objective) that gets a value in :func:`first_values`.
    """
    p, rng, defined = history.portfolio, history.rng, list[str | None]()
    for k, parent in enumerate(parents):
        if p.key_results >= p.size:
            break
        kr = f"{objective}-kr{k}"
        link = Link(parent_id=parent, weight=float(rng.choice((1, 1, 2, 3)))) if parent else None
        shape: dict[str, object] = {"kind": KeyResultKind.DERIVED}
        if tier == 3:
            baseline = float(rng.randrange(10, 60))
            target = baseline + rng.randrange(10, 40)
            shape = {"kind": KeyResultKind.METRIC, "baseline": baseline, "target": target, "unit": "%"}
            p.metrics.append(Metric(kr, baseline, target, first=k == first))
        title = f"Raise weekly conversion of cohort {kr} by ten points"
        yield history.wrap(
            KeyResultDefined(
                **history.head(kr, owner),
                kr_id=kr,
                objective_id=objective,
                cycle_id=cycle,
                tier=tier,
                title=title,
                owner=owner,
                contributes_to=link,
                **shape,
            )
        )
        defined.append(kr)
        p.key_results += 1
    return defined


def _lead(product: str) -> str:
    return f"lead@{product}.example"


def check_in(history: History, metric: Metric) -> Envelope[EventPayload]:
    """A check-in on a tier-3 key result with a new confidence (no value)."""
    event = CheckInRecorded(
        **history.head(metric.kr_id, f"pm@{history.portfolio.portfolio_id}.example"),
        kr_id=metric.kr_id,
        confidence=history.fresh(metric.kr_id, "confidence", lambda: round(history.rng.uniform(0.05, 0.95), 2)),
        what_changed=history.rng.choice(WHAT_CHANGED),
        why="Mostly the rollout pace: the experiment needed a full week of traffic before we could trust it.",
    )
    return history.wrap(event)


def observe(history: History, metric: Metric) -> Envelope[EventPayload]:
    """A new value of a tier-3 key result, observed now (so it replaces the current one)."""
    span = metric.target - metric.baseline
    value = history.fresh(metric.kr_id, "value", lambda: round(metric.baseline + span * history.rng.uniform(-0.2, 1.2), 1))
    at = history.now()
    event = ValueObserved(
        **history.head(metric.kr_id, "connector:kpi"), kr_id=metric.kr_id, value=value, observed_at=at, source="sql:warehouse"
    )
    return history.wrap(event)


def first_values(history: History) -> Iterator[Envelope[EventPayload]]:
    """A first value on one key result of every tier-3 objective (each tier-2 key result gets 2 of its 8), so every node is scored."""
    for metric in history.portfolio.metrics:
        if metric.first:
            yield observe(history, metric)


def updates(history: History, n: int) -> list[Envelope[EventPayload]]:
    """`n` single-KR updates on random tier-3 key results, alternating a check-in and a new value."""
    picks = history.rng.choices(history.portfolio.metrics, k=n)
    return [(check_in if i % 2 == 0 else observe)(history, metric) for i, metric in enumerate(picks)]
