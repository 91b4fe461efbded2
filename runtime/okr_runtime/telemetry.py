"""OpenTelemetry traces and metrics for a service; OTLP export when configured.

A service's own instruments come from :mod:`okr_runtime.instruments` through
:meth:`Telemetry.counter` and :meth:`Telemetry.observe`, on the service's meter
provider (never the global one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Counter, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from okr_runtime.instruments import OUTBOX_BACKLOG, Instrument
from okr_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

METER_NAME = "okrstream"

Source = Callable[[], Iterable[Observation]]
"""What an observable gauge reads at each collection (in the metric reader's thread)."""


@dataclass(frozen=True)
class Telemetry:
    """The providers a service passes to its middlewares and instrumentations."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    _sources: dict[str, list[Source]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def meter(self) -> Meter:
        """The meter of okrstream's own instruments."""
        return self.meter_provider.get_meter(METER_NAME)

    def counter(self, instrument: Instrument) -> Counter:
        """The counter `instrument` names (the same one however often asked for)."""
        if instrument.kind != "counter":
            raise ValueError(f"{instrument.name} is a {instrument.kind}, not a counter")
        return self.meter.create_counter(instrument.name, unit=instrument.unit, description=instrument.description)

    def observe(self, instrument: Instrument, source: Source) -> None:
        """Add `source` to the observable gauge `instrument`; a source that fails is logged and skipped."""
        if instrument.kind != "observable_gauge":
            raise ValueError(f"{instrument.name} is a {instrument.kind}, not an observable gauge")
        sources = self._sources.get(instrument.name)
        if sources is not None:
            sources.append(source)
            return
        sources = self._sources[instrument.name] = [source]

        def collect(_: CallbackOptions) -> Iterable[Observation]:
            return [observation for each in list(sources) for observation in _read(instrument, each)]

        self.meter.create_observable_gauge(instrument.name, [collect], unit=instrument.unit, description=instrument.description)

    def shutdown(self) -> None:
        """Flush and stop exporters."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def create_telemetry(
    settings: RuntimeSettings,
    *,
    span_processors: tuple[SpanProcessor, ...] = (),
    metric_readers: tuple[MetricReader, ...] = (),
) -> Telemetry:
    """Providers for this service; extra processors and readers let tests look inside."""
    resource = Resource.create({"service.name": settings.service_name, "service.namespace": "okrstream"})
    tracer_provider = TracerProvider(resource=resource)
    readers = list(metric_readers)
    if settings.otlp_endpoint:
        base = settings.otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics")))
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    return Telemetry(tracer_provider, MeterProvider(resource=resource, metric_readers=readers))


def _read(instrument: Instrument, source: Source) -> list[Observation]:
    try:
        return list(source())
    except Exception as exc:  # a store or Kafka down must not hide the other sources' readings
        log.warning("reading %s failed: %r", instrument.name, exc)
        return []


def observe_backlog(telemetry: Telemetry, outbox: str, count: Callable[[], int]) -> None:
    """Report `count()`, an outbox's rows stored but not yet published, on ``okr.outbox.backlog`` as ``outbox=<outbox>``."""
    telemetry.observe(OUTBOX_BACKLOG, lambda: [Observation(count(), {"outbox": outbox})])
