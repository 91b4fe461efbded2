"""The routing config and the alerts: 4 portfolios of 12 people, each alert to 2 owners (Slack) and 2 product leads (Slack and e-mail).

Every portfolio routes with two rules: every recipient gets a Slack DM; a second route for the
product and portfolio leads adds an e-mail, which an owner (``roles: [owner]``) is kept off. So
each alert plans 4 Slack DMs and 2 e-mails, and nobody is skipped (a skip would log a warning
per alert). No quiet hours: every notification is due at once. The alerts are what drift
raises (its summaries, asks and facts for five rules, with their severities), a different key
result each, the recipients taken in turn from the portfolio's people.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from okr_contracts.alerts import AlertRaised, Audience, DriftRule, Severity
from okr_contracts.envelope import Envelope, EventPayload
from okr_notifier.routing import RoutingConfig

PORTFOLIOS = 4
OWNERS = 6
LEADS = 6
SLACK_PER_ALERT = 4
EMAIL_PER_ALERT = 2
PER_ALERT = SLACK_PER_ALERT + EMAIL_PER_ALERT
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "America/Los_Angeles", "Australia/Sydney")


def portfolio_id(p: int) -> str:
    return f"bench-notifier-{p}"


def routing() -> RoutingConfig:
    """The config as the service loads it (validated from plain data)."""
    portfolios: dict[str, Any] = {}
    for p in range(PORTFOLIOS):
        people: dict[str, Any] = {}
        for i in range(OWNERS):
            people[f"pm-{p}-{i}"] = {
                "slack_user": f"U{p}PM{i:03d}",
                "email": f"pm{i}@p{p}.example.com",
                "time_zone": ZONES[i % len(ZONES)],
                "roles": ["owner"],
            }
        for i in range(LEADS):
            people[f"lead-{p}-{i}"] = {
                "slack_user": f"U{p}LD{i:03d}",
                "email": f"lead{i}@p{p}.example.com",
                "time_zone": ZONES[(i + 3) % len(ZONES)],
                "roles": ["product_lead"],
            }
        rules = [{"channels": ["slack"]}, {"channels": ["email"], "audience": ["product_lead", "portfolio_lead"]}]
        portfolios[portfolio_id(p)] = {"people": people, "rules": rules, "time_zone": "Europe/Berlin"}
    return RoutingConfig.model_validate({"link_base": "https://okr.example.com", "portfolios": portfolios})


def _finding(rule: DriftRule, n: int, at: datetime) -> tuple[Severity, str, str, dict[str, Any]]:
    """Severity, summary, ask and facts as drift's rules word them."""
    since = (at - timedelta(days=14 + n % 20)).replace(microsecond=0).isoformat()
    if rule is DriftRule.OFF_TRACK:
        confidence = (1, 2, 3)[n % 3] / 10
        return (
            Severity.WARNING,
            f"Confidence {confidence:g} (below 0.4) with {55 + n % 40}% of the cycle gone",
            "File a recovery plan within 7 days: change the tactic, the target or the resources, with an owner and the decision needed",
            {"confidence": confidence, "low_since": since, "elapsed": round(0.55 + (n % 40) / 100, 2), "plan_due_days": 7},
        )
    if rule is DriftRule.PLAN_OVERDUE:
        return (
            Severity.CRITICAL,
            f"Off-track for {8 + n % 10} days with no recovery plan (due after 7)",
            "Escalated: decide at the portfolio sync whether to change the tactic, the target or the resources",
            {"confidence": 0.2, "low_since": since, "waited_days": 8 + n % 10, "plan_due_days": 7, "escalate_to": "portfolio_lead"},
        )
    if rule is DriftRule.STALE:
        return (
            Severity.WARNING,
            f"No check-in or value for {14 + n % 20} days (limit 14)",
            "Update it, retire it or escalate it within 7 days",
            {"idle_days": 14 + n % 20, "last_update": since, "stale_days": 14},
        )
    if rule is DriftRule.NOT_MOVING:
        progress = round((n % 90) / 100, 2)
        return (
            Severity.WARNING,
            f"Progress has stayed at {progress:.2f} for {21 + n % 15} days although check-ins continue",
            "Say in the next check-in what is blocking the metric, or change the tactic",
            {"progress": progress, "unchanged_since": since, "not_moving_days": 21, "last_checkin": at.replace(microsecond=0).isoformat()},
        )
    return (
        Severity.WARNING,
        f"{5 + n % 6} linked delivery items done in 21 days while progress moved +0.0{n % 3}",
        "Investigate the value hypothesis: the work ships but the outcome does not move",
        {"done_items": 5 + n % 6, "busy_window_days": 21, "progress_gained": (n % 3) / 100, "first_done": since, "source": "jira"},
    )


RULES = (DriftRule.OFF_TRACK, DriftRule.STALE, DriftRule.NOT_MOVING, DriftRule.PLAN_OVERDUE, DriftRule.BUSY_BUT_FLAT)


def alerts(count: int, tag: str, at: datetime | None = None) -> list[Envelope[EventPayload]]:
    """``count`` AlertRaised events in envelopes as drift publishes them, each about another key result; ``tag`` makes their ids new."""
    at = at or datetime.now(UTC)
    owners = [itertools.cycle(range(OWNERS)) for _ in range(PORTFOLIOS)]
    leads = [itertools.cycle(range(LEADS)) for _ in range(PORTFOLIOS)]
    found: list[Envelope[EventPayload]] = []
    for n in range(count):
        p, rule = n % PORTFOLIOS, RULES[n % len(RULES)]
        node = f"kr-{tag}-{n:05d}"
        digest = hashlib.sha256(f"{portfolio_id(p)}\x1f{rule}\x1f{node}".encode()).hexdigest()[:12]
        severity, summary, asked, facts = _finding(rule, n, at)
        recipients = [f"pm-{p}-{next(owners[p])}" for _ in range(2)] + [f"lead-{p}-{next(leads[p])}" for _ in range(2)]
        raised = AlertRaised(
            alert_id=f"{rule}:{node}:{digest}",
            portfolio_id=portfolio_id(p),
            rule=rule,
            node_id=node,
            severity=severity,
            audience=(Audience.OWNER, Audience.PRODUCT_LEAD),
            recipients=tuple(recipients),
            summary=summary,
            asked=asked,
            facts=facts,
            raised_at=at,
        )
        found.append(Envelope.wrap(raised, producer="drift", occurred_at=at, recorded_at=at))
    return found
