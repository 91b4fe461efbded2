"""Telemetry whose metrics stay in memory, so a test can read what a service counted and observed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from okr_runtime.instruments import Instrument
from okr_runtime.settings import RuntimeSettings
from okr_runtime.telemetry import create_telemetry

Attributes = frozenset[tuple[str, Any]]


class MetricsProbe:
    """A service's telemetry (``probe.telemetry``, to pass in) with an in-memory reader behind it."""

    def __init__(self, service_name: str = "test") -> None:
        self.reader = InMemoryMetricReader()
        self.telemetry = create_telemetry(RuntimeSettings(service_name=service_name), metric_readers=(self.reader,))

    def read(self, instrument: Instrument) -> dict[Attributes, float]:
        """Each data point of `instrument` now (a counter's total, a gauge's reading), by its attributes."""
        found: dict[Attributes, float] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == instrument.name:
                        for point in metric.data.data_points:
                            found[frozenset((point.attributes or {}).items())] = point.value  # type: ignore[union-attr]
        return found

    def value(self, instrument: Instrument, attributes: Mapping[str, str]) -> float | None:
        """The one data point whose attributes include these (None if there is none)."""
        wanted = set(attributes.items())
        matches = [value for key, value in self.read(instrument).items() if wanted <= set(key)]
        if len(matches) > 1:
            raise AssertionError(f"{len(matches)} points of {instrument.name} match {attributes}")
        return matches[0] if matches else None

    def close(self) -> None:
        """Stop the providers."""
        self.telemetry.shutdown()
