"""The executive readout: scorecard numbers, the chosen exceptions and their plans, empty sections, escaping, the text part."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from okr_notifier.readout import NO_PLAN, ReadoutInput, confidence, percent, points, render_readout

PLAN_AUTH = {"owner": "dana.lee", "option": "change_resources", "decision_needed": "Move two engineers to Payments for six weeks"}
PLAN_CRASH = {"owner": "sam.ortiz", "option": "change_target", "decision_needed": "Accept 99.2% this quarter"}


def card(
    title: str, score: float, conf: float | None, arrow: str, label: str, delta: float, driver: tuple[str, float] | None
) -> dict[str, Any]:
    return {
        "objective_id": title.lower().replace(" ", "-"),
        "title": title,
        "cycle_id": "2026-Q1",
        "status": "active",
        "score": score,
        "confidence": conf,
        "trend": {"arrow": arrow, "label": label, "delta": delta, "from": score - delta, "window_days": 30},
        "driver": {"product_id": driver[0], "movement": driver[1]} if driver else None,
        "mixed_methods": False,
        "as_of": "2026-03-31T17:00:00+00:00",
    }


def node(title: str, severity: str, conf: float | None, plan: dict[str, str] | None = None, product: str = "checkout") -> dict[str, Any]:
    return {
        "node_id": f"kr-{title.lower().replace(' ', '-')}",
        "node_kind": "key_result",
        "title": title,
        "product_id": product,
        "owner": "owner.of." + title.split()[0].lower(),
        "confidence": conf,
        "recovery_plan": {"at": "2026-03-24T10:00:00+00:00", **plan} if plan else None,
        "alerts": [{"alert_id": f"a-{title}", "rule": "off_track", "severity": severity, "state": "raised", "summary": "", "asked": ""}],
    }


SCORECARD: dict[str, Any] = {
    "portfolio_id": "acme",
    "as_of": "2026-03-31T17:00:00+00:00",
    "window_days": 30,
    "objectives": [
        card("Grow revenue", 0.625, 0.71, "↑", "up 0.08", 0.08, ("payments", 0.052)),
        card("Effortless checkout", 0.41, 0.384, "↓", "down 0.06", -0.06, ("checkout", -0.045)),
        card("Win mobile", 0.55, None, "→", "flat 0.00", 0.002, None),
        card("Cut cost to serve", 0.734, 0.82, "↑", "up 0.12", 0.12, ("mobile", 0.07)),
    ],
}


def exceptions(*nodes: dict[str, Any]) -> dict[str, Any]:
    by_product: dict[str, list[dict[str, Any]]] = {}
    for item in nodes:
        by_product.setdefault(item["product_id"], []).append(item)
    return {"portfolio_id": "acme", "products": [{"product_id": p, "nodes": items} for p, items in sorted(by_product.items())]}


SEVEN = exceptions(
    node("Guest checkout", "warning", 0.40, PLAN_CRASH),
    node("Card auth", "critical", 0.31, PLAN_AUTH, product="payments"),
    node("Checkout conversion", "critical", 0.22),
    node("Android crashes", "warning", 0.35, PLAN_CRASH, product="mobile"),
    node("Onboarding time", "warning", None, PLAN_CRASH, product="mobile"),
    node("Refund speed", "info", 0.10, PLAN_AUTH, product="payments"),
    node("Search relevance", "warning", 0.45, PLAN_AUTH),
)


def readout(
    exc: dict[str, Any] | None = None, reallocations: tuple[str, ...] = ("Two engineers to Payments",), **kwargs: Any
) -> ReadoutInput:
    return ReadoutInput.from_apis(
        "Acme",
        "March 2026",
        kwargs.get("scorecard", SCORECARD),
        exc or SEVEN,
        list(reallocations),
        kwargs.get("questions", ["Fund reliability?"]),
    )


class Tables(HTMLParser):
    """The text of every table row, cell by cell, per top-level content table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.strong: list[str] | None = None
        self.titles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self.cell = []
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")
        elif tag == "strong":
            self.strong = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "strong" and self.strong is not None:
            self.titles.append("".join(self.strong))
            self.strong = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.strong is not None:
            self.strong.append(data)


def parsed(html: str) -> Tables:
    parser = Tables()
    parser.feed(html)
    return parser


def rows(html: str) -> list[list[str]]:
    return [row for row in parsed(html).rows if len(row) >= 3]


def scorecard_rows(html: str) -> list[list[str]]:
    table = rows(html)
    start = table.index(["Objective", "Score", "Confidence", "Trend", "Driving product"])
    return table[start + 1 : start + 1 + len(SCORECARD["objectives"])]


def exception_titles(html: str) -> list[str]:
    """The bold titles of the exceptions table, in order."""
    return parsed(html).titles


def test_scorecard_shows_scores_as_whole_percents_confidence_trend_and_driving_product() -> None:
    html = render_readout(readout()).html
    assert scorecard_rows(html) == [
        ["Grow revenue", "63%", "0.71", "↑ up 8 pts", "payments (+5 pts)"],
        ["Effortless checkout", "41%", "0.38", "↓ down 6 pts", "checkout (−5 pts)"],
        ["Win mobile", "55%", "unknown", "→ flat", "—"],
        ["Cut cost to serve", "73%", "0.82", "↑ up 12 pts", "mobile (+7 pts)"],
    ]


