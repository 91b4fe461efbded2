"""The charts drawn on the server: a score's sparkline and a key result's history, each with its text alternative."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from okr_web.charts import HistoryChart, Marker, history_chart, sparkline

START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(days=28)


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def points_of(svg: ET.Element, kind: str | None = None) -> list[tuple[float, float]]:
    """The coordinates of a chart's polyline (the one of class `kind`, if given)."""
    line = next(p for p in svg.iter("polyline") if kind is None or p.get("class") == kind)
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in line.get("points", "").split())]


MONTH = HistoryChart(
    start=START,
    end=END,
    zone=ZoneInfo("Europe/Berlin"),
    unit="%",
    values=[(day(7), 23.0), (day(14), 26.0), (day(21), 29.0)],
    baseline=20.0,
    targets=[(START, 40.0), (day(15), 38.0)],
    progress=[(day(7), 0.15), (day(14), 0.3), (day(21), 0.5)],
    confidence=[(day(7), 0.7), (day(21), 0.6)],
    markers=[Marker(day(15), "T1", "target")],
)
"""A month of a key result: three values, two check-ins, a target change, progress from the rollup."""


def test_a_sparkline_without_points_says_there_is_no_history_yet() -> None:
    svg = ET.fromstring(sparkline([], START, END, label="Grow"))
    assert svg.findtext("title") == "Grow: no history yet"
    assert svg.get("aria-label") == "Grow: no history yet"
    assert list(svg.iter("polyline")) == []


def test_a_sparkline_of_one_point_holds_it_flat_to_the_end_and_dots_the_last_value() -> None:
    svg = ET.fromstring(sparkline([(day(7), 0.5)], START, END, label="Grow"))
    (first, last) = points_of(svg)
    assert first[1] == last[1]
    assert last[0] == 117.0  # the right edge: the score holds until now
    dot = svg.find("circle")
    assert dot is not None
    assert (float(dot.get("cx", "")), float(dot.get("cy", ""))) == last
    assert svg.findtext("title") == "Grow: 50% to 50%"


def test_a_sparkline_clamps_values_outside_zero_to_one_inside_the_picture() -> None:
    svg = ET.fromstring(sparkline([(day(1), -0.5), (day(2), 1.7), (day(3), 0.5)], START, END, label="Grow"))
    heights = [y for _, y in points_of(svg)]
    assert min(heights) == 3.0  # the top padding: 100%
    assert max(heights) == 25.0  # the bottom padding: 0%
    assert svg.findtext("title") == "Grow: -50% to 50%"  # the text says what was scored, unclamped


def test_a_sparkline_escapes_its_label() -> None:
    drawn = str(sparkline([(day(1), 0.5)], START, END, label="<script>alert(1)</script>"))
    assert "<script>" not in drawn
    assert "&lt;script&gt;" in drawn


def test_the_history_chart_has_one_circle_per_value_and_one_square_per_check_in() -> None:
    svg = ET.fromstring(history_chart(MONTH, title="Activated"))
    assert len([c for c in svg.iter("circle") if c.get("class") == "value"]) == 3
    assert len([r for r in svg.iter("rect") if r.get("class") == "confidence"]) == 2


def test_the_history_chart_draws_only_the_markers_inside_its_time_range() -> None:
    markers = [Marker(day(-3), "R1", "plan"), Marker(day(15), "T1", "target"), Marker(END + timedelta(days=1), "E1", "escalation")]
    svg = ET.fromstring(history_chart(replace(MONTH, markers=markers), title="Activated"))
    drawn = [g for g in svg.iter("g") if "marker" in g.get("class", "").split()]
    assert [(g.get("class"), g.findtext("text")) for g in drawn] == [("marker target", "T1")]


def test_the_history_chart_is_titled_and_described_in_words() -> None:
    svg = ET.fromstring(history_chart(MONTH, title="Activated: value, progress and confidence"))
    assert svg.get("role") == "img"
    assert svg.findtext("title") == "Activated: value, progress and confidence"
    assert svg.findtext("desc") == (
        "3 values, 2 check-ins, 3 progress changes and 1 marked events between 01 Oct 2026 and 29 Oct 2026; "
        "the same data is in the table below."
    )


def test_the_history_chart_escapes_a_title_with_markup() -> None:
    drawn = str(history_chart(MONTH, title="<script>alert(1)</script> & more"))
    assert "<script>" not in drawn
    assert ET.fromstring(drawn).findtext("title") == "<script>alert(1)</script> & more"


def test_the_baseline_is_drawn_only_when_there_is_one() -> None:
    with_baseline = ET.fromstring(history_chart(MONTH, title="x"))
    without = ET.fromstring(history_chart(replace(MONTH, baseline=None), title="x"))
    assert [line.get("class") for line in with_baseline.iter("line")].count("baseline") == 1
    assert "baseline" not in [line.get("class") for line in without.iter("line")]


def test_the_target_is_a_staircase_held_to_the_end() -> None:
    svg = ET.fromstring(history_chart(MONTH, title="x"))
    steps = points_of(svg, "target")
    assert len(steps) == 5  # 40 from the start, a step down to 38 at the change, held to the end
    assert steps[0][1] == steps[1][1]
    assert steps[2][1] == steps[3][1] == steps[4][1]
    assert steps[1][0] == steps[2][0]
    assert steps[-1][0] == 744.0


def test_a_chart_without_any_data_still_draws_its_panels() -> None:
    empty = replace(MONTH, values=[], targets=[], progress=[], confidence=[], markers=[], baseline=None)
    svg = ET.fromstring(history_chart(empty, title="Nothing yet"))
    assert len([r for r in svg.iter("rect") if r.get("class") == "panel"]) == 2
    assert list(svg.iter("polyline")) == []
