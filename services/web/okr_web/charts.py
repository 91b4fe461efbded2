"""Charts drawn on the server as inline SVG: a score's sparkline and a key result's history.

No script and no chart library: the page is complete as served, prints as it looks,
and each chart carries a text alternative (its `<title>`/`<desc>`, and the page puts
the same numbers in a table beside it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

Point = tuple[datetime, float]


@dataclass(frozen=True)
class Marker:
    """Something that happened to a key result, drawn as a labelled vertical line (`T1` a target change, `R1` a plan)."""

    at: datetime
    label: str
    kind: str


def sparkline(points: Sequence[Point], start: datetime, end: datetime, *, label: str) -> Markup:
    """A 0–100% line of a score between `start` and `end`, flat from its last value to `end`."""
    width, height, pad = 120, 28, 3
    if not points:
        return Markup('<svg class="spark" role="img" width="{w}" height="{h}" aria-label="{l}"><title>{l}</title></svg>').format(
            w=width, h=height, l=f"{label}: no history yet"
        )
    x = _scale(start, end, pad, width - pad)
    y = _linear(0.0, 1.0, height - pad, pad)
    steps = _steps([(t, _clamp(v)) for t, v in points], end)
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in steps)
    last = steps[-1]
    text = f"{label}: {_pct(points[0][1])} to {_pct(points[-1][1])}"
    return Markup(
        '<svg class="spark" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-label="{t}"><title>{t}</title>'
        '<polyline points="{line}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        '<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="currentColor"/></svg>'
    ).format(w=width, h=height, t=text, line=line, cx=x(last[0]), cy=y(last[1]))


@dataclass(frozen=True)
class HistoryChart:
    """What a key result's chart shows: its values against baseline and target, and progress and confidence, over time."""

    start: datetime
    end: datetime
    zone: ZoneInfo
    unit: str
    values: Sequence[Point]
    baseline: float | None
    targets: Sequence[Point]
    progress: Sequence[Point]
    confidence: Sequence[Point]
    markers: Sequence[Marker]


def history_chart(chart: HistoryChart, *, title: str) -> Markup:
    """Two panels sharing a time axis: the measured value (with baseline and target), then progress and confidence (0–100%)."""
    width, left, right, panel, gap, top = 760, 64, 16, 150, 44, 12
    x = _scale(chart.start, chart.end, left, width - right)
    parts = [_axis_x(chart, x, top + 2 * panel + gap)]
    value_top, ratio_top = top, top + panel + gap
    numbers = [v for _, v in (*chart.values, *chart.targets)] + ([chart.baseline] if chart.baseline is not None else [])
    low, high = _bounds(numbers)
    y_value = _linear(low, high, value_top + panel, value_top)
    parts += _panel(left, width - right, value_top, panel, [(low, y_value(low)), (high, y_value(high))], chart.unit)
    if chart.baseline is not None:
        parts.append(_hline(left, width - right, y_value(chart.baseline), "baseline", f"baseline {chart.baseline:g}"))
    parts.append(_path(_steps(chart.targets, chart.end), x, y_value, "target", step=True))
    parts.append(_path(chart.values, x, y_value, "value"))
    parts += [_dot(x(t), y_value(v), "value") for t, v in chart.values]
    y_ratio = _linear(0.0, 1.0, ratio_top + panel, ratio_top)
    parts += _panel(left, width - right, ratio_top, panel, [(0.0, y_ratio(0.0)), (0.5, y_ratio(0.5)), (1.0, y_ratio(1.0))], "", ratio=True)
    parts.append(_path([(t, _clamp(v)) for t, v in _steps(chart.progress, chart.end)], x, y_ratio, "progress", step=True))
    parts.append(_path(chart.confidence, x, y_ratio, "confidence"))
    parts += [_dot(x(t), y_ratio(v), "confidence") for t, v in chart.confidence]
    parts += [_marker(m, x(m.at), top, top + 2 * panel + gap) for m in chart.markers if chart.start <= m.at <= chart.end]
    height = top + 2 * panel + gap + 30
    desc = (
        f"{len(chart.values)} values, {len(chart.confidence)} check-ins, {len(chart.progress)} progress changes and "
        f"{len(chart.markers)} marked events between {chart.start.astimezone(chart.zone):%d %b %Y} and "
        f"{chart.end.astimezone(chart.zone):%d %b %Y}; the same data is in the table below."
    )
    return Markup(
        '<svg class="history" role="img" viewBox="0 0 {w} {h}" aria-labelledby="chart-title chart-desc">'
        '<title id="chart-title">{title}</title><desc id="chart-desc">{desc}</desc>{body}</svg>'
    ).format(w=width, h=height, title=title, desc=desc, body=Markup("").join(parts))


