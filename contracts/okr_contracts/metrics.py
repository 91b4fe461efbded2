"""KPI samples, published on ``okr.metrics.v1``, keyed by portfolio id when the source names one, else by metric key."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from okr_contracts.envelope import EventPayload
from okr_contracts.types import FiniteFloat, Id


class KpiSampled(EventPayload):
    """One numeric sample of a KPI, from an HTTP JSON endpoint or a SQL query."""

    metric: Id = Field(description="Metric key; key results bind to it with `kpi_binding`.")
    portfolio_id: Id | None = Field(
        default=None, description="Portfolio whose key results bind the metric, when the source names one; the Kafka key."
    )
    value: FiniteFloat = Field(description="The sampled value.")
    unit: str = Field(default="", max_length=40, description="Unit of the value.")
    observed_at: AwareDatetime = Field(description="When the value was true at the source.")
    source: str = Field(min_length=1, max_length=200, description="Connector source name, e.g. `http:billing` or `sql:warehouse`.")
    source_ref: str | None = Field(default=None, max_length=2000, description="URL and selector, or query name, that produced it.")


METRIC_EVENTS: tuple[type[EventPayload], ...] = (KpiSampled,)
