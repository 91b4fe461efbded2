"""Slack Block Kit and e-mail messages: what happened, why, what is asked, the link; within Slack's limits and escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from okr_contracts.alerts import AlertRaised, Audience, DriftRule, Severity
from okr_notifier.messages import (
    HEADER_MAX,
    SECTION_MAX,
    TOTAL_BLOCK_TEXT_MAX,
    alert_link,
    block_text_length,
    email_message,
    escape_mrkdwn,
    kr_link,
    slack_message,
    truncate,
)

LINK = "https://okr.example.com/portfolios/acme/nodes/kr-1"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
EVIL = "<!channel> see <https://evil.example|your bonus> & more"


def raised(
    rule: DriftRule = DriftRule.OFF_TRACK,
    summary: str = "Confidence 0.3 (below 0.4) with 60% of the cycle gone",
    facts: dict[str, float | int | bool | str | None] | None = None,
    asked: str = "File a recovery plan within 14 days",
    severity: Severity = Severity.WARNING,
) -> AlertRaised:
    return AlertRaised(
        alert_id="acme:off_track:kr-1:1",
        portfolio_id="acme",
        rule=rule,
        node_id="kr-1",
        severity=severity,
        audience=(Audience.OWNER, Audience.PRODUCT_LEAD),
        recipients=("olga",),
        summary=summary,
        asked=asked,
        facts={"confidence": 0.3, "elapsed": 0.6, "low_since": "2025-02-20T00:00:00+00:00"} if facts is None else facts,
        raised_at=NOW,
    )


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    blocks = message["blocks"]
    assert message["text"].strip()
    assert 0 < len(blocks) <= 50
    assert block_text_length(blocks) <= TOTAL_BLOCK_TEXT_MAX
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_MAX
            assert block["text"]["type"] == "plain_text"
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= SECTION_MAX
        if block["type"] == "context":
            assert len(block["elements"]) <= 10


def test_a_raised_slack_message_says_what_happened_why_what_is_asked_and_links_to_the_key_result() -> None:
    message = slack_message(raised(), "raised", link=LINK)
    text = all_text(message)

    assert_within_slack_limits(message)
    assert "Confidence 0.3 (below 0.4)" in text
    assert "low since: 2025-02-20" in text
    assert "File a recovery plan within 14 days" in text
    assert "Severity: *warning*" in text
    assert f"<{LINK}|Open the key result in okrstream>" in text
    assert message["blocks"][0]["text"]["text"] == "⚠️ Off track · kr-1"
    assert LINK in message["text"]


@pytest.mark.parametrize("rule", [DriftRule.OFF_TRACK, DriftRule.PLAN_OVERDUE])
def test_a_recovery_plan_alert_offers_the_three_recovery_options(rule: DriftRule) -> None:
    slack = all_text(slack_message(raised(rule), "raised", link=LINK))
    email = email_message(raised(rule), "raised", link=LINK)

    for option in ("Change the tactic", "Change the target", "Change the resources"):
        assert option in slack
        assert option in email.text
        assert option in email.html


def test_an_alert_that_asks_no_plan_lists_no_recovery_options() -> None:
    alert = raised(DriftRule.STALE, asked="Update it, retire it or escalate it within 7 days")

    assert "Change the tactic" not in all_text(slack_message(alert, "raised", link=LINK))
    assert "Change the tactic" not in email_message(alert, "raised", link=LINK).text


def test_a_huge_summary_and_many_long_facts_stay_within_every_slack_limit() -> None:
    facts: dict[str, float | int | bool | str | None] = {f"fact_{index}": "& " * 199 + "<x>" for index in range(200)}
    alert = raised(summary="word & " * 570, facts=facts, asked="<ask> " * 660)

    message = slack_message(alert, "raised", link=LINK)

    assert_within_slack_limits(message)
    facts_text = message["blocks"][2]["text"]["text"]
    shown = facts_text.count("\n• ")
    assert 0 < shown < 30
    assert facts_text.endswith(f"\n… and {200 - shown} more")
    assert f"<{LINK}|" in all_text(message)
    assert message["blocks"][1]["text"]["text"].endswith("word &amp;…")
    assert message["blocks"][3]["text"]["text"].endswith("&lt;ask&gt;…")


def test_long_follow_ups_stay_within_every_slack_limit() -> None:
    alert = raised(summary="x" * 4000)

    assert_within_slack_limits(slack_message(alert, "acknowledged", link=LINK, acknowledged_by="p" * 320, note="n\n" * 2000))
    assert_within_slack_limits(slack_message(alert, "resolved", link=LINK, resolved_reason="r & " * 1000))


def test_truncation_never_cuts_an_escape_and_marks_the_cut() -> None:
    escaped = escape_mrkdwn("a" * 10 + "&&&&&&&&")

    for limit in range(11, len(escaped)):
        cut = truncate(escaped, limit)
        assert len(cut) <= limit
        assert cut.endswith("…")
        assert cut[:-1].count("&") == cut[:-1].count("&amp;")


def test_truncation_prefers_a_word_boundary() -> None:
    assert truncate("recovery plan overdue for this key result", 20) == "recovery plan…"
    assert truncate("short", 20) == "short"


def test_user_text_cannot_mention_the_channel_or_inject_a_link_in_slack() -> None:
    alert = raised(summary=EVIL, facts={"note": EVIL}, asked=EVIL)

    for message in (
        slack_message(alert, "raised", link=LINK),
        slack_message(alert, "acknowledged", link=LINK, acknowledged_by="<@U123>", note=EVIL),
        slack_message(alert, "resolved", link=LINK, resolved_reason=EVIL),
    ):
        text = all_text(message)
        assert "<!channel>" not in text
        assert "<https://evil" not in text
        assert "& more" not in text
        assert "&lt;!channel&gt; see &lt;https://evil.example|your bonus&gt; &amp; more" in text


def test_acknowledged_and_resolved_slack_messages_are_short_follow_ups() -> None:
    acknowledged = slack_message(raised(), "acknowledged", link=LINK, acknowledged_by="olga", note="Plan coming Friday")
    resolved = slack_message(raised(), "resolved", link=LINK, resolved_reason="recovery plan filed")

    assert acknowledged["blocks"][0]["text"]["text"] == "⚠️ Acknowledged: Off track · kr-1"
    assert acknowledged["blocks"][1]["text"]["text"] == "*olga* acknowledged it.\n>Plan coming Friday"
    assert resolved["blocks"][1]["text"]["text"] == "*Why resolved*\nrecovery plan filed"
    assert "Change the tactic" not in all_text(resolved)
    for message in (acknowledged, resolved):
        assert_within_slack_limits(message)
        assert len(message["blocks"]) <= 5


def test_a_follow_up_without_who_or_why_is_refused() -> None:
    with pytest.raises(ValueError, match="acknowledged_by"):
        slack_message(raised(), "acknowledged", link=LINK)
    with pytest.raises(ValueError, match="resolved_reason"):
        email_message(raised(), "resolved", link=LINK)


def test_a_link_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        slack_message(raised(), "raised", link="javascript:alert(1)")


def test_the_link_names_the_portfolio_and_node_and_encodes_odd_ids() -> None:
    assert kr_link("https://okr.example.com/", "acme", "kr-1") == LINK
    assert kr_link("https://okr.example.com", "acme", "team/a:kr.1") == "https://okr.example.com/portfolios/acme/nodes/team%2Fa:kr.1"


def test_a_capacity_alert_links_to_the_scorecards_capacity_section_and_names_its_rule() -> None:
    squad = raised(DriftRule.OVER_ALLOCATED, "payments is allocated 9 sprints in cycle 2026-Q3 against a capacity of 6")
    assert alert_link("https://okr.example.com/", squad) == "https://okr.example.com/portfolios/acme#capacity"
    assert alert_link("https://okr.example.com", raised()) == LINK
    message = slack_message(squad, "raised", link=alert_link("https://okr.example.com", squad))
    text = json.dumps(message)
    assert "Squad over capacity" in text
    assert "https://okr.example.com/portfolios/acme#capacity" in text
    balance = email_message(raised(DriftRule.OFF_BALANCE, "Cycle 2026-Q3 splits its allocated sprints 0% / 0% / 100%"), "raised", link=LINK)
    assert "Capacity off balance" in balance.subject


def test_an_email_has_a_subject_a_plain_text_part_and_an_html_part_with_the_same_content() -> None:
    email = email_message(raised(facts={"confidence": 0.3, "plan_filed": False, "owner": None}), "raised", link=LINK)

    assert email.subject == "[okrstream] Warning: Off track · kr-1"
    for part in (email.text, email.html):
        assert "Confidence 0.3 (below 0.4)" in part
        assert "File a recovery plan within 14 days" in part
        assert "warning" in part
        assert "plan filed" in part
    assert "- confidence: 0.3\n- plan filed: no\n- owner: —" in email.text
    assert f"Open the key result: {LINK}" in email.text
    assert f'<a href="{LINK}">' in email.html
    assert '<th align="left">plan filed</th><td>no</td>' in email.html


def test_user_text_is_html_escaped_in_the_email() -> None:
    script = "<script>alert('x')</script> & co"
    alert = raised(summary=script, facts={"<b>": script}, asked=script)

    email = email_message(alert, "raised", link=LINK + '"><script>')
    acknowledged = email_message(alert, "acknowledged", link=LINK, acknowledged_by="<img src=x>", note=script)

    for html in (email.html, acknowledged.html):
        assert "<script>" not in html
        assert "<img" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in email.html
    assert "<script>alert('x')</script> & co" in email.text


def test_email_follow_ups_say_who_acknowledged_with_the_note_and_why_it_resolved() -> None:
    acknowledged = email_message(raised(), "acknowledged", link=LINK, acknowledged_by="olga", note="Plan coming Friday")
    resolved = email_message(raised(), "resolved", link=LINK, resolved_reason="recovery plan filed")

    assert acknowledged.subject == "[okrstream] Warning: Acknowledged: Off track · kr-1"
    assert "olga acknowledged it." in acknowledged.text
    assert "Plan coming Friday" in acknowledged.html
    assert "Why resolved\nrecovery plan filed" in resolved.text
    assert "What is asked" not in resolved.text


def test_an_alert_without_facts_says_so() -> None:
    assert "No facts recorded." in all_text(slack_message(raised(facts={}), "raised", link=LINK))
    assert "No facts recorded." in email_message(raised(facts={}), "raised", link=LINK).text
