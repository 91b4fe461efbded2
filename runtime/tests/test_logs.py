import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from okr_runtime.logs import TraceContextFilter, configure_logging
from okr_runtime.settings import RuntimeSettings


def test_log_lines_are_json_with_the_current_trace_and_span() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        _check_json_line_with_trace()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def _check_json_line_with_trace() -> None:
    configure_logging(RuntimeSettings(service_name="rollup", log_format="json"))
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("okr.test").warning("scored %s", "kr-1")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    ctx = span.get_span_context()
    assert line["message"] == "scored kr-1"
    assert line["level"] == "WARNING"
    assert line["service"] == "rollup"
    assert line["trace_id"] == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")


def test_outside_a_span_the_trace_fields_are_null() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TraceContextFilter("svc").filter(record)
    assert (record.trace_id, record.span_id) == (None, None)  # type: ignore[attr-defined]
