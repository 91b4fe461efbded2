"""The monthly executive readout: a one-page scorecard, the worst exceptions, reallocation requests and strategic questions.

Built from two API documents (the rollup's scorecard and the drift service's exceptions
view) and rendered as an e-mail (HTML with inline CSS and tables, plus a plain-text part
with the same content). Nothing is scored here: the readout picks, orders and formats.

Numbers read one way everywhere: scores and trend deltas as whole percents (points),
confidence with two decimals or "unknown". Exceptions are ranked by severity (critical
first), then lowest confidence (unknown last), and at most five are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined
from pydantic import BaseModel, ConfigDict

from okr_notifier.messages import EmailContent

MAX_EXCEPTIONS = 5
MIN_EXCEPTIONS = 3
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
RULE_WORDS = {
    "stale": "stale",
    "retire_recommended": "retirement recommended",
    "off_track": "off track",
    "plan_overdue": "recovery plan overdue",
    "not_moving": "not moving",
    "confidence_falling": "confidence falling",
    "busy_but_flat": "busy but flat",
    "output_phrased": "phrased as an output",
    "not_measurable": "not measurable",
    "too_many_objectives": "too many objectives",
    "too_many_key_results": "too many key results",
    "over_allocated": "squad over capacity",
    "off_balance": "capacity off balance",
}
OPTION_WORDS = {
    "change_tactic": "change the tactic",
    "change_target": "change the target",
    "change_resources": "change the resources",
}
NO_PLAN = "no recovery plan filed"
NONE_THIS_MONTH = "None this month."


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectiveLine(_Frozen):
    """One portfolio objective on the scorecard."""

    title: str
    score: float
    confidence: float | None
    arrow: str
    direction: str
    delta: float
    driver_product: str | None
    driver_movement: float | None
    mixed_methods: bool


class RecoveryPlan(_Frozen):
    """The recovery plan filed for an exception."""

    owner: str
    decision_needed: str
    option: str


class ExceptionLine(_Frozen):
    """A node with active alerts, as the drift service's exceptions view lists it."""

    node_id: str
    title: str
    product_id: str | None
    owner: str | None
    severity: str
    confidence: float | None
    rules: tuple[str, ...]
    plan: RecoveryPlan | None


class ReadoutInput(_Frozen):
    """Everything one month's readout shows."""

    portfolio_name: str
    month: str
    as_of: str | None
    objectives: tuple[ObjectiveLine, ...]
    exceptions: tuple[ExceptionLine, ...]
    reallocations: tuple[str, ...]
    questions: tuple[str, ...]

    @classmethod
    def from_apis(
        cls,
        portfolio_name: str,
        month: str,
        scorecard: Mapping[str, Any],
        exceptions: Mapping[str, Any],
        reallocations: Sequence[str] = (),
        questions: Sequence[str] = (),
    ) -> ReadoutInput:
        """From `GET /v1/portfolios/{p}/scorecard` (rollup) and the exceptions view (drift), plus what leads asked for."""
        return cls(
            portfolio_name=portfolio_name,
            month=month,
            as_of=scorecard.get("as_of"),
            objectives=tuple(_objective(card) for card in scorecard["objectives"]),
            exceptions=tuple(_exception(node) for product in exceptions["products"] for node in product["nodes"]),
            reallocations=tuple(reallocations),
            questions=tuple(questions),
        )


def _objective(card: Mapping[str, Any]) -> ObjectiveLine:
    trend, driver = card["trend"], card.get("driver")
    return ObjectiveLine(
        title=card["title"],
        score=card["score"],
        confidence=card.get("confidence"),
        arrow=trend["arrow"],
        direction=trend["label"].split()[0],
        delta=trend["delta"],
        driver_product=driver["product_id"] if driver else None,
        driver_movement=driver["movement"] if driver else None,
        mixed_methods=bool(card.get("mixed_methods")),
    )


def _exception(node: Mapping[str, Any]) -> ExceptionLine:
    alerts = node.get("alerts") or []
    plan = node.get("recovery_plan")
    return ExceptionLine(
        node_id=node["node_id"],
        title=node["title"],
        product_id=node.get("product_id"),
        owner=node.get("owner"),
        severity=min((a["severity"] for a in alerts), key=lambda s: SEVERITY_RANK.get(s, len(SEVERITY_RANK)), default="info"),
        confidence=node.get("confidence"),
        rules=tuple(dict.fromkeys(a["rule"] for a in alerts)),
        plan=RecoveryPlan(owner=plan["owner"], decision_needed=plan["decision_needed"], option=plan["option"]) if plan else None,
    )


def chosen_exceptions(readout: ReadoutInput) -> list[ExceptionLine]:
    """The exceptions shown: most severe first, then lowest confidence (unknown last), at most `MAX_EXCEPTIONS`."""

    def rank(item: ExceptionLine) -> tuple[int, bool, float, str, str]:
        unknown = item.confidence is None
        return (SEVERITY_RANK.get(item.severity, len(SEVERITY_RANK)), unknown, item.confidence or 0.0, item.title, item.node_id)

    return sorted(readout.exceptions, key=rank)[:MAX_EXCEPTIONS]


