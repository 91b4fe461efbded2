"""The messages a person acts on: Slack Block Kit (within Slack's limits) and e-mail (HTML and plain text).

Each raised alert says what happened (the summary), why (the facts that raised it), what
is asked (and, for `off_track` and `plan_overdue`, the three recovery options), its
severity, and links to the key result. Acknowledged and resolved messages are short
follow-ups. Text written by people (summary, asked, facts, notes, reasons, names) is
escaped: `& < >` for Slack mrkdwn, so `<!channel>` or `<https://evil|x>` are shown, never
acted on; HTML by Jinja2's autoescape.

Slack limits kept (Block Kit reference, python-slack-sdk): header ≤ 150 characters, section text ≤ 3000,
≤ 50 blocks, ≤ 10 context elements, and every block's text together under 12,000
(Slack refused ~13k with `msg_blocks_too_long`): each part has its own budget, and text
is cut at a word boundary, never inside an escape, and marked with "…".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from jinja2 import DictLoader, Environment, StrictUndefined

from okr_contracts.alerts import AlertRaised, DriftRule, Severity

AlertState = Literal["raised", "acknowledged", "resolved"]

HEADER_MAX = 150
SECTION_MAX = 3000
TOTAL_BLOCK_TEXT_MAX = 12_000
FALLBACK_MAX = 3000
FACTS_SHOWN_MAX = 30
NOTE_MAX = 1500
FACT_MAX = 300
LINK_MAX = 2000
ELLIPSIS = "…"

RULE_TITLES: dict[DriftRule, str] = {
    DriftRule.STALE: "Stale key result",
    DriftRule.RETIRE_RECOMMENDED: "Retirement recommended",
    DriftRule.OFF_TRACK: "Off track",
    DriftRule.PLAN_OVERDUE: "Recovery plan overdue",
    DriftRule.NOT_MOVING: "Not moving",
    DriftRule.CONFIDENCE_FALLING: "Confidence falling",
    DriftRule.BUSY_BUT_FLAT: "Busy but flat",
    DriftRule.OUTPUT_PHRASED: "Phrased as an output",
    DriftRule.NOT_MEASURABLE: "Not measurable",
    DriftRule.TOO_MANY_OBJECTIVES: "Too many objectives",
    DriftRule.TOO_MANY_KEY_RESULTS: "Too many key results",
    DriftRule.OVER_ALLOCATED: "Squad over capacity",
    DriftRule.OFF_BALANCE: "Capacity off balance",
}
RULE_NODE_KINDS: dict[DriftRule, str] = {
    DriftRule.TOO_MANY_OBJECTIVES: "team",
    DriftRule.OVER_ALLOCATED: "team",
    DriftRule.OFF_BALANCE: "cycle",
}
"""Rules about a squad or a cycle; every other rule is about a key result or an objective."""
PAGELESS_KINDS = frozenset({"team", "cycle"})
"""Kinds of node with no page of their own: their link is the scorecard's capacity section."""
SEVERITY_ICONS: dict[Severity, str] = {Severity.INFO: "ℹ️", Severity.WARNING: "⚠️", Severity.CRITICAL: "🚨"}
RECOVERY_RULES = frozenset({DriftRule.OFF_TRACK, DriftRule.PLAN_OVERDUE})
RECOVERY_OPTIONS: tuple[str, ...] = (
    "Change the tactic: keep the target, try another way to reach it",
    "Change the target: re-forecast what is realistic this cycle",
    "Change the resources: ask for people, time or budget",
)
OPTIONS_INTRO = "File a recovery plan choosing one option, with an owner and the decision needed:"
STATE_TITLES: dict[AlertState, str] = {"raised": "", "acknowledged": "Acknowledged: ", "resolved": "Resolved: "}


def kr_link(link_base: str, portfolio_id: str, node_id: str) -> str:
    """The key result's page: `{link_base}/portfolios/{portfolio}/nodes/{node}`, ids percent-encoded."""
    return f"{link_base.rstrip('/')}/portfolios/{quote(portfolio_id, safe=':')}/nodes/{quote(node_id, safe=':')}"


def node_link(link_base: str, portfolio_id: str, node_id: str, node_kind: str) -> str:
    """A node's page, or for a squad or a cycle (no page of their own) the scorecard's capacity section."""
    if node_kind in PAGELESS_KINDS:
        return f"{link_base.rstrip('/')}/portfolios/{quote(portfolio_id, safe=':')}#capacity"
    return kr_link(link_base, portfolio_id, node_id)


