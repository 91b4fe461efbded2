"""Drift's service layer: inputs and clock ticks in, stored and published alert lifecycle events out.

Every input is folded into its portfolio's facts, the touched nodes are
evaluated at the clock's time, and the changed facts, alerts and lifecycle
events are stored in one transaction before the events are published and the
consumer commits the offset. A redelivered input changes no fact, so it raises
nothing. All work on one portfolio runs under that portfolio's lock. Each alert
raised is reported to ``on_raised`` once, when it is first stored (for metrics).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta

from okr_contracts.alerts import AlertRaised
from okr_contracts.delivery import SignalRaised, WorkItemChanged
from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.kr_events import KrEvent
from okr_contracts.scores import NodeScored
from okr_drift.domain.alerts import Alert, AlertClosed, AlertNotFound, AlertState, Change
from okr_drift.domain.delivery import LinkedChange, item_id
from okr_drift.domain.evaluation import PortfolioDrift
from okr_drift.domain.facts import PortfolioFacts
from okr_drift.domain.portfolio import ENTITY_KINDS, Touched
from okr_drift.store import AlertQuery, DriftStore, Write
from okr_runtime.consumer import Delivery, Received, Rejected

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""The evaluation clock: wall time in production, set by tests."""
Publish = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]
"""Publishes (portfolio id, envelope value) pairs on okr.alerts.v1, in order, returning once Kafka acknowledged them."""
Owns = Callable[[str], bool]
"""Whether this shard evaluates a portfolio."""
Fold = Callable[[PortfolioDrift], Touched | None]
"""Folds one input into a portfolio's facts: what it touched, or None when it was seen before."""
Raised = Callable[[Alert], None]
"""Told of each alert when it is raised and stored."""


class NotThisShard(LookupError):
    """The portfolio belongs to another shard, which holds its alerts in memory."""


