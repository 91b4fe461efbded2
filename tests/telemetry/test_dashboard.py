"""The Grafana dashboard and the operations guide agree with the instrument registry: no panel reads a metric nobody emits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from okr_runtime.instruments import INSTRUMENTATION, INSTRUMENTS, Instrument, prometheus_label, prometheus_name

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "okrstream.json"
OPERATIONS = ROOT / "docs" / "operations.md"
RESOURCE_LABELS = {"job", "instance"}
"""Labels the Collector's Prometheus exporter derives from the resource (service.namespace/service.name, service.instance.id)."""


def series(instrument: Instrument) -> dict[str, Instrument]:
    """The Prometheus series names of an instrument."""
    base = prometheus_name(instrument)
    if instrument.kind == "histogram":
        return {f"{base}_{suffix}": instrument for suffix in ("bucket", "sum", "count")}
    return {base: instrument}


KNOWN = {name: i for instrument in (*INSTRUMENTS, *INSTRUMENTATION) for name, i in series(instrument).items()}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def metrics_in(expr: str) -> set[str]:
    """Metric names of a PromQL expression: identifiers that are not functions, keywords, labels or durations."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    names = {m.group() for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if not bare[m.end() :].lstrip().startswith("(")}
    return names - {"and", "or", "unless", "offset", "bool"}


def labels_in(expr: str) -> set[str]:
    grouped = re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
    matched = re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", expr)
    return {label.strip() for group in grouped for label in group.split(",") if label.strip()} | set(matched)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_dashboard_is_importable_with_a_prometheus_input_and_a_service_variable(dashboard: dict[str, Any]) -> None:
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == [("DS_PROMETHEUS", "datasource", "prometheus")]
    assert dashboard["schemaVersion"] >= 39
    [service] = [v for v in dashboard["templating"]["list"] if v["name"] == "service"]
    assert service["datasource"]["uid"] == "${DS_PROMETHEUS}"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert 'job=~"$service"' in target["expr"], panel["title"]


def test_every_expression_reads_only_metrics_that_are_emitted_with_labels_they_carry(dashboard: dict[str, Any]) -> None:
    for expr in expressions(dashboard):
        used = metrics_in(expr)
        assert used, expr
        assert used <= set(KNOWN), f"{sorted(used - set(KNOWN))} in {expr}: not in okr_runtime.instruments"
        carried = {prometheus_label(a) for name in used for a in KNOWN[name].attributes}
        histogram = {"le"} if any(name.endswith("_bucket") for name in used) else set()
        assert labels_in(expr) <= carried | RESOURCE_LABELS | histogram, expr


def test_every_instrument_of_the_registry_has_a_panel(dashboard: dict[str, Any]) -> None:
    used = {name for expr in expressions(dashboard) for name in metrics_in(expr)}
    assert {prometheus_name(i) for i in INSTRUMENTS} <= used


def test_the_operations_guide_lists_every_instrument_by_both_its_names() -> None:
    telemetry = OPERATIONS.read_text().split("## Telemetry", 1)[1].split("\n## ", 1)[0]
    for instrument in INSTRUMENTS:
        assert f"`{instrument.name}`" in telemetry, instrument.name
        assert f"`{prometheus_name(instrument)}`" in telemetry, instrument.name
    assert "deploy/grafana/okrstream.json" in telemetry


def test_the_expression_parser_finds_metrics_and_labels() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, job) (rate(http_server_duration_milliseconds_bucket{job=~"$service"}[5m]))) / up'
    assert metrics_in(expr) == {"http_server_duration_milliseconds_bucket", "up"}
    assert labels_in(expr) == {"le", "job"}