def alert_link(link_base: str, raised: AlertRaised) -> str:
    """Where a person acts on an alert: its node's page, or for a squad or a cycle the scorecard's capacity section."""
    return node_link(link_base, raised.portfolio_id, raised.node_id, RULE_NODE_KINDS.get(raised.rule, "key_result"))


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's control characters so user text cannot mention, link or format as a control sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary if one is near, never inside an `&…;` escape, ending with "…"."""
    if len(text) <= limit:
        return text
    cut = limit - len(ELLIPSIS)
    space = text.rfind(" ", max(0, cut - 40), cut + 1)
    if space > 0:
        cut = space
    amp = text.rfind("&", max(0, cut - 6), cut)
    if amp >= 0 and ";" not in text[amp:cut]:
        cut = amp
    while cut > 0 and (unicodedata.combining(text[cut]) or text[cut - 1] == "\u200d" or text[cut] in "\u200d\ufe0f"):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def format_value(value: float | int | bool | str | None) -> str:
    """A fact's value as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def fact_lines(raised: AlertRaised) -> tuple[list[tuple[str, str]], int]:
    """The facts shown (name, value) and how many more were left out."""
    items = [(truncate(name.replace("_", " "), FACT_MAX), truncate(format_value(value), FACT_MAX)) for name, value in raised.facts.items()]
    return items[:FACTS_SHOWN_MAX], max(0, len(items) - FACTS_SHOWN_MAX)


def recovery_options(raised: AlertRaised) -> list[str]:
    """The three recovery options where a recovery plan is asked (`off_track`, `plan_overdue`), else none."""
    return list(RECOVERY_OPTIONS) if raised.rule in RECOVERY_RULES else []


def _title(raised: AlertRaised, state: AlertState) -> str:
    return f"{STATE_TITLES[state]}{RULE_TITLES[raised.rule]} · {raised.node_id}"


def _check(state: AlertState, link: str, acknowledged_by: str | None, resolved_reason: str | None) -> None:
    if not link.startswith(("https://", "http://")) or len(link) > LINK_MAX:
        raise ValueError(f"the link must be an http(s) URL of at most {LINK_MAX} characters, got {link[:50]!r}")
    if state == "acknowledged" and not acknowledged_by:
        raise ValueError("an acknowledged message needs acknowledged_by")
    if state == "resolved" and not resolved_reason:
        raise ValueError("a resolved message needs resolved_reason")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}}


def _slack_facts(raised: AlertRaised) -> str:
    shown, more = fact_lines(raised)
    lines: list[str] = []
    budget = SECTION_MAX - len("*Why*\n") - len("\n… and 9999 more")
    for name, value in shown:
        line = truncate(f"• {escape_mrkdwn(name)}: {escape_mrkdwn(value)}", FACT_MAX)
        if sum(len(kept) + 1 for kept in lines) + len(line) > budget:
            break
        lines.append(line)
    more += len(shown) - len(lines)
    return "\n".join(lines) + (f"\n… and {more} more" if more else "")


def _slack_raised(raised: AlertRaised) -> list[dict[str, Any]]:
    facts = _slack_facts(raised)
    options = recovery_options(raised)
    asked = escape_mrkdwn(raised.asked) + (f"\n{OPTIONS_INTRO}" if options else "") + "".join(f"\n• {option}" for option in options)
    return [
        _section(f"*What happened*\n{escape_mrkdwn(raised.summary)}"),
        _section(f"*Why*\n{facts or 'No facts recorded.'}"),
        _section(f"*What is asked*\n{asked}"),
    ]


def _slack_follow_up(
    raised: AlertRaised, state: AlertState, acknowledged_by: str | None, note: str, resolved_reason: str | None
) -> list[dict[str, Any]]:
    if state == "acknowledged":
        text = f"*{escape_mrkdwn(truncate(acknowledged_by or '', 320))}* acknowledged it."
        if note:
            text += "\n>" + escape_mrkdwn(truncate(note, NOTE_MAX)).replace("\n", "\n>")
    else:
        text = f"*Why resolved*\n{escape_mrkdwn(resolved_reason or '')}"
    return [_section(text), _section(f"*The alert*\n{escape_mrkdwn(truncate(raised.summary, NOTE_MAX))}")]


def slack_message(
    raised: AlertRaised,
    state: AlertState,
    *,
    link: str,
    acknowledged_by: str | None = None,
    note: str = "",
    resolved_reason: str | None = None,
) -> dict[str, Any]:
    """A chat.postMessage / webhook body: Block Kit `blocks` and the fallback `text`, within Slack's limits."""
    _check(state, link, acknowledged_by, resolved_reason)
    title = _title(raised, state)
    header = {"type": "header", "text": {"type": "plain_text", "text": truncate(f"{SEVERITY_ICONS[raised.severity]} {title}", HEADER_MAX)}}
    body = _slack_raised(raised) if state == "raised" else _slack_follow_up(raised, state, acknowledged_by, note, resolved_reason)
    link_text = f"<{escape_mrkdwn(link)}|Open the key result in okrstream>"
    context = {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": f"Severity: *{raised.severity.value}*"},
            {"type": "mrkdwn", "text": f"Rule: `{raised.rule.value}`"},
            {"type": "mrkdwn", "text": truncate(f"Alert `{raised.alert_id}`", 300)},
        ],
    }
    body = _fit(body, TOTAL_BLOCK_TEXT_MAX - block_text_length([header, _section(link_text), context]))
    blocks = [header, *body, _section(link_text), context]
    fallback = truncate(f"[{raised.severity.value}] {escape_mrkdwn(title)}: {escape_mrkdwn(raised.summary)}", FALLBACK_MAX - len(link) - 3)
    return {"text": f"{fallback} — {escape_mrkdwn(link)}", "blocks": blocks[:50], "unfurl_links": False}


