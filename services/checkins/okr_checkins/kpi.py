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
from collections.abc import Sequence

from okr_checkins.application import CheckinsApplication
from okr_checkins.domain.access import Actor, TokenRole
from okr_checkins.domain.errors import RetiredKeyResult, UnknownId
from okr_checkins.domain.key_results import record_value
from okr_checkins.domain.portfolio import Context, Portfolio, Request
from okr_contracts.envelope import Envelope, EventPayload
from okr_contracts.metrics import KpiSampled
from okr_runtime.consumer import Delivery, Received, Rejected

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

    async def handle_batch(self, received: Sequence[Received]) -> list[Rejected | None]:
        """Consumer batch handler for ``okr.metrics.v1``: every sample of a portfolio recorded in one command and one transaction."""
        samples: list[tuple[str, KpiSampled] | Rejected] = [
            (str(envelope.event_id), envelope.data)
            if isinstance(envelope.data, KpiSampled)
            else Rejected(f"{envelope.type} is not a KPI sample")
            for envelope, _ in received
        ]
        return await asyncio.to_thread(self.record_many, samples)

    def record_many(self, samples: Sequence[tuple[str, KpiSampled] | Rejected]) -> list[Rejected | None]:
        """Record samples (in order) on the key results bound to their metrics, one command per portfolio; a verdict per sample.

        A sample refused by a key result (a unit it does not use) is refused, as :meth:`record`
        refuses it; the batch goes on.
        """
        verdicts: list[Rejected | None] = [s if isinstance(s, Rejected) else None for s in samples]
        by_portfolio: dict[str, list[tuple[int, str, str, KpiSampled]]] = {}
        bindings: dict[str, Sequence[tuple[str, str]] | Rejected] = {}  # each metric's key results, looked up once per batch
        for index, sample_or_refusal in enumerate(samples):
            if isinstance(sample_or_refusal, Rejected):
                continue
            sample_id, sample = sample_or_refusal
            bound = bindings.get(sample.metric)
            if bound is None:
                try:
                    bound = bindings[sample.metric] = self.app.bound_key_results(sample.metric)
                except UnknownId as exc:
                    bound = bindings[sample.metric] = Rejected(str(exc))
            if isinstance(bound, Rejected):
                verdicts[index] = bound
                continue
            for portfolio_id, kr_id in bound:
                by_portfolio.setdefault(portfolio_id, []).append((index, kr_id, sample_id, sample))
        for portfolio_id, wanted in by_portfolio.items():
            steps = [
                (
                    _request(sample_id, sample),
                    functools.partial(_record_or_refuse, verdicts, index, kr_id=kr_id, sample_id=sample_id, sample=sample),
                )
                for index, kr_id, sample_id, sample in wanted
            ]
            self.app.execute_many(portfolio_id, steps)
        return verdicts

    def record(self, sample_id: str, sample: KpiSampled) -> int:
        """Record one sample on every key result bound to its metric; returns how many values it appended."""
        try:
            bound = self.app.bound_key_results(sample.metric)
        except UnknownId as exc:
            raise Rejected(str(exc)) from exc
        request = _request(sample_id, sample)
        appended = 0
        for portfolio_id, kr_id in bound:
            result = self.app.execute(portfolio_id, request, functools.partial(_record, kr_id=kr_id, sample_id=sample_id, sample=sample))
            appended += len(result.events)
        return appended


def _request(sample_id: str, sample: KpiSampled) -> Request:
    return Request(KPI_CONNECTOR, occurred_at=sample.observed_at, causation_id=sample_id, producer=f"checkins:{sample.source}")


def _refusal(portfolio: Portfolio, kr_id: str, sample: KpiSampled) -> Rejected | None:
    """Why the key result refuses the sample (a unit it does not use), if it does."""
    kr = portfolio.state.key_results[kr_id]
    if kr.spec.kpi_binding == sample.metric and sample.unit and kr.spec.unit and sample.unit != kr.spec.unit:
        return Rejected(f"metric {sample.metric} is sampled in {sample.unit!r} but key result {kr_id} is in {kr.spec.unit!r}")
    return None


def _record_or_refuse(
    verdicts: list[Rejected | None], index: int, portfolio: Portfolio, ctx: Context, kr_id: str, sample_id: str, sample: KpiSampled
) -> None:
    """As :func:`_record`, except that a refusal is noted in the sample's verdict instead of raised (the batch goes on)."""
    try:
        _record(portfolio, ctx, kr_id=kr_id, sample_id=sample_id, sample=sample)
    except Rejected as refusal:
        verdicts[index] = refusal


def _record(portfolio: Portfolio, ctx: Context, kr_id: str, sample_id: str, sample: KpiSampled) -> None:
    kr = portfolio.state.key_results[kr_id]
    if sample_id in kr.sample_ids or kr.spec.kpi_binding != sample.metric:
        return
    if refusal := _refusal(portfolio, kr_id, sample):
        raise refusal
    try:
        record_value(portfolio, ctx, kr_id, value=sample.value, observed_at=sample.observed_at, source=sample.source)
    except RetiredKeyResult:
        log.info("sample %s of %s ignored: key result %s is retired", sample_id, sample.metric, kr_id)
