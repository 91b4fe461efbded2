"""The rollup's service layer: history events in, stored and published score records out, capacity views stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.kr_events import KrEvent
from okr_contracts.scores import score_key
from okr_contracts.topics import KR_EVENTS_TOPIC
from okr_rollup.domain.errors import ScoringRefused
from okr_rollup.domain.projection import CapacityView, PortfolioProjection, canonical, replay
from okr_rollup.store import Applied, ScoreStore
from okr_runtime.consumer import Delivery, Received, Rejected

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]
"""Publishes (Kafka key, record value) pairs on okr.scores.v1, in order, returning once Kafka acknowledged them."""


class RollupService:
    """Keeps each portfolio's projection, stores what every event changed, then publishes it.

    An event's effect is stored before its score records are published, and the
    consumer commits the offset only after both: a crash in between leaves
    unpublished rows, which are published before the portfolio's next event.
    """

    def __init__(self, store: ScoreStore, publish: Publish) -> None:
        self.store = store
        self.publish = publish
        self._projections: dict[str, PortfolioProjection] = {}
        self._unpublished: set[str] = set()

    async def handle(self, envelope: Envelope[EventPayload], delivery: Delivery | None = None) -> None:
        """Apply one okr.kr-events.v1 event: dead-letter it if it cannot be scored, skip it if seen."""
        event = envelope.data
        if not isinstance(event, KrEvent):
            raise Rejected(f"{envelope.type} is not an event of the key-result history")
        portfolio_id = event.portfolio_id
        projection = await self.projection(portfolio_id)
        await self._flush(portfolio_id)
        try:
            records = projection.apply(envelope)
        except ScoringRefused as exc:
            raise Rejected(f"{exc.code}: {exc}") from exc
        if records is None:
            log.debug("event %s of portfolio %s was applied before; skipped", envelope.event_id, portfolio_id)
            return
        try:
            value = canonical(envelope.as_json())
            event_id, views = str(envelope.event_id), projection.capacity_changed
            await asyncio.to_thread(self.store.append, portfolio_id, projection.events, event_id, value, records, views)
        except BaseException:
            self._projections.pop(portfolio_id, None)  # it is ahead of the store now: rebuild it on the retry
            raise
        self._unpublished.add(portfolio_id)
        await self._flush(portfolio_id, [(score_key(portfolio_id, r.node_id), r.value) for r in records])

    async def handle_batch(self, received: Sequence[Received]) -> list[Rejected | None]:
        """Apply many okr.kr-events.v1 events at once: one transaction for all they changed, then one publish.

        A refused event is left out (its verdict says why) and the others go on, as one by
        one. If anything else fails before the batch is stored, the touched portfolios'
        projections are dropped (they are rebuilt from the store on the retry) and the error
        is raised; a failed publish leaves the stored records for the next flush.
        """
        verdicts: list[Rejected | None] = []
        applied: list[Applied] = []
        touched: list[str] = []
        try:
            for envelope, _ in received:
                event = envelope.data
                if not isinstance(event, KrEvent):
                    verdicts.append(Rejected(f"{envelope.type} is not an event of the key-result history"))
                    continue
                portfolio_id = event.portfolio_id
                if portfolio_id not in touched:
                    touched.append(portfolio_id)
                projection = await self.projection(portfolio_id)
                try:
                    records = projection.apply(envelope)
                except ScoringRefused as exc:
                    verdicts.append(Rejected(f"{exc.code}: {exc}"))  # the projection is as it was before the event
                    continue
                verdicts.append(None)
                if records is not None:
                    value, views = canonical(envelope.as_json()), projection.capacity_changed
                    applied.append(Applied(portfolio_id, projection.events, str(envelope.event_id), value, records, views))
            for portfolio_id in touched:
                await self._flush(portfolio_id)  # what an earlier failure left unpublished goes first
            if applied:
                await asyncio.to_thread(self.store.append_many, applied)
        except BaseException:
            for portfolio_id in touched:  # memory is ahead of the store: rebuilt from it on the retry
                self._projections.pop(portfolio_id, None)
            raise
        stored = list(dict.fromkeys(a.portfolio_id for a in applied))
        self._unpublished.update(stored)
        if stored:
            await self.publish([(score_key(a.portfolio_id, r.node_id), r.value) for a in applied for r in a.records])
            await asyncio.to_thread(self.store.mark_published, *stored)
            self._unpublished.difference_update(stored)
        return verdicts

    async def projection(self, portfolio_id: str) -> PortfolioProjection:
        """The portfolio's projection, rebuilt from the store on first use."""
        found = self._projections.get(portfolio_id)
        if found is None:
            found = await asyncio.to_thread(self._load, portfolio_id)
            self._projections[portfolio_id] = found
        return found

    def _load(self, portfolio_id: str) -> PortfolioProjection:
        loaded = self.store.load(portfolio_id)
        views: list[tuple[int, CapacityView]] = []
        projection = replay(portfolio_id, (KR_EVENTS_TOPIC.decode(raw) for raw in loaded.envelopes), views=views)
        if loaded.unpublished:
            self._unpublished.add(portfolio_id)
        if len(views) > loaded.capacity_rows:  # events stored before capacity views were kept: their views are written now
            restored = self.store.restore_capacity(portfolio_id, views)
            log.info("stored %d missing capacity views of portfolio %s", restored, portfolio_id)
        log.info("rebuilt portfolio %s from %d stored events", portfolio_id, projection.events)
        return projection

    async def _flush(self, portfolio_id: str, records: Sequence[tuple[str, bytes]] | None = None) -> None:
        """Publish what is stored but unpublished (the records just stored, or all such rows), then mark it."""
        if portfolio_id not in self._unpublished:
            return
        if records is None:
            records = await asyncio.to_thread(self.store.unpublished, portfolio_id)
        await self.publish(records)
        await asyncio.to_thread(self.store.mark_published, portfolio_id)
        self._unpublished.discard(portfolio_id)
