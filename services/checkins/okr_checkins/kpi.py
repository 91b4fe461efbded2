"""Auto-tracked key results: each KPI sample on ``okr.metrics.v1`` becomes a value of the key results bound to its metric.

A sample is recorded at most once per key result (its event id is kept with
the value it produced), so a redelivered sample appends nothing. A sample for a
metric no key result was ever bound to, or in a unit the key result does not
use, is rejected to the dead-letter topic with the reason; retired key results
ignore samples.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from okr_checkins.application import CheckinsApplication
from okr_checkins.domain.access import Actor, TokenRole
from okr_checkins.domain.errors import RetiredKeyResult, UnknownId
from okr_checkins.domain.key_results import record_value
from okr_checkins.domain.portfolio import Context, Portfolio, Request
from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.metrics import KpiSampled
from okr_runtime.consumer import Delivery, Rejected

log = logging.getLogger(__name__)

KPI_CONNECTOR = Actor("connector:kpi", frozenset({TokenRole.CONNECTOR}))


class KpiRecorder:
    """Records KPI samples as values of their bound key results."""

    def __init__(self, app: CheckinsApplication) -> None:
        self.app = app

    async def handle(self, envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        """Consumer handler for ``okr.metrics.v1``."""
        if not isinstance(envelope.data, KpiSampled):
            raise Rejected(f"{envelope.type} is not a KPI sample")
        await asyncio.to_thread(self.record, str(envelope.event_id), envelope.data)

    def record(self, sample_id: str, sample: KpiSampled) -> int:
        """Record one sample on every key result bound to its metric; returns how many values it appended."""
        try:
            bound = self.app.bound_key_results(sample.metric)
        except UnknownId as exc:
            raise Rejected(str(exc)) from exc
        request = Request(KPI_CONNECTOR, occurred_at=sample.observed_at, causation_id=sample_id, producer=f"checkins:{sample.source}")
        appended = 0
        for portfolio_id, kr_id in bound:
            result = self.app.execute(portfolio_id, request, functools.partial(_record, kr_id=kr_id, sample_id=sample_id, sample=sample))
            appended += len(result.events)
        return appended


def _record(portfolio: Portfolio, ctx: Context, kr_id: str, sample_id: str, sample: KpiSampled) -> None:
    kr = portfolio.state.key_results[kr_id]
    if sample_id in kr.sample_ids or kr.spec.kpi_binding != sample.metric:
        return
    if sample.unit and kr.spec.unit and sample.unit != kr.spec.unit:
        raise Rejected(f"metric {sample.metric} is sampled in {sample.unit!r} but key result {kr_id} is in {kr.spec.unit!r}")
    try:
        record_value(portfolio, ctx, kr_id, value=sample.value, observed_at=sample.observed_at, source=sample.source)
    except RetiredKeyResult:
        log.info("sample %s of %s ignored: key result %s is retired", sample_id, sample.metric, kr_id)