def decisions(exceptions: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Reallocation requests (plans that change the resources) and strategic questions (plans that change the target)."""
    reallocations, questions = [], []
    for product in exceptions.get("products", []):
        for node in product.get("nodes", []):
            plan = node.get("recovery_plan")
            if not plan:
                continue
            line = f"{node.get('title') or node['node_id']}: {plan['decision_needed']} (owner {plan['owner']})"
            if plan.get("option") == "change_resources":
                reallocations.append(line)
            elif plan.get("option") == "change_target":
                questions.append(line)
    return reallocations, questions


def percent(value: float) -> str:
    """A score as a whole percent: 0.625 → "63%"."""
    return f"{_whole(value * 100)}%"


def points(value: float) -> str:
    """A change in score as whole percentage points, signed: 0.08 → "+8 pts"."""
    whole = _whole(value * 100)
    return f"{'+' if whole > 0 else '−' if whole < 0 else '±'}{abs(whole)} pts"


def confidence(value: float | None) -> str:
    """Confidence with two decimals, or "unknown"."""
    return "unknown" if value is None else f"{value:.2f}"


def moment(iso: str) -> str:
    """An ISO 8601 time as a person reads it, in UTC: "2026-03-31 17:00 UTC" (unparseable text is shown as it is)."""
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if parsed.tzinfo else parsed.strftime("%Y-%m-%d %H:%M")


def _whole(value: float) -> int:
    # Half away from zero, as people round (Python's round() goes to even: 62.5 → 62).
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _trend(line: ObjectiveLine) -> str:
    return f"{line.arrow} {line.direction}" + ("" if line.direction == "flat" else f" {_whole(abs(line.delta) * 100)} pts")


def _rows(readout: ReadoutInput) -> list[dict[str, Any]]:
    return [
        {
            "title": line.title,
            "score": percent(line.score),
            "confidence": confidence(line.confidence),
            "trend": _trend(line),
            "direction": line.direction,
            "driver": f"{line.driver_product} ({points(line.driver_movement or 0.0)})" if line.driver_product else "—",
            "mixed": line.mixed_methods,
        }
        for line in readout.objectives
    ]


def _items(readout: ReadoutInput) -> list[dict[str, Any]]:
    return [
        {
            "title": item.title,
            "product": item.product_id or "portfolio",
            "owner": item.owner or "unassigned",
            "severity": item.severity,
            "confidence": confidence(item.confidence),
            "why": ", ".join(RULE_WORDS.get(rule, rule.replace("_", " ")) for rule in item.rules) or "flagged",
            "plan": item.plan
            and {
                "owner": item.plan.owner,
                "decision": item.plan.decision_needed,
                "option": OPTION_WORDS.get(item.plan.option, item.plan.option.replace("_", " ")),
            },
        }
        for item in chosen_exceptions(readout)
    ]


def _exceptions_note(shown: int, total: int) -> str:
    if total == 0:
        return "No off-track exceptions this month."
    if total > shown:
        return f"The {shown} most urgent of {total} exceptions; the rest are in the portfolio sync."
    if total < MIN_EXCEPTIONS:
        return f"Only {total} exception{'s' if total != 1 else ''} this month."
    return ""


def render_readout(readout: ReadoutInput) -> EmailContent:
    """The readout as an e-mail: subject, plain text and one-page HTML (user text escaped)."""
    items = _items(readout)
    context = {
        "name": readout.portfolio_name,
        "month": readout.month,
        "as_of": moment(readout.as_of) if readout.as_of else None,
        "rows": _rows(readout),
        "any_mixed": any(line.mixed_methods for line in readout.objectives),
        "items": items,
        "note": _exceptions_note(len(items), len(readout.exceptions)),
        "no_plan": NO_PLAN,
        "none_text": NONE_THIS_MONTH,
        "reallocations": readout.reallocations,
        "questions": readout.questions,
    }
    return EmailContent(
        subject=f"{readout.portfolio_name} executive readout · {readout.month}",
        text=_TEXT_ENV.get_template("readout.txt").render(context),
        html=_HTML_ENV.get_template("readout.html").render(context),
    )


_CELL = "padding:6px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top"
_HEAD = "padding:6px 8px;border-bottom:2px solid #1f2933;text-align:left;font-size:12px;color:#52606d;text-transform:uppercase"
_H2 = "font-size:16px;margin:22px 0 8px;color:#1f2933"
_TAG = "font-weight:bold;text-transform:uppercase;font-size:11px"
_SMALL = "font-size:12px;color:#52606d"
_COLOURS = {"up": "#1e7e34", "down": "#c0392b", "flat": "#52606d"}
_SEVERITY_COLOURS = {"critical": "#c0392b", "warning": "#b7791f", "info": "#52606d"}

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ name }} executive readout · {{ month }}</title></head>
<body style="margin:0;padding:0;background:#f5f7fa">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f5f7fa">
<tr><td align="center" style="padding:16px">
<table role="presentation" width="960" cellpadding="0" cellspacing="0"
 style="width:960px;max-width:960px;background:#ffffff;font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#1f2933">
<tr><td style="padding:20px 24px">
<h1 style="font-size:22px;margin:0">{{ name }} · executive readout</h1>
<p style="margin:4px 0 0;color:#52606d">{{ month }}{% if as_of %} · scores as of {{ as_of }}{% endif %}</p>

<h2 style="{{ h2 }}">Scorecard</h2>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse">
<tr><th style="{{ head }}">Objective</th><th style="{{ head }}">Score</th><th style="{{ head }}">Confidence</th>
<th style="{{ head }}">Trend</th><th style="{{ head }}">Driving product</th></tr>
{% for row in rows %}<tr>
<td style="{{ cell }}">{{ row.title }}{% if row.mixed %} <span title="mixed scoring methods">*</span>{% endif %}</td>
<td style="{{ cell }};font-weight:bold">{{ row.score }}</td>
<td style="{{ cell }}">{{ row.confidence }}</td>
<td style="{{ cell }};color:{{ colours.get(row.direction, '#52606d') }};white-space:nowrap">{{ row.trend }}</td>
<td style="{{ cell }}">{{ row.driver }}</td>
</tr>{% endfor %}
</table>
{% if any_mixed %}<p style="margin:6px 0 0;font-size:12px;color:#52606d">* scored with mixed methods</p>{% endif %}

<h2 style="{{ h2 }}">Off-track exceptions</h2>
{% if note %}<p style="margin:0 0 8px;color:#52606d">{{ note }}</p>{% endif %}
{% if items %}<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse">
<tr><th style="{{ head }}">Exception</th><th style="{{ head }}">Confidence</th><th style="{{ head }}">Recovery owner</th>
<th style="{{ head }}">Decision needed</th></tr>
{% for item in items %}<tr>
<td style="{{ cell }}"><span style="color:{{ severities.get(item.severity, '#52606d') }};{{ tag }}">{{ item.severity }}</span>
<strong>{{ item.title }}</strong><br>
<span style="{{ small }}">{{ item.product }} · owner {{ item.owner }} · {{ item.why }}</span></td>
<td style="{{ cell }}">{{ item.confidence }}</td>
{% if item.plan %}<td style="{{ cell }}">{{ item.plan.owner }}</td>
<td style="{{ cell }}">{{ item.plan.decision }}<br><span style="{{ small }}">option: {{ item.plan.option }}</span></td>
{% else %}<td colspan="2" style="{{ cell }};color:#c0392b;font-weight:bold">{{ no_plan }}</td>{% endif %}
</tr>{% endfor %}
</table>{% endif %}

<h2 style="{{ h2 }}">Reallocation requests</h2>
{% if reallocations %}<ul style="margin:0;padding-left:20px">
{% for line in reallocations %}<li style="margin:0 0 4px">{{ line }}</li>
{% endfor %}</ul>
{% else %}<p style="margin:0;color:#52606d">{{ none_text }}</p>{% endif %}

<h2 style="{{ h2 }}">Strategic questions</h2>
{% if questions %}<ol style="margin:0;padding-left:20px">
{% for line in questions %}<li style="margin:0 0 4px">{{ line }}</li>
{% endfor %}</ol>
{% else %}<p style="margin:0;color:#52606d">{{ none_text }}</p>{% endif %}
</td></tr></table>
</td></tr></table>
</body></html>
"""

_TEXT = """{{ name }} · executive readout · {{ month }}
{% if as_of %}Scores as of {{ as_of }}
{% endif %}
SCORECARD
{% for row in rows %}- {{ row.title }}{% if row.mixed %} *{% endif %}
  score {{ row.score }} · confidence {{ row.confidence }} · trend {{ row.trend }} · driving product {{ row.driver }}
{% endfor %}{% if any_mixed %}* scored with mixed methods
{% endif %}
OFF-TRACK EXCEPTIONS
{% if note %}{{ note }}
{% endif %}{% for item in items %}{{ loop.index }}. [{{ item.severity | upper }}] {{ item.title }}
   {{ item.product }} · owner {{ item.owner }} · confidence {{ item.confidence }} · {{ item.why }}
{% if item.plan %}   recovery owner: {{ item.plan.owner }}
   decision needed: {{ item.plan.decision }} (option: {{ item.plan.option }})
{% else %}   {{ no_plan | upper }}
{% endif %}{% endfor %}
REALLOCATION REQUESTS
{% for line in reallocations %}- {{ line }}
{% else %}{{ none_text }}
{% endfor %}
STRATEGIC QUESTIONS
{% for line in questions %}{{ loop.index }}. {{ line }}
{% else %}{{ none_text }}
{% endfor %}"""

_GLOBALS = {"cell": _CELL, "head": _HEAD, "h2": _H2, "tag": _TAG, "small": _SMALL, "colours": _COLOURS, "severities": _SEVERITY_COLOURS}
_HTML_ENV = Environment(loader=DictLoader({"readout.html": _HTML}), autoescape=True, undefined=StrictUndefined)
_HTML_ENV.globals.update(_GLOBALS)
_TEXT_ENV = Environment(loader=DictLoader({"readout.txt": _TEXT}), autoescape=False, undefined=StrictUndefined)  # noqa: S701 - the plain-text part is never HTML
