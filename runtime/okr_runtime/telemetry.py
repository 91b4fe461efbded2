"""OpenTelemetry traces and metrics for a service; OTLP export when configured."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from okr_runtime.settings import RuntimeSettings


@dataclass(frozen=True)
class Telemetry:
    """The providers a service passes to its middlewares and instrumentations."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider

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
