"""A key result's page: its history as a chart and a timeline, its score's derivation, linked delivery items and open alerts."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Seen` alias when routes are defined.

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from okr_web.backend import ApiError, Backend
from okr_web.charts import HistoryChart, Marker, Point, history_chart
from okr_web.formats import parse_moment
from okr_web.render import Pages
from okr_web.scorecard import contributions
from okr_web.session import Sessions, Viewer

MAX_RECORDS = 5000
"""At most this many history records are drawn (ten pages); the timeline says when there are more."""
PAGE = 500
TIMELINE_TYPES = {
    "CheckInRecorded",
    "ValueObserved",
    "TargetChanged",
    "WeightChanged",
    "LinkChanged",
    "KeyResultEscalated",
    "RecoveryPlanFiled",
    "KeyResultRetired",
}


def key_result_router(pages: Pages, backend: Backend, sessions: Sessions) -> APIRouter:
    """The key result page."""
    router = APIRouter()
    Seen = Annotated[Viewer, Depends(sessions.viewer)]  # noqa: N806 (a type alias over this router's sessions)

    @router.get("/portfolios/{portfolio_id}/key-results/{kr_id}", response_class=HTMLResponse, summary="A key result's history")
    async def key_result(viewer: Seen, portfolio_id: str, kr_id: str) -> HTMLResponse:
        base = f"/v1/portfolios/{portfolio_id}"
        kr = await backend.get("checkins", f"{base}/key-results/{kr_id}", viewer.token)
        (records, more), node, progress, alerts, delivery = await asyncio.gather(
            history(backend, viewer, base, kr_id),
            optional(backend.get("rollup", f"{base}/nodes/{kr_id}", viewer.token), None),
            optional(backend.get("rollup", f"{base}/nodes/{kr_id}/history", viewer.token, limit=1000), {"items": []}),
            optional(backend.get("drift", f"{base}/alerts", viewer.token, node_id=kr_id), {"items": []}),
            optional(backend.get("drift", f"{base}/key-results/{kr_id}/delivery", viewer.token), {"items": []}),
        )
        timeline = [r for r in records if r["type"] in TIMELINE_TYPES]
        chart = build_chart(kr, records, progress["items"], viewer, datetime.now(UTC))
        return pages.render(
            "key_result.html",
            viewer,
            portfolio_id=portfolio_id,
            kr=kr,
            node=node,
            inputs=contributions(node) if node else [],
            chart=history_chart(chart, title=f"{kr['title']}: value, progress and confidence over time"),
            series=table_rows(chart),
            timeline=list(reversed(timeline)),
            labels=marker_labels(timeline),
            more=more,
            alerts=alerts["items"],
            delivery=delivery["items"],
        )

    return router


async def history(backend: Backend, viewer: Viewer, base: str, kr_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The key result's records, oldest first (at most MAX_RECORDS), and whether there were more."""
    records: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None and len(records) < MAX_RECORDS:
        page = await backend.get("checkins", f"{base}/key-results/{kr_id}/history", viewer.token, after=after, limit=PAGE)
        records += page["items"]
        after = page["next"]
    return records, after is not None


async def optional(call: Any, fallback: Any) -> Any:
    """What an API answers, or `fallback` when it does not know the thing yet (404) — the page shows what there is."""
    try:
        return await call
    except ApiError as exc:
        if exc.status == 404:
            return fallback
        raise


def moment_of(record: dict[str, Any]) -> datetime:
    """When a record's event happened in the world: a value when it was observed, anything else when it occurred."""
    observed = record["data"].get("observed_at") if record["type"] == "ValueObserved" else None
    return parse_moment(observed or record["occurred_at"])


def build_chart(
    kr: dict[str, Any], records: list[dict[str, Any]], scores: list[dict[str, Any]], viewer: Viewer, now: datetime
) -> HistoryChart:
    """The chart's series: values, targets, confidence and markers from the history; progress from the published scores."""
    values: list[Point] = []
    targets: list[Point] = []
    confidence: list[Point] = []
    markers: list[Marker] = []
    when = {r["event_id"]: moment_of(r) for r in records}
    for record in records:
        at, data = moment_of(record), record["data"]
        if record["type"] == "KeyResultDefined" and data.get("target") is not None:
            targets.append((at, float(data["target"])))
        elif record["type"] == "ValueObserved":
            values.append((at, float(data["value"])))
        elif record["type"] == "CheckInRecorded":
            confidence.append((at, float(data["confidence"])))
    by_id = {r["event_id"]: r for r in records}
    for event_id, label in marker_labels([r for r in records if r["type"] in TIMELINE_TYPES]).items():
        found = by_id[event_id]
        kind = {"T": "target", "R": "plan", "E": "escalation"}[label[0]]
        markers.append(Marker(moment_of(found), label, kind))
        if kind == "target":
            targets.append((moment_of(found), float(found["data"]["new_target"])))
    progress = [(when.get(s.get("source_event_id", "")) or parse_moment(s["as_of"]), float(s["progress"])) for s in scores]
    moments = [moment_of(r) for r in records] + [t for t, _ in progress]
    start = min(moments) if moments else now
    return HistoryChart(
        start=start,
        end=max([now, *moments]),
        zone=viewer.zone,
        unit=kr.get("unit") or "",
        values=sorted(values),
        baseline=kr.get("baseline"),
        targets=sorted(targets),
        progress=sorted(progress),
        confidence=sorted(confidence),
        markers=markers,
    )


def marker_labels(timeline: list[dict[str, Any]]) -> dict[str, str]:
    """Short labels for the events drawn on the chart, by event id: T1, T2… target changes, R1… plans, E1… escalations."""
    prefixes = {"TargetChanged": "T", "RecoveryPlanFiled": "R", "KeyResultEscalated": "E"}
    counts: dict[str, int] = {}
    labels = {}
    for record in timeline:
        prefix = prefixes.get(record["type"])
        if prefix:
            counts[prefix] = counts.get(prefix, 0) + 1
            labels[record["event_id"]] = f"{prefix}{counts[prefix]}"
    return labels


def table_rows(chart: HistoryChart) -> list[dict[str, Any]]:
    """The chart's points as rows (the text alternative to the picture), oldest first."""
    rows = [{"at": t, "series": "value", "value": v} for t, v in chart.values]
    rows += [{"at": t, "series": "target", "value": v} for t, v in chart.targets]
    rows += [{"at": t, "series": "progress", "value": v} for t, v in chart.progress]
    rows += [{"at": t, "series": "confidence", "value": v} for t, v in chart.confidence]
    return sorted(rows, key=lambda r: (r["at"], r["series"]))