class DriftService:
    """Holds the shard's portfolios in memory; the store has the same facts and alerts for restarts."""

    def __init__(
        self, store: DriftStore, publish: Publish, clock: Clock, owns: Owns = lambda _: True, *, on_raised: Raised = lambda _: None
    ) -> None:
        self.store = store
        self.publish = publish
        self.clock = clock
        self.owns = owns
        self.on_raised = on_raised
        self.drifts: dict[str, PortfolioDrift] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._flushing = asyncio.Lock()

    # --- start-up --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the shard's facts and alerts from the store, then publish what a crash left unpublished."""
        self.drifts = await asyncio.to_thread(self._load_all)
        log.info("loaded %d portfolios from the store", len(self.drifts))
        await self.flush()

    def _load_all(self, only: str | None = None) -> dict[str, PortfolioDrift]:
        drifts: dict[str, PortfolioDrift] = {}

        def drift_of(pid: str) -> PortfolioDrift:
            return drifts.setdefault(pid, PortfolioDrift(pid))

        for pid, kind, entity_id, doc in self.store.facts():
            if self.owns(pid) and only in (None, pid):
                drift_of(pid).state.put(kind, entity_id, ENTITY_KINDS[kind].model_validate_json(doc))
        for pid, alert_id in self.store.alert_ids():
            if self.owns(pid) and only in (None, pid):
                drift_of(pid).book.used.add(alert_id)
        for alert in self.store.alerts(only, AlertQuery(limit=None)):  # every active alert, not the API's first page
            if self.owns(alert.portfolio_id) and only in (None, alert.portfolio_id):
                drift_of(alert.portfolio_id).book.load(alert)
        return drifts

    # --- inputs ----------------------------------------------------------------------------------------------

    async def on_history(self, envelope: Envelope[EventPayload], delivery: Delivery | None = None) -> None:
        """An okr.kr-events.v1 event."""
        await self._apply_each(self._history_folds(envelope))

    async def on_score(self, envelope: Envelope[EventPayload], delivery: Delivery | None = None) -> None:
        """An okr.scores.v1 record: a key result's progress."""
        await self._apply_each(self._score_folds(envelope))

    async def on_delivery(self, envelope: Envelope[EventPayload], delivery: Delivery | None = None) -> None:
        """An okr.delivery.v1 event: work items and chat signals, kept per linked key result; project health is not drift's."""
        await self._apply_each(self._delivery_folds(envelope))

    async def on_history_batch(self, received: Sequence[Received]) -> list[Rejected | None]:
        """Many okr.kr-events.v1 events at once (see :meth:`_apply_batch`)."""
        return await self._apply_batch(received, self._history_folds)

    async def on_score_batch(self, received: Sequence[Received]) -> list[Rejected | None]:
        """Many okr.scores.v1 records at once (see :meth:`_apply_batch`)."""
        return await self._apply_batch(received, self._score_folds)

    async def on_delivery_batch(self, received: Sequence[Received]) -> list[Rejected | None]:
        """Many okr.delivery.v1 events at once (see :meth:`_apply_batch`)."""
        return await self._apply_batch(received, self._delivery_folds)

    def _history_folds(self, envelope: Envelope[EventPayload]) -> list[tuple[str, Fold]]:
        event = envelope.data
        if not isinstance(event, KrEvent):
            raise Rejected(f"{envelope.type} is not an event of the key-result history")
        if not self.owns(event.portfolio_id):
            return []
        return [(event.portfolio_id, lambda d: d.state.apply_history(event, envelope.occurred_at))]

    def _score_folds(self, envelope: Envelope[EventPayload]) -> list[tuple[str, Fold]]:
        score = envelope.data
        if not isinstance(score, NodeScored):
            raise Rejected(f"{envelope.type} is not a score record")
        if not self.owns(score.portfolio_id):
            return []
        return [(score.portfolio_id, lambda d: d.state.apply_score(score, _progress_window(d.state.facts)))]

    def _delivery_folds(self, envelope: Envelope[EventPayload]) -> list[tuple[str, Fold]]:
        change = envelope.data
        if not isinstance(change, WorkItemChanged | SignalRaised) or not change.kr_ids:
            return []
        item = item_id(change)
        return [
            (pid, _delivery_fold(kr_id, item, change))
            for kr_id in dict.fromkeys(change.kr_ids)
            for pid in self._portfolios_of(kr_id, change.portfolio_id)
        ]

    async def _apply_each(self, folds: list[tuple[str, Fold]]) -> None:
        for portfolio_id, fold in folds:
            await self._apply(portfolio_id, fold)

    async def _apply_batch(
        self, received: Sequence[Received], folds_of: Callable[[Envelope[EventPayload]], list[tuple[str, Fold]]]
    ) -> list[Rejected | None]:
        """Fold and evaluate many inputs, each as one at a time would, then store all they changed in one transaction.

        Every portfolio touched is locked for the whole batch. If storing fails, their
        memory is replaced with what the store holds and the error is raised (the consumer
        then takes the inputs one at a time).
        """
        verdicts: list[Rejected | None] = []
        folds: list[tuple[str, Fold]] = []
        for envelope, _ in received:
            try:
                folds.extend(folds_of(envelope))
            except Rejected as refusal:
                verdicts.append(refusal)
                continue
            verdicts.append(None)
        portfolios = sorted({pid for pid, _ in folds})
        async with AsyncExitStack() as locks:
            for portfolio_id in portfolios:
                await locks.enter_async_context(self._lock(portfolio_id))
            writes, raised = [], []
            try:
                for portfolio_id in portfolios:
                    drift = self.drifts.setdefault(portfolio_id, PortfolioDrift(portfolio_id))
                    stored = Touched()  # the entities every input touched, stored once as they are at the end
                    changes: list[Change] = []
                    for pid, fold in folds:
                        if pid != portfolio_id:
                            continue
                        touched = fold(drift)
                        if touched is not None:  # else seen before
                            changes += drift.evaluate(self.clock(), touched)
                            stored.entities |= touched.entities
                    writes.append(self._write_of(drift, stored, changes))
                    raised += [c.alert for c in changes if isinstance(c.event, AlertRaised)]
                await asyncio.to_thread(self.store.write_many, writes)
            except BaseException:
                for portfolio_id in portfolios:
                    await self._reload(portfolio_id)
                raise
        for alert in raised:
            self.on_raised(alert)
        await self.flush()
        return verdicts

    def _portfolios_of(self, kr_id: str, portfolio_id: str | None) -> list[str]:
        """Where a linked key result lives: the portfolio the connector named, else each of this shard's that defines it."""
        if portfolio_id is not None:
            if not self.owns(portfolio_id):
                return []
            self.drifts.setdefault(portfolio_id, PortfolioDrift(portfolio_id))
            return [portfolio_id]
        found = [pid for pid, drift in self.drifts.items() if kr_id in drift.state.krs]
        if not found:
            log.info("delivery linked to key result %s of no portfolio known to this shard; skipped", kr_id)
        return found

    async def _apply(self, portfolio_id: str, fold: Callable[[PortfolioDrift], Touched | None]) -> None:
        async with self._lock(portfolio_id):
            drift = self.drifts.setdefault(portfolio_id, PortfolioDrift(portfolio_id))
            try:
                touched = fold(drift)
                if touched is not None:  # else seen before: only what an earlier attempt left unpublished is sent
                    changes = drift.evaluate(self.clock(), touched)
                    await self._commit(drift, touched, changes)
            except BaseException:
                await self._reload(portfolio_id)  # memory may be ahead of the store: the retried input must apply again
                raise
        await self.flush()

    # --- clock -----------------------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Evaluate every node of every portfolio at the clock's time; the number of lifecycle events produced."""
        produced = 0
        for portfolio_id in list(self.drifts):
            async with self._lock(portfolio_id):
                drift = self.drifts[portfolio_id]
                at = self.clock()
                changes = await asyncio.to_thread(drift.evaluate, at)
                if changes:
                    await self._commit(drift, None, changes)
                    produced += len(changes)
        await self.flush()
        return produced

    async def run_clock(self, interval_s: float) -> None:
        """Tick every `interval_s` seconds until cancelled; a failed tick is logged and the next one tries again."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                produced = await self.tick()
            except Exception:
                log.exception("clock tick failed; retrying at the next tick")
            else:
                if produced:
                    log.info("clock tick produced %d alert events", produced)

    # --- acknowledgement -------------------------------------------------------------------------------------

    async def find(self, portfolio_id: str, alert_id: str) -> Alert:
        """An alert by id (open ones from memory, resolved ones from the store); :class:`AlertNotFound` if none."""
        drift = self.drifts.get(portfolio_id)
        found = drift.book.by_id.get(alert_id) if drift else None
        found = found or await asyncio.to_thread(self.store.alert, portfolio_id, alert_id)
        if found is None:
            raise AlertNotFound(f"no alert {alert_id} in portfolio {portfolio_id}")
        return found

    async def acknowledge(self, portfolio_id: str, alert_id: str, by: str, note: str) -> Alert:
        """Acknowledge an open alert (the first acknowledgement stands); :class:`AlertClosed` if it is resolved."""
        if not self.owns(portfolio_id):
            raise NotThisShard(f"portfolio {portfolio_id} is evaluated by another drift shard; acknowledge there")
        async with self._lock(portfolio_id):
            alert = await self.find(portfolio_id, alert_id)
            if alert.state == AlertState.RESOLVED:
                raise AlertClosed(f"alert {alert_id} was resolved at {alert.resolved_at:%Y-%m-%d %H:%M} UTC: {alert.resolved_reason}")
            drift = self.drifts[portfolio_id]
            change = drift.book.acknowledge(alert, by, note, self.clock())
            if change is None:
                return alert
            await self._commit(drift, None, [change])
        await self.flush()
        return change.alert

    # --- storing and publishing ------------------------------------------------------------------------------

    def _lock(self, portfolio_id: str) -> asyncio.Lock:
        return self._locks.setdefault(portfolio_id, asyncio.Lock())

    def _write_of(self, drift: PortfolioDrift, touched: Touched | None, changes: list[Change]) -> Write:
        facts = []
        for kind, entity_id in sorted(touched.entities) if touched else ():
            entity = drift.state.get(kind, entity_id)
            if entity is not None:
                facts.append((kind, entity_id, entity.model_dump_json()))
        events = [(str(c.event_id), _envelope(c)) for c in changes]
        return Write(drift.portfolio_id, facts, [c.alert for c in changes], events)

    async def _commit(self, drift: PortfolioDrift, touched: Touched | None, changes: list[Change]) -> None:
        write = self._write_of(drift, touched, changes)
        try:
            await asyncio.to_thread(self.store.write, write)
        except BaseException:
            await self._reload(drift.portfolio_id)  # memory is ahead of the store now
            raise
        for change in changes:
            if isinstance(change.event, AlertRaised):
                self.on_raised(change.alert)

    async def _reload(self, portfolio_id: str) -> None:
        """Replace a portfolio's memory with what the store holds."""
        reloaded = await asyncio.to_thread(self._load_all, portfolio_id)
        self.drifts[portfolio_id] = reloaded.get(portfolio_id, PortfolioDrift(portfolio_id))

    async def flush(self) -> None:
        """Publish stored lifecycle events that Kafka has not acknowledged yet, in order, then mark them."""
        async with self._flushing:
            rows = [row for row in await asyncio.to_thread(self.store.unpublished) if self.owns(row[1])]
            if not rows:
                return
            await self.publish([(pid, value) for _, pid, value in rows])
            await asyncio.to_thread(self.store.mark_published, [row_id for row_id, _, _ in rows])


def _delivery_fold(kr_id: str, item: str, change: LinkedChange) -> Callable[[PortfolioDrift], Touched | None]:
    def fold(drift: PortfolioDrift) -> Touched | None:
        window = timedelta(days=drift.state.facts.thresholds.busy_window_days)
        return drift.state.apply_delivery(kr_id, item, change, window)

    return fold


def _progress_window(facts: PortfolioFacts) -> timedelta:
    """How much progress history the rules read: the longer of the busy and not-moving windows."""
    t = facts.thresholds
    return timedelta(days=max(t.busy_window_days, t.not_moving_days) + 1)


def _envelope(change: Change) -> bytes:
    return Envelope.wrap(
        change.event, producer="drift", occurred_at=change.at, recorded_at=change.at, event_id=change.event_id
    ).to_json_bytes()
