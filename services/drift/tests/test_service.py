"""The service layer over a real store (SQLite and PostgreSQL): stored before published, once; reloaded on restart; nothing half-applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from okr_contracts.alerts import DriftRule
from okr_contracts.delivery import DeliverySource, StatusCategory, WorkItemChanged
from okr_contracts.envelope import Envelope
from okr_contracts.history import HistoryWriter
from okr_contracts.kr_events import (
    CheckInRecorded,
    CycleCadence,
    CycleStarted,
    DriftThresholds,
    KeyResultDefined,
    KrEvent,
    ObjectiveDefined,
    PortfolioDefined,
    ProductDefined,
    RecoveryOption,
    RecoveryPlanFiled,
    RollupMethod,
)
from okr_contracts.scores import Derivation, NodeKind, NodeScored, ScoreStatus
from okr_drift.application import DriftService
from okr_drift.domain.alerts import AlertClosed, AlertNotFound, AlertState, alert_id
from okr_drift.metrics import count_raised
from okr_drift.store import DriftStore, PostgresDriftStore, SqliteDriftStore
from okr_runtime.consumer import Delivery, Rejected
from okr_runtime.instruments import ALERTS_RAISED, OUTBOX_BACKLOG
from okr_runtime.telemetry import observe_backlog
from okr_runtime.testing import MetricsProbe

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
"""Nine in the morning of the first day of cycle q3 (July to September)."""


class Clock:
    """The evaluation clock, set by the test; inputs occur at its time too."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Inputs:
    """A portfolio's inputs as checkins, rollup and the delivery connectors would publish them, occurring at the clock's time."""

    def __init__(self, pid: str, clock: Clock) -> None:
        self.pid = pid
        self.clock = clock
        self.writer = HistoryWriter(pid)

    def event(self, cls: type[KrEvent], aggregate_id: str, **fields: Any) -> Envelope[Any]:
        return self.writer.event(cls, aggregate_id, at=self.clock.now, **fields)

    def portfolio(self, **thresholds: Any) -> Envelope[Any]:
        return self.event(
            PortfolioDefined, self.pid, name="Acme", owner="cpo", rollup_method=RollupMethod.WEIGHTED, drift=DriftThresholds(**thresholds)
        )

    def product(self, product_id: str, lead: str) -> Envelope[Any]:
        return self.event(ProductDefined, product_id, product_id=product_id, name=product_id.title(), lead=lead)

    def cycle(self) -> Envelope[Any]:
        return self.event(
            CycleStarted,
            "q3",
            cycle_id="q3",
            name="2026-Q3",
            cadence=CycleCadence.QUARTERLY,
            starts_on=date(2026, 7, 1),
            ends_on=date(2026, 9, 30),
        )

    def objective(self, oid: str, product: str) -> Envelope[Any]:
        return self.event(
            ObjectiveDefined, oid, objective_id=oid, cycle_id="q3", tier=2, title=f"Objective {oid}", owner="pm", product_id=product
        )

    def kr(self, kid: str, objective: str = "A", **extra: Any) -> Envelope[Any]:
        fields: dict[str, Any] = {"title": f"Weekly active teams ({kid})", "kind": "metric", "baseline": 0.0, "target": 100.0, **extra}
        return self.event(KeyResultDefined, kid, kr_id=kid, objective_id=objective, cycle_id="q3", tier=2, owner="pm", **fields)

    def check_in(self, kid: str, confidence: float) -> Envelope[Any]:
        return self.event(CheckInRecorded, kid, kr_id=kid, confidence=confidence, what_changed="weekly")

    def plan(self, kid: str) -> Envelope[Any]:
        return self.event(
            RecoveryPlanFiled,
            kid,
            kr_id=kid,
            option=RecoveryOption.CHANGE_TACTIC,
            description="Pair onboarding with sales",
            owner="pm",
            decision_needed="Move two engineers from beta",
        )

    def score(self, kid: str, progress: float) -> Envelope[Any]:
        payload = NodeScored(
            portfolio_id=self.pid,
            node_id=kid,
            node_kind=NodeKind.KEY_RESULT,
            tier=2,
            cycle_id="q3",
            status=ScoreStatus.SCORED,
            progress=progress,
            derivation=Derivation(method="metric", formula=f"{progress:g}"),
            scoring_rules_version="1",
            as_of=self.clock.now,
            source_event_id=str(uuid.uuid4()),
        )
        return Envelope.wrap(payload, producer="rollup", occurred_at=self.clock.now, recorded_at=self.clock.now)

    def work_item(self, kid: str, number: int, *, done: bool = True, portfolio: bool = True) -> Envelope[Any]:
        payload = WorkItemChanged(
            source=DeliverySource.JIRA,
            external_id=f"1000{number}",
            kr_ids=(kid,),
            portfolio_id=self.pid if portfolio else None,
            key=f"ONB-{number}",
            title=f"Onboarding step {number}",
            status="Done" if done else "In Progress",
            status_category=StatusCategory.DONE if done else StatusCategory.IN_PROGRESS,
            changed_at=self.clock.now,
            completed_at=self.clock.now if done else None,
        )
        return Envelope.wrap(payload, producer="connector-jira", occurred_at=self.clock.now, recorded_at=self.clock.now)

    def setup(self, **thresholds: Any) -> list[Envelope[Any]]:
        """Portfolio (lead cpo), product alpha (lead lena), cycle q3, objective A and its measurable key result a1."""
        return [self.portfolio(**thresholds), self.product("alpha", "lena"), self.cycle(), self.objective("A", "alpha"), self.kr("a1")]


