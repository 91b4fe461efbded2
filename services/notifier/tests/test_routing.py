"""Routing of alerts by rule, severity and audience to Slack and e-mail, with quiet hours in each recipient's zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from okr_contracts.alerts import AlertAcknowledged, AlertRaised, AlertResolved, Audience, DriftRule, Severity
from okr_notifier.routing import Notification, Plan, RoutingConfig, RoutingConfigError, Skip, plan

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

CONFIG: dict[str, Any] = {
    "link_base": "https://okr.example.com/",
    "portfolios": {
        "acme": {
            "people": {
                "olga": {"slack_user": "U-OLGA", "email": "olga@example.com", "time_zone": "Europe/Berlin"},
                "pete": {"slack_user": "U-PETE", "email": "pete@example.com", "roles": ["product_lead"]},
                "lena": {"email": "lena@example.com", "roles": ["portfolio_lead"]},
            },
            "rules": [
                {"audience": ["owner"], "channels": ["slack"], "quiet_hours": {"start": "22:00", "end": "07:00"}},
                {"min_severity": "warning", "audience": ["product_lead", "portfolio_lead"], "channels": ["email"]},
                {"rules": ["plan_overdue"], "channels": ["slack"], "slack_channel": "C-SYNC"},
            ],
        }
    },
}


def config(data: dict[str, Any] | None = None) -> RoutingConfig:
    return RoutingConfig.model_validate(data or CONFIG)


def raised(
    rule: DriftRule = DriftRule.STALE,
    severity: Severity = Severity.WARNING,
    audience: tuple[Audience, ...] = (Audience.OWNER,),
    recipients: tuple[str, ...] = ("olga",),
    portfolio_id: str = "acme",
) -> AlertRaised:
    return AlertRaised(
        alert_id="acme:stale:kr-1:1",
        portfolio_id=portfolio_id,
        rule=rule,
        node_id="kr-1",
        severity=severity,
        audience=audience,
        recipients=recipients,
        summary="No check-in for 14 days",
        asked="Update it, retire it or escalate it within 7 days",
        facts={"idle_days": 14},
        raised_at=NOW,
    )


def sent(result: Plan) -> set[tuple[str, str, str]]:
    return {(note.recipient, note.channel, note.address) for note in result.notifications}


def test_an_owner_alert_goes_to_the_owner_by_slack_dm() -> None:
    result = plan(raised(), None, config(), NOW)

    assert result.notifications == [Notification("acme:stale:kr-1:1", "raised", "olga", "slack", "U-OLGA", NOW)]
    assert result.skipped == []


def test_a_lead_alert_reaches_owner_on_slack_and_leads_by_email_according_to_their_roles() -> None:
    alert = raised(DriftRule.RETIRE_RECOMMENDED, audience=(Audience.OWNER, Audience.PRODUCT_LEAD), recipients=("olga", "pete"))

    result = plan(alert, None, config(), NOW)

    # pete's roles (product_lead) keep him off the owner-only Slack route; olga has no roles and gets every matching route.
    assert sent(result) == {("olga", "slack", "U-OLGA"), ("olga", "email", "olga@example.com"), ("pete", "email", "pete@example.com")}


def test_a_route_below_its_minimum_severity_does_not_match() -> None:
    alert = raised(DriftRule.CONFIDENCE_FALLING, Severity.INFO, (Audience.OWNER, Audience.PRODUCT_LEAD), ("olga", "pete"))

    assert sent(plan(alert, None, config(), NOW)) == {("olga", "slack", "U-OLGA")}


def test_a_route_for_one_rule_posts_once_to_its_slack_channel() -> None:
    alert = raised(DriftRule.PLAN_OVERDUE, Severity.CRITICAL, tuple(Audience), ("olga", "pete", "lena"))

    result = plan(alert, None, config(), NOW)

    assert ("C-SYNC", "slack", "C-SYNC") in sent(result)
    assert [note.address for note in result.notifications].count("C-SYNC") == 1


def test_a_route_for_other_rules_does_not_match() -> None:
    alert = raised(DriftRule.OFF_TRACK, audience=(Audience.PORTFOLIO_LEAD,), recipients=("lena",))

    assert sent(plan(alert, None, config(), NOW)) == {("lena", "email", "lena@example.com")}


def test_a_portfolio_without_routing_sends_nothing() -> None:
    assert plan(raised(portfolio_id="other"), None, config(), NOW) == Plan()


def test_a_recipient_without_an_address_for_the_channel_is_skipped_with_the_reason() -> None:
    alert = raised(DriftRule.OFF_TRACK, audience=(Audience.OWNER, Audience.PORTFOLIO_LEAD), recipients=("lena", "ghost"))

    result = plan(alert, None, config(), NOW)

    assert sent(result) == {("lena", "email", "lena@example.com")}
    assert result.skipped == [
        Skip("ghost", "slack", "not listed in the portfolio's people"),
        Skip("ghost", "email", "not listed in the portfolio's people"),
    ]


def test_a_recipient_listed_without_a_slack_user_is_skipped_on_slack() -> None:
    data = json.loads(json.dumps(CONFIG))
    data["portfolios"]["acme"]["people"]["olga"]["slack_user"] = None

    result = plan(raised(), None, config(data), NOW)

    assert result.notifications == []
    assert result.skipped == [Skip("olga", "slack", "no slack_user configured")]


def berlin(hour: int, minute: int, day: int = 10) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=BERLIN)


def test_quiet_hours_start_at_22_00_in_the_recipients_zone() -> None:
    before = plan(raised(), None, config(), berlin(21, 59))
    at_start = plan(raised(), None, config(), berlin(22, 0))

    assert before.notifications[0].not_before == berlin(21, 59)
    assert at_start.notifications[0].not_before == berlin(7, 0, day=11)
    assert at_start.notifications[0].not_before == datetime(2025, 3, 11, 6, 0, tzinfo=UTC)


def test_a_notification_after_midnight_in_quiet_hours_waits_until_07_00_the_same_day() -> None:
    assert plan(raised(), None, config(), berlin(6, 59)).notifications[0].not_before == berlin(7, 0)
    assert plan(raised(), None, config(), berlin(7, 0)).notifications[0].not_before == berlin(7, 0)


def test_quiet_hours_follow_the_recipients_zone_not_utc() -> None:
    # 21:30 UTC is 22:30 in Berlin in winter: quiet for olga though it is not 22:00 in UTC.
    result = plan(raised(), None, config(), datetime(2025, 3, 10, 21, 30, tzinfo=UTC))

    assert result.notifications[0].not_before == berlin(7, 0, day=11)


def test_quiet_hours_end_at_local_07_00_across_a_daylight_saving_change() -> None:
    # Berlin moves to summer time on 2025-03-30: 07:00 local is 05:00 UTC that morning.
    result = plan(raised(), None, config(), berlin(23, 0, day=29))

    assert result.notifications[0].not_before == datetime(2025, 3, 30, 5, 0, tzinfo=UTC)


def test_a_critical_alert_ignores_quiet_hours() -> None:
    alert = raised(DriftRule.PLAN_OVERDUE, Severity.CRITICAL)

    result = plan(alert, None, config(), berlin(23, 30))

    assert {note.not_before for note in result.notifications} == {berlin(23, 30)}


def test_a_quiet_window_within_one_day_postpones_to_its_end() -> None:
    data = json.loads(json.dumps(CONFIG))
    data["portfolios"]["acme"]["rules"][0]["quiet_hours"] = {"start": "12:00", "end": "13:30"}

    assert plan(raised(), None, config(data), berlin(12, 0)).notifications[0].not_before == berlin(13, 30)
    assert plan(raised(), None, config(data), berlin(11, 59)).notifications[0].not_before == berlin(11, 59)


def test_follow_ups_go_to_the_raised_alerts_recipients_and_channels() -> None:
    alert = raised(DriftRule.RETIRE_RECOMMENDED, audience=(Audience.OWNER, Audience.PRODUCT_LEAD), recipients=("olga", "pete"))
    acknowledged = AlertAcknowledged(
        alert_id=alert.alert_id, portfolio_id="acme", rule=alert.rule, node_id="kr-1", by="olga", acknowledged_at=NOW
    )
    resolved = AlertResolved(
        alert_id=alert.alert_id, portfolio_id="acme", rule=alert.rule, node_id="kr-1", reason="retired", resolved_at=NOW
    )

    for event, state in ((acknowledged, "acknowledged"), (resolved, "resolved")):
        result = plan(event, alert, config(), NOW)
        assert sent(result) == sent(plan(alert, None, config(), NOW))
        assert {note.state for note in result.notifications} == {state}


def test_follow_ups_of_info_alerts_and_without_the_raised_event_send_nothing() -> None:
    alert = raised(DriftRule.OUTPUT_PHRASED, Severity.INFO)
    resolved = AlertResolved(
        alert_id=alert.alert_id, portfolio_id="acme", rule=alert.rule, node_id="kr-1", reason="rephrased", resolved_at=NOW
    )

    assert plan(resolved, alert, config(), NOW) == Plan()
    assert plan(resolved, None, config(), NOW) == Plan()


def test_a_follow_up_with_the_raised_event_of_another_alert_is_refused() -> None:
    resolved = AlertResolved(alert_id="other", portfolio_id="acme", rule=DriftRule.STALE, node_id="kr-1", reason="x", resolved_at=NOW)

    with pytest.raises(ValueError, match="not 'other'"):
        plan(resolved, raised(), config(), NOW)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(raised(), None, config(), datetime(2025, 3, 10, 12, 0))


def test_the_config_loads_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "routing.yaml"
    yaml_file.write_text(
        "link_base: https://okr.example.com/\n"
        "portfolios:\n"
        "  acme:\n"
        "    people:\n"
        "      olga: {slack_user: U-OLGA, time_zone: Europe/Berlin}\n"
        "    rules:\n"
        "      - {rules: [stale], min_severity: warning, channels: [slack], quiet_hours: {start: '22:00', end: '07:00'}}\n",
        encoding="utf-8",
    )
    json_file = tmp_path / "routing.json"
    json_file.write_text(json.dumps(CONFIG), encoding="utf-8")

    loaded = RoutingConfig.load(yaml_file)

    assert loaded.link_base == "https://okr.example.com"
    assert loaded.portfolios["acme"].rules[0].rules == (DriftRule.STALE,)
    assert RoutingConfig.load(json_file) == config()


A = "link_base: https://x\nportfolios: {a: {"
Q = "rules: [{channels: [slack], quiet_hours: "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            A + "people: {o: {time_zone: Mars/Base}}}}",
            r"portfolios\.a\.people\.o\.time_zone: .*unknown time zone 'Mars/Base'",
        ),
        (
            A + Q + "{start: '25:00', end: '07:00'}}]}}",
            "expected HH:MM",
        ),
        (
            A + Q + "{start: '07:00', end: '07:00'}}]}}",
            "must differ",
        ),
        (A + "rules: [{channels: [email], slack_channel: C1}]}}", "'slack' is not among the channels"),
        (A + "rules: [{channels: [fax]}]}}", r"rules\.0\.channels\.0"),
        (A + "rules: [{channels: []}]}}", r"rules\.0\.channels"),
        (A + "rules: [{rules: [nope], channels: [slack]}]}}", r"rules\.0\.rules\.0"),
        (A + "rules: [{chanels: [slack]}]}}", "chanels: Extra inputs are not permitted"),
        ("link_base: https://x\nslack: {bot_token: xoxb-1}", "secrets belong in the environment.*slack.bot_token"),
        ("link_base: javascript:alert(1)", "link_base"),
        ("portfolios: {}", "link_base: Field required"),
        ("- just a list", "expected a mapping"),
        ("link_base: [unclosed", "cannot read the routing config"),
    ],
)
def test_an_invalid_config_is_refused_with_a_message_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(RoutingConfigError, match=message) as error:
        RoutingConfig.load(path)
    assert str(path) in str(error.value)


def test_a_missing_config_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(RoutingConfigError, match=r"missing\.yaml: cannot read"):
        RoutingConfig.load(tmp_path / "missing.yaml")


def test_a_route_through_an_incoming_webhook_names_the_variable_holding_its_url_never_the_url() -> None:
    data = json.loads(json.dumps(CONFIG))
    data["portfolios"]["acme"]["rules"] = [{"channels": ["slack"], "slack_webhook_env": "SLACK_HOOK_ACME"}]
    result = plan(raised(), None, config(data), NOW)
    assert sent(result) == {("webhook:SLACK_HOOK_ACME", "slack", "webhook:SLACK_HOOK_ACME")}
    data["portfolios"]["acme"]["rules"] = [{"channels": ["slack"], "slack_webhook_env": "SLACK_HOOK", "slack_channel": "C-1"}]
    with pytest.raises(ValueError, match="not both"):
        config(data)