def _fit(sections: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Shorten the longest sections until their text fits the budget left by the fixed blocks."""
    texts = [section["text"]["text"] for section in sections]
    while sum(map(len, texts)) > budget:
        longest = max(range(len(texts)), key=lambda index: len(texts[index]))
        excess = sum(map(len, texts)) - budget
        texts[longest] = truncate(texts[longest], max(len(ELLIPSIS), len(texts[longest]) - excess))
    return [_section(text) for text in texts]


def block_text_length(blocks: list[dict[str, Any]]) -> int:
    """Characters of text in the blocks, as Slack's `msg_blocks_too_long` counts them (roughly)."""
    total = 0
    for block in blocks:
        if "text" in block:
            total += len(block["text"]["text"])
        total += sum(len(element.get("text", "")) for element in block.get("elements", []))
    return total


@dataclass(frozen=True)
class EmailContent:
    """An e-mail's subject, plain-text part and HTML part."""

    subject: str
    text: str
    html: str


_HTML = """<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2>{{ title }}</h2>
<p><strong>Severity:</strong> {{ severity }}</p>
{% if state == "raised" %}
<h3>What happened</h3>
<p>{{ summary }}</p>
<h3>Why</h3>
{% if facts %}<table cellpadding="4" style="border-collapse: collapse">
{% for name, value in facts %}<tr><th align="left">{{ name }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>{% if more %}<p>… and {{ more }} more</p>{% endif %}{% else %}<p>No facts recorded.</p>{% endif %}
<h3>What is asked</h3>
<p>{{ asked }}</p>
{% if options %}<p>{{ options_intro }}</p><ul>{% for option in options %}<li>{{ option }}</li>{% endfor %}</ul>{% endif %}
{% elif state == "acknowledged" %}
<p><strong>{{ acknowledged_by }}</strong> acknowledged it.</p>
{% if note %}<blockquote>{{ note }}</blockquote>{% endif %}
<p>The alert: {{ summary }}</p>
{% else %}
<h3>Why resolved</h3>
<p>{{ resolved_reason }}</p>
<p>The alert: {{ summary }}</p>
{% endif %}
<p><a href="{{ link }}">Open the key result in okrstream</a></p>
<p style="color: #666">Rule {{ rule }} · alert {{ alert_id }}</p>
</body></html>
"""

_TEXT = """{{ title }}
Severity: {{ severity }}
{% if state == "raised" %}
What happened
{{ summary }}

Why
{% for name, value in facts %}- {{ name }}: {{ value }}
{% else %}No facts recorded.
{% endfor %}{% if more %}… and {{ more }} more
{% endif %}
What is asked
{{ asked }}
{% if options %}{{ options_intro }}
{% endif %}{% for option in options %}- {{ option }}
{% endfor %}{% elif state == "acknowledged" %}
{{ acknowledged_by }} acknowledged it.
{% if note %}
{{ note }}
{% endif %}
The alert: {{ summary }}
{% else %}
Why resolved
{{ resolved_reason }}

The alert: {{ summary }}
{% endif %}
Open the key result: {{ link }}

Rule {{ rule }} · alert {{ alert_id }}
"""

_HTML_ENV = Environment(loader=DictLoader({"alert.html": _HTML}), autoescape=True, undefined=StrictUndefined)
_TEXT_ENV = Environment(loader=DictLoader({"alert.txt": _TEXT}), autoescape=False, undefined=StrictUndefined)  # noqa: S701 - the plain-text part is never HTML


def email_message(
    raised: AlertRaised,
    state: AlertState,
    *,
    link: str,
    acknowledged_by: str | None = None,
    note: str = "",
    resolved_reason: str | None = None,
) -> EmailContent:
    """The e-mail for an alert's state: a subject, an HTML part (autoescaped) and a plain-text part."""
    _check(state, link, acknowledged_by, resolved_reason)
    shown, more = fact_lines(raised)
    title = _title(raised, state)
    values = {
        "title": title,
        "state": state,
        "severity": raised.severity.value,
        "summary": raised.summary,
        "facts": shown,
        "more": more,
        "asked": raised.asked,
        "options": recovery_options(raised),
        "options_intro": OPTIONS_INTRO,
        "acknowledged_by": acknowledged_by or "",
        "note": note,
        "resolved_reason": resolved_reason or "",
        "link": link,
        "rule": raised.rule.value,
        "alert_id": raised.alert_id,
    }
    subject = f"[okrstream] {raised.severity.value.capitalize()}: {title}"
    return EmailContent(
        subject=truncate(" ".join(subject.split()), 200),
        text=_TEXT_ENV.get_template("alert.txt").render(values),
        html=_HTML_ENV.get_template("alert.html").render(values),
    )