def test_exceptions_are_ranked_by_severity_then_lowest_confidence_and_capped_at_five() -> None:
    content = render_readout(readout())
    titles = exception_titles(content.html)
    assert titles == [
        "Checkout conversion",
        "Card auth",
        "Android crashes",
        "Guest checkout",
        "Search relevance",
    ]
    assert "Onboarding time" not in content.html  # unknown confidence ranks after every known one of its severity
    assert "Refund speed" not in content.html
    assert "The 5 most urgent of 7 exceptions" in content.text


def test_each_exception_shows_its_recovery_owner_and_decision_or_that_no_plan_was_filed() -> None:
    html = render_readout(readout()).html
    table = rows(html)
    start = table.index(["Exception", "Confidence", "Recovery owner", "Decision needed"])
    first, second = table[start + 1], table[start + 2]
    assert first[0] == "critical Checkout conversion checkout · owner owner.of.checkout · off track"
    assert first[1:] == ["0.22", NO_PLAN]
    assert second[1:] == ["0.31", "dana.lee", "Move two engineers to Payments for six weeks option: change the resources"]
    assert f'color:#c0392b;font-weight:bold">{NO_PLAN}</td>' in html


def test_fewer_than_three_exceptions_are_all_shown_with_a_note() -> None:
    two = exceptions(node("Card auth", "warning", 0.31, PLAN_AUTH), node("Checkout conversion", "critical", 0.5))
    content = render_readout(readout(two))
    assert exception_titles(content.html) == ["Checkout conversion", "Card auth"]
    assert "Only 2 exceptions this month." in content.html
    assert "Only 2 exceptions this month." in content.text


def test_no_exceptions_says_so_without_a_table() -> None:
    content = render_readout(readout(exceptions()))
    assert "No off-track exceptions this month." in content.html
    assert "Recovery owner" not in content.html


def test_empty_reallocations_and_questions_read_none_this_month() -> None:
    content = render_readout(readout(reallocations=(), questions=[]))
    assert content.html.count("None this month.") == 2
    assert "REALLOCATION REQUESTS\nNone this month.\n\nSTRATEGIC QUESTIONS\nNone this month." in content.text


def test_reallocations_and_questions_are_listed() -> None:
    content = render_readout(readout(reallocations=("Two engineers to Payments", "Tablet work to Q3"), questions=["Fund reliability?"]))
    assert '<li style="margin:0 0 4px">Tablet work to Q3</li>' in content.html
    assert "- Two engineers to Payments\n- Tablet work to Q3\n" in content.text
    assert "1. Fund reliability?" in content.text
    assert "None this month." not in content.html


def test_script_in_titles_and_requests_is_escaped_in_html_and_plain_in_text() -> None:
    evil = "<script>alert(1)</script>"
    scorecard = {**SCORECARD, "objectives": [card(evil, 0.5, 0.5, "→", "flat 0.00", 0.0, None)]}
    content = render_readout(readout(exceptions(node(evil, "critical", 0.2)), reallocations=(evil,), scorecard=scorecard))
    assert "<script>" not in content.html
    # The objective, the exception's title and its owner (derived from the title here), the reallocation request.
    assert content.html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == content.text.count(evil) == 4


def test_plain_text_mirrors_every_number_of_the_html() -> None:
    content = render_readout(readout())
    for row in scorecard_rows(content.html):
        assert f"- {row[0]}\n  score {row[1]} · confidence {row[2]} · trend {row[3]} · driving product {row[4]}" in content.text
    numbered = [line for line in content.text.splitlines() if line[:3] in {"1. ", "2. ", "3. ", "4. ", "5. ", "6. "} and "[" in line]
    assert [line.split("] ")[1] for line in numbered] == [
        "Checkout conversion",
        "Card auth",
        "Android crashes",
        "Guest checkout",
        "Search relevance",
    ]
    assert "confidence 0.22 · off track\n   NO RECOVERY PLAN FILED" in content.text
    assert (
        "recovery owner: dana.lee\n   decision needed: Move two engineers to Payments for six weeks (option: change the resources)"
        in content.text
    )


def test_subject_and_header_name_the_portfolio_month_and_moment() -> None:
    content = render_readout(readout())
    assert content.subject == "Acme executive readout · March 2026"
    assert "scores as of 2026-03-31 17:00 UTC" in content.html
    assert content.text.startswith("Acme · executive readout · March 2026\nScores as of 2026-03-31 17:00 UTC\n")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.625, "63%"), (0.0, "0%"), (1.0, "100%"), (0.004, "0%"), (0.995, "100%"), (0.345, "35%")],
)
def test_scores_round_half_up_to_whole_percents(value: float, shown: str) -> None:
    assert percent(value) == shown


def test_movement_is_signed_points_and_confidence_two_decimals_or_unknown() -> None:
    assert [points(0.052), points(-0.045), points(0.0)] == ["+5 pts", "−5 pts", "±0 pts"]
    assert [confidence(0.384), confidence(1.0), confidence(None)] == ["0.38", "1.00", "unknown"]