class Published:
    """A publisher that records what Kafka acknowledged and can be told to fail its next calls (Kafka down)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.failures = 0

    async def __call__(self, records: Sequence[tuple[str, bytes]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kafka unavailable")
        self.records += records

    def events(self) -> list[tuple[str, str, str]]:
        """(event type, rule, node) of each published lifecycle event, in order."""
        found = [json.loads(value) for _, value in self.records]
        return [(e["type"], e["data"]["rule"], e["data"]["node_id"]) for e in found]

    def data(self) -> list[dict[str, Any]]:
        return [json.loads(value)["data"] for _, value in self.records]


async def feed(service: DriftService, envelopes: Sequence[Envelope[Any]]) -> None:
    """Deliver each input to the consumer of its topic."""
    for envelope in envelopes:
        if isinstance(envelope.data, NodeScored):
            await service.on_score(envelope)
        elif isinstance(envelope.data, WorkItemChanged):
            await service.on_delivery(envelope)
        else:
            await service.on_history(envelope)


OpenStore = Callable[[], DriftStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores over one empty database (a SQLite file, or a fresh schema in the session's PostgreSQL), each as a new process would."""
    opened: list[DriftStore] = []
    if request.param == "sqlite":

        def sqlite_store() -> DriftStore:
            opened.append(SqliteDriftStore(tmp_path / "drift.sqlite"))
            return opened[-1]

        yield sqlite_store
        for found in opened:
            found.close()
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema: str = request.getfixturevalue("postgres_schema")

    def postgres_store() -> DriftStore:
        opened.append(PostgresDriftStore(dsn, schema))
        return opened[-1]

    yield postgres_store
    for found in opened:
        found.close()


@pytest.fixture
def store(open_store: OpenStore) -> DriftStore:
    return open_store()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inputs(clock: Clock) -> Inputs:
    return Inputs(f"acme-{uuid.uuid4().hex[:8]}", clock)


class OutboxFails(DriftStore):
    """The real store, except that while `failures` is set a write fails at its outbox insert, after its facts and alerts."""

    def __init__(self, inner: DriftStore) -> None:
        self.inner = inner
        self.placeholder = inner.placeholder
        self.failures = 0

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as cur:
            yield _FailingCursor(cur, self) if self.failures else cur

    def close(self) -> None:
        """The inner store is the fixture's to close."""


class _FailingCursor:
    def __init__(self, cur: Any, store: OutboxFails) -> None:
        self.cur = cur
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)

    def executemany(self, query: str, rows: Any) -> None:
        if "drift_outbox" in query:
            self.store.failures -= 1
            raise OSError("no space left on device")
        self.cur.executemany(query, rows)


def stale_id(pid: str, since: datetime = START) -> str:
    return alert_id(pid, DriftRule.STALE, "a1", since.isoformat())