def _panel(
    left: float, right: float, top: float, height: float, ticks: Sequence[tuple[float, float]], unit: str, *, ratio: bool = False
) -> list[Markup]:
    parts = [Markup('<rect class="panel" x="{x}" y="{y}" width="{w}" height="{h}"/>').format(x=left, y=top, w=right - left, h=height)]
    for value, y in ticks:
        text = f"{round(value * 100)}%" if ratio else f"{value:.4g}"
        parts.append(
            Markup(
                '<line class="grid" x1="{l}" x2="{r}" y1="{y:.1f}" y2="{y:.1f}"/><text class="tick" x="{tx}" y="{ty:.1f}">{t}</text>'
            ).format(l=left, r=right, y=y, tx=left - 6, ty=y + 4, t=text)
        )
    if unit:
        parts.append(Markup('<text class="unit" x="{x}" y="{y}">{u}</text>').format(x=left - 6, y=top - 2, u=unit))
    return parts


def _axis_x(chart: HistoryChart, x: Callable[[datetime], float], bottom: float) -> Markup:
    days = max(1, (chart.end - chart.start).days)
    every = timedelta(days=7 if days > 21 else 1 if days <= 7 else 2)
    local = chart.start.astimezone(chart.zone).replace(hour=0, minute=0, second=0, microsecond=0)
    ticks: list[datetime] = []
    moment = local + timedelta(days=1)
    while moment < chart.end and len(ticks) < 16:
        ticks.append(moment)
        moment += every
    labels = [
        Markup('<text class="tick" text-anchor="middle" x="{x:.1f}" y="{y}">{t}</text>').format(x=x(t), y=bottom + 18, t=f"{t.day} {t:%b}")
        for t in ticks
    ]
    return Markup("").join(labels)


def _path(points: Sequence[Point], x: Callable[[datetime], float], y: Callable[[float], float], kind: str, *, step: bool = False) -> Markup:
    if not points:
        return Markup("")
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in (_stepped(points) if step else points))
    return Markup('<polyline class="{k}" points="{p}"/>').format(k=kind, p=line)


def _dot(cx: float, cy: float, kind: str) -> Markup:
    if kind == "confidence":  # a square, so check-ins read apart from values without colour
        return Markup('<rect class="{k}" x="{x:.1f}" y="{y:.1f}" width="6" height="6"/>').format(k=kind, x=cx - 3, y=cy - 3)
    return Markup('<circle class="{k}" cx="{cx:.1f}" cy="{cy:.1f}" r="3"/>').format(k=kind, cx=cx, cy=cy)


def _hline(left: float, right: float, y: float, kind: str, label: str) -> Markup:
    return Markup(
        '<line class="{k}" x1="{l}" x2="{r}" y1="{y:.1f}" y2="{y:.1f}"/><text class="note" x="{tx}" y="{ty:.1f}">{t}</text>'
    ).format(k=kind, l=left, r=right, y=y, tx=right - 4, ty=y - 4, t=label)


def _marker(marker: Marker, x: float, top: float, bottom: float) -> Markup:
    return Markup(
        '<g class="marker {k}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{t}" y2="{b}"/><text x="{tx:.1f}" y="{ty}">{l}</text></g>'
    ).format(k=escape(marker.kind), x=x, t=top, b=bottom, tx=x + 3, ty=top + 10, l=marker.label)


def _steps(points: Sequence[Point], end: datetime) -> list[Point]:
    """The points, carried on flat to `end` (a value holds until the next one)."""
    ordered = sorted(points, key=lambda p: p[0])
    return [*ordered, (end, ordered[-1][1])] if ordered and ordered[-1][0] < end else ordered


def _stepped(points: Sequence[Point]) -> list[Point]:
    """A staircase through the points: each value holds until the next one starts."""
    out: list[Point] = []
    for (t, v), following in zip(points, [*points[1:], None], strict=True):
        out.append((t, v))
        if following is not None:
            out.append((following[0], v))
    return out


def _bounds(numbers: Sequence[float]) -> tuple[float, float]:
    if not numbers:
        return 0.0, 1.0
    low, high = min(numbers), max(numbers)
    if low == high:
        return low - 1.0, high + 1.0
    margin = (high - low) * 0.08
    return low - margin, high + margin


def _scale(start: datetime, end: datetime, low: float, high: float) -> Callable[[datetime], float]:
    span = max((end - start).total_seconds(), 1.0)
    return lambda t: low + (high - low) * min(max((t - start).total_seconds() / span, 0.0), 1.0)


def _linear(low: float, high: float, at_low: float, at_high: float) -> Callable[[float], float]:
    span = (high - low) or 1.0
    return lambda v: at_low + (at_high - at_low) * (v - low) / span


def _clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _pct(value: float) -> str:
    return f"{round(value * 100)}%"