async def test_a_stale_key_result_raises_one_alert_on_the_clock_tick_published_once(
    store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, inputs.setup(stale_days=7, retire_after_stale_days=30))
    assert sent.records == []
    clock.advance(days=7, minutes=-1)
    assert await service.tick() == 0
    clock.advance(minutes=1)
    assert await service.tick() == 1
    assert await service.tick() == 0
    assert sent.events() == [("AlertRaised", "stale", "a1")]
    [raised] = sent.data()
    assert raised["alert_id"] == stale_id(inputs.pid)
    assert raised["facts"] == {"idle_days": 7, "last_update": START.isoformat(), "stale_days": 7}
    assert raised["recipients"] == ["pm"]
    assert [key for key, _ in sent.records] == [inputs.pid]
    assert store.unpublished() == []
    [stored] = store.alerts(inputs.pid)
    assert (stored.alert_id, stored.state, stored.raised_at) == (stale_id(inputs.pid), AlertState.OPEN, clock.now)


async def test_an_open_alert_survives_a_restart_and_a_check_in_resolves_it(
    open_store: OpenStore, store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    first = DriftService(store, sent, clock)
    await feed(first, inputs.setup(stale_days=7, retire_after_stale_days=30))
    clock.advance(days=8)
    assert await first.tick() == 1
    again = Published()
    restarted = DriftService(open_store(), again, clock)
    await restarted.start()
    assert list(restarted.drifts[inputs.pid].book.by_id) == [stale_id(inputs.pid)]
    assert restarted.drifts[inputs.pid].state.krs["a1"].title == "Weekly active teams (a1)"
    clock.advance(hours=1)
    assert await restarted.tick() == 0
    assert again.records == []
    clock.advance(hours=1)
    await feed(restarted, [inputs.check_in("a1", 0.8)])
    assert again.events() == [("AlertResolved", "stale", "a1")]
    assert again.data()[0]["reason"] == "check-in recorded"
    resolved = store.alert(inputs.pid, stale_id(inputs.pid))
    assert resolved is not None
    assert (resolved.state, resolved.resolved_at) == (AlertState.RESOLVED, clock.now)
    assert store.alerts(inputs.pid) == []
    assert sent.events() == [("AlertRaised", "stale", "a1")]


async def test_redelivered_inputs_change_nothing_and_publish_nothing(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    envelopes = [
        *inputs.setup(stale_days=7, retire_after_stale_days=30),
        inputs.kr("a2", title="Launch the partner portal"),
        inputs.check_in("a1", 0.8),
        inputs.score("a1", 0.1),
        inputs.work_item("a1", 1),
    ]
    await feed(service, envelopes)
    clock.advance(days=8)
    assert await service.tick() == 2  # a1 and a2 are stale
    assert sent.events() == [("AlertRaised", "output_phrased", "a2"), ("AlertRaised", "stale", "a1"), ("AlertRaised", "stale", "a2")]
    facts, alerts = sorted(store.facts()), store.alerts(inputs.pid)
    await feed(service, envelopes)  # the old check-in does not make a1 fresh again
    restarted = DriftService(store, sent, clock)
    await restarted.start()
    await feed(restarted, envelopes)  # nor after a restart
    assert await restarted.tick() == 0
    assert len(sent.records) == 3
    assert sorted(store.facts()) == facts
    assert store.alerts(inputs.pid) == alerts


async def test_inputs_of_another_shards_portfolio_are_ignored(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    sent = Published()
    other_shard = DriftService(store, sent, clock, owns=lambda pid: False)
    envelopes = [
        *inputs.setup(),
        inputs.kr("a2", title="Launch the partner portal"),
        inputs.score("a1", 0.1),
        inputs.work_item("a1", 1),
        inputs.work_item("a1", 2, portfolio=False),
    ]
    await feed(other_shard, envelopes)
    clock.advance(days=30)
    assert await other_shard.tick() == 0
    assert (sent.records, other_shard.drifts, list(store.facts()), store.alerts()) == ([], {}, [], [])
    owner = DriftService(store, sent, clock)
    await feed(owner, envelopes)
    assert len(sent.records) > 0
    restarted = DriftService(store, Published(), clock, owns=lambda pid: pid != inputs.pid)
    await restarted.start()
    assert restarted.drifts == {}


async def test_a_failed_store_write_leaves_nothing_half_applied_and_the_redelivered_input_raises_once(
    store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    flaky = OutboxFails(store)
    service = DriftService(flaky, sent, clock)
    await feed(service, inputs.setup())
    facts = sorted(store.facts())
    unmeasurable = inputs.kr("a2", baseline=None)
    flaky.failures = 1
    with pytest.raises(OSError, match="no space left"):
        await service.on_history(unmeasurable)
    assert (sorted(store.facts()), store.alerts(inputs.pid), store.unpublished(), sent.records) == (facts, [], [], [])
    assert "a2" not in service.drifts[inputs.pid].state.krs
    assert service.drifts[inputs.pid].state.krs["a1"].title == "Weekly active teams (a1)"
    assert await service.tick() == 0
    await service.on_history(unmeasurable)  # the consumer's retry
    await service.on_history(unmeasurable)
    assert sent.events() == [("AlertRaised", "not_measurable", "a2")]
    [alert] = store.alerts(inputs.pid)
    assert alert.alert_id == alert_id(inputs.pid, DriftRule.NOT_MEASURABLE, "a2", "baseline")
    assert ("key_result", "a2") in {(kind, entity) for _, kind, entity, _ in store.facts()}


async def test_events_stored_while_kafka_was_down_are_published_by_the_next_flush_in_order(
    store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, inputs.setup())
    sent.failures = 1
    output_unmeasurable = inputs.kr("a2", title="Launch the partner portal", baseline=None)
    with pytest.raises(ConnectionError):
        await service.on_history(output_unmeasurable)
    assert len(store.unpublished()) == 2
    assert sent.records == []
    await service.on_history(output_unmeasurable)  # the consumer's retry: seen before, so only the stored events go out
    assert sent.events() == [("AlertRaised", "output_phrased", "a2"), ("AlertRaised", "not_measurable", "a2")]
    assert store.unpublished() == []
    await service.flush()
    assert len(sent.records) == 2


async def test_events_left_unpublished_by_a_crash_are_published_when_the_next_process_starts(
    open_store: OpenStore, store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    down = Published()
    down.failures = 2
    service = DriftService(store, down, clock)
    await feed(service, inputs.setup())
    with pytest.raises(ConnectionError):
        await service.on_history(inputs.kr("a2", baseline=None))
    with pytest.raises(ConnectionError):
        await service.on_history(inputs.kr("a3", title="Launch the partner portal"))
    sent = Published()
    await DriftService(open_store(), sent, clock).start()
    assert sent.events() == [("AlertRaised", "not_measurable", "a2"), ("AlertRaised", "output_phrased", "a3")]
    assert down.records == []


async def test_an_acknowledged_alert_stays_open_and_the_clock_does_not_raise_it_again(
    open_store: OpenStore, store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, inputs.setup(stale_days=7, retire_after_stale_days=30))
    clock.advance(days=7)
    await service.tick()
    clock.advance(hours=2)
    acknowledged_at = clock.now
    done = await service.acknowledge(inputs.pid, stale_id(inputs.pid), "pm", "updating it on Monday")
    assert (done.state, done.acknowledged_by, done.acknowledged_at, done.note) == (
        AlertState.ACKNOWLEDGED,
        "pm",
        acknowledged_at,
        "updating it on Monday",
    )
    clock.advance(hours=2)
    assert await service.tick() == 0
    again = await service.acknowledge(inputs.pid, stale_id(inputs.pid), "lena", "second")
    assert (again.acknowledged_by, again.note, again.acknowledged_at) == ("pm", "updating it on Monday", acknowledged_at)
    assert sent.events() == [("AlertRaised", "stale", "a1"), ("AlertAcknowledged", "stale", "a1")]
    assert sent.data()[1]["by"] == "pm"
    [stored] = store.alerts(inputs.pid)
    assert stored == done
    restarted = DriftService(open_store(), Published(), clock)
    await restarted.start()
    assert await restarted.tick() == 0
    assert (await restarted.find(inputs.pid, stale_id(inputs.pid))).state == AlertState.ACKNOWLEDGED


async def test_acknowledging_a_resolved_alert_raises_alert_closed(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, inputs.setup(stale_days=7, retire_after_stale_days=30))
    clock.advance(days=7)
    await service.tick()
    await feed(service, [inputs.check_in("a1", 0.8)])
    assert (await service.find(inputs.pid, stale_id(inputs.pid))).state == AlertState.RESOLVED
    with pytest.raises(AlertClosed, match="check-in recorded"):
        await service.acknowledge(inputs.pid, stale_id(inputs.pid), "pm", "")
    with pytest.raises(AlertNotFound):
        await service.acknowledge(inputs.pid, "stale:a1:nothing", "pm", "")
    assert [t for t, _, _ in sent.events()] == ["AlertRaised", "AlertResolved"]


async def test_an_event_of_another_topic_is_rejected(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    service = DriftService(store, Published(), clock)
    with pytest.raises(Rejected, match="NodeScored is not an event of the key-result history"):
        await service.on_history(inputs.score("a1", 0.5))
    with pytest.raises(Rejected, match="PortfolioDefined is not a score record"):
        await service.on_score(inputs.portfolio())
    await service.on_delivery(inputs.portfolio())  # not a work item: not drift's
    assert (service.drifts, list(store.facts())) == ({}, [])


async def test_work_done_while_the_score_stays_flat_raises_busy_but_flat_and_progress_resolves_it(
    store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, [*inputs.setup(busy_items=2), inputs.score("a1", 0.02)])
    clock.advance(days=3)
    await feed(service, [inputs.work_item("a1", 1), inputs.work_item("a1", 2, done=False)])
    assert sent.records == []
    clock.advance(hours=1)
    await feed(service, [inputs.work_item("a1", 2, portfolio=False)])  # the connector did not know the portfolio
    assert sent.events() == [("AlertRaised", "busy_but_flat", "a1")]
    assert sent.data()[0]["facts"]["items_done"] == 2
    clock.advance(hours=1)
    await feed(service, [inputs.score("a1", 0.3)])
    assert sent.events()[1:] == [("AlertResolved", "busy_but_flat", "a1")]


async def test_a_restart_loads_every_open_alert_however_many(
    open_store: OpenStore, store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, inputs.setup())
    for n in range(251):  # two alerts each: phrased as an output, and not measurable
        await service.on_history(inputs.kr(f"k{n}", title="Launch the partner portal", baseline=None))
    assert len(sent.records) == 503  # and objective A has too many key results
    restarted = DriftService(open_store(), Published(), clock)
    await restarted.start()
    assert len(restarted.drifts[inputs.pid].book.by_id) == 503
    assert await restarted.tick() == 0


async def test_an_alert_is_counted_once_when_first_stored_however_often_its_input_is_redelivered(
    open_store: OpenStore, store: DriftStore, clock: Clock, inputs: Inputs
) -> None:
    probe = MetricsProbe("drift")
    sent, flaky = Published(), OutboxFails(store)
    service = DriftService(flaky, sent, clock, on_raised=count_raised(probe.telemetry))
    await feed(service, inputs.setup())
    unmeasurable = inputs.kr("a2", baseline=None)
    flaky.failures = 1
    with pytest.raises(OSError, match="no space left"):
        await service.on_history(unmeasurable)  # nothing stored, nothing counted
    sent.failures = 1
    with pytest.raises(ConnectionError):
        await service.on_history(unmeasurable)  # stored and counted; Kafka down
    assert (probe.value(ALERTS_RAISED, {"rule": "not_measurable"}), sent.records) == (1, [])
    await service.on_history(unmeasurable)  # redelivered: publishes what was stored
    restarted = DriftService(open_store(), sent, clock, on_raised=count_raised(probe.telemetry))
    await restarted.start()
    await feed(restarted, [unmeasurable])

    [alert] = store.alerts(inputs.pid)
    assert sent.events() == [("AlertRaised", "not_measurable", "a2")]
    assert probe.read(ALERTS_RAISED) == {frozenset({("rule", "not_measurable"), ("severity", alert.severity.value)}): 1}
    probe.close()


async def test_the_outbox_backlog_counts_events_kafka_has_not_acknowledged(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    probe = MetricsProbe("drift")
    observe_backlog(probe.telemetry, "drift_outbox", store.unpublished_count)
    sent = Published()
    service = DriftService(store, sent, clock)
    await feed(service, inputs.setup())
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "drift_outbox"}) == 0
    sent.failures = 1
    with pytest.raises(ConnectionError):
        await service.on_history(inputs.kr("a2", title="Launch the partner portal", baseline=None))
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "drift_outbox"}) == 2
    await service.flush()
    assert probe.value(OUTBOX_BACKLOG, {"outbox": "drift_outbox"}) == 0
    probe.close()


async def feed_batches(service: DriftService, envelopes: Sequence[Envelope[Any]]) -> list[Rejected | None]:
    """Deliver runs of inputs of one topic as one consumer batch each, as a consumer catching up sees them."""
    verdicts: list[Rejected | None] = []
    run: list[tuple[Envelope[Any], Delivery]] = []
    for n, envelope in enumerate(envelopes):
        run.append((envelope, Delivery("t", 0, n, None, {})))
        follows = envelopes[n + 1] if n + 1 < len(envelopes) else None
        if follows is None or _batch_handler(service, follows) != _batch_handler(service, envelope):
            verdicts += await _batch_handler(service, envelope)(run)
            run = []
    return verdicts


def _batch_handler(service: DriftService, envelope: Envelope[Any]) -> Callable[..., Any]:
    if isinstance(envelope.data, NodeScored):
        return service.on_score_batch
    if isinstance(envelope.data, WorkItemChanged):
        return service.on_delivery_batch
    return service.on_history_batch


async def test_batches_store_and_publish_what_one_input_at_a_time_does(
    store: DriftStore, clock: Clock, inputs: Inputs, tmp_path: Path
) -> None:
    one_by_one, batched = Published(), Published()
    reference = SqliteDriftStore(tmp_path / "one-by-one.sqlite")
    services = (DriftService(reference, one_by_one, clock), DriftService(store, batched, clock))
    steps: list[list[Envelope[Any]]] = [
        [*inputs.setup(busy_items=2), inputs.kr("a2", baseline=None), inputs.score("a1", 0.02)],
        [inputs.work_item("a1", 1), inputs.work_item("a1", 2, done=False), inputs.work_item("a1", 2, portfolio=False)],
        [inputs.score("a1", 0.3), inputs.check_in("a1", 0.2), inputs.kr("a3", title="Launch the partner portal")],
    ]
    for step in steps:
        await feed(services[0], step)
        assert await feed_batches(services[1], step) == [None] * len(step)
        clock.advance(hours=1)
    await feed_batches(services[1], [e for step in steps for e in step])  # everything redelivered: nothing changes
    assert batched.events() == one_by_one.events()
    assert ("AlertRaised", "busy_but_flat", "a1") in batched.events()
    assert sorted(store.facts()) == sorted((pid, kind, entity, doc) for pid, kind, entity, doc in reference.facts())
    assert store.alerts(inputs.pid) == reference.alerts(inputs.pid)
    reference.close()


async def test_a_batch_refuses_an_input_of_another_topic_alone(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    service = DriftService(store, Published(), clock)
    setup = inputs.setup()
    verdicts = await service.on_score_batch([(e, Delivery("t", 0, n, None, {})) for n, e in enumerate([inputs.score("a1", 0.1), setup[0]])])
    assert verdicts[0] is None
    assert isinstance(verdicts[1], Rejected)


async def test_a_failed_batch_write_leaves_nothing_half_applied(store: DriftStore, clock: Clock, inputs: Inputs) -> None:
    sent = Published()
    flaky = OutboxFails(store)
    service = DriftService(flaky, sent, clock)
    await feed(service, inputs.setup())
    facts = sorted(store.facts())
    batch = [inputs.kr("a2", baseline=None), inputs.kr("a3", baseline=None)]
    flaky.failures = 1
    with pytest.raises(OSError, match="no space left"):
        await feed_batches(service, batch)
    assert (sorted(store.facts()), store.alerts(inputs.pid), store.unpublished(), sent.records) == (facts, [], [], [])
    assert "a2" not in service.drifts[inputs.pid].state.krs
    await feed_batches(service, batch)  # the consumer's retry
    assert sent.events() == [("AlertRaised", "not_measurable", "a2"), ("AlertRaised", "not_measurable", "a3")]
