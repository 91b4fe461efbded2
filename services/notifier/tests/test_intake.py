"""Alert events into the send log: a consumer batch stores exactly what one event at a time stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from okr_contracts.alerts import AlertAcknowledged, AlertEvent, AlertRaised, AlertResolved, Audience, DriftRule, Severity
from okr_contracts.envelope import Envelope
from okr_contracts.kr_events import CheckInRecorded
from okr_notifier.application import NotifierService
from okr_notifier.routing import RoutingConfig
from okr_notifier.sendlog import SendLog, SqliteSendLog
from okr_runtime.consumer import Delivery

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ROUTING = RoutingConfig.model_validate(
    {
        "link_base": "https://okr.example.com/",
        "portfolios": {
            "acme": {
                "people": {
                    "olga": {"slack_user": "U-OLGA", "email": "olga@example.com"},
                    "lena": {"email": "lena@example.com", "roles": ["portfolio_lead"]},
                },
                "rules": [
                    {"audience": ["owner"], "channels": ["slack"]},
                    {"min_severity": "warning", "audience": ["portfolio_lead"], "channels": ["email"]},
                ],
            }
        },
    }
)


class Clock:
    """A microsecond further at each reading, as wall time moves between events."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


def raised(alert: str, node: str) -> AlertRaised:
    return AlertRaised(
        alert_id=alert,
        portfolio_id="acme",
        rule=DriftRule.OFF_TRACK,
        node_id=node,
        severity=Severity.WARNING,
        audience=(Audience.OWNER, Audience.PORTFOLIO_LEAD),
        recipients=("olga", "lena"),
        summary="Confidence 0.3 past mid-cycle",
        asked="Replan or escalate",
        facts={"confidence": 0.3},
        raised_at=T0,
    )


def lifecycle() -> list[AlertEvent]:
    first, second = raised("acme:off_track:kr-1:1", "kr-1"), raised("acme:off_track:kr-2:1", "kr-2")
    same = {"portfolio_id": "acme", "rule": DriftRule.OFF_TRACK}
    return [
        first,
        AlertAcknowledged(alert_id=first.alert_id, node_id="kr-1", by="olga", note="on it", acknowledged_at=T0, **same),
        second,
        first,  # redelivered
        AlertResolved(alert_id=first.alert_id, node_id="kr-1", reason="check-in recorded", resolved_at=T0, **same),
        AlertResolved(alert_id="acme:off_track:kr-9:1", node_id="kr-9", reason="never raised here", resolved_at=T0, **same),
    ]


def delivered(events: list[Any]) -> list[tuple[Envelope[Any], Delivery]]:
    return [(Envelope.wrap(event, producer="drift"), Delivery("okr.alerts.v1", 0, n, None, {})) for n, event in enumerate(events)]


def stored(log: SendLog) -> list[tuple[Any, ...]]:
    with log.transaction() as cur:
        cur.execute("SELECT alert_id, state, recipient, channel, address, payload, created_at FROM notifier_sends ORDER BY rowid")
        sends = [tuple(row) for row in cur.fetchall()]
        cur.execute("SELECT alert_id, event FROM notifier_raised ORDER BY alert_id")
        return sends + [tuple(row) for row in cur.fetchall()]


async def test_a_batch_stores_the_sends_and_raised_events_one_at_a_time_stores(tmp_path: Path) -> None:
    one_by_one, batched = SqliteSendLog(tmp_path / "one.sqlite"), SqliteSendLog(tmp_path / "batch.sqlite")
    events = lifecycle()
    single = NotifierService(one_by_one, ROUTING, Clock())
    for envelope, delivery in delivered(events):
        await single.on_alert(envelope, delivery)
    service = NotifierService(batched, ROUTING, Clock())
    assert await service.on_alerts(delivered(events)) == [None] * len(events)
    assert stored(batched) == stored(one_by_one)
    assert [row[:4] for row in stored(batched)[:4]] == [
        ("acme:off_track:kr-1:1", "raised", "olga", "slack"),
        ("acme:off_track:kr-1:1", "raised", "olga", "email"),
        ("acme:off_track:kr-1:1", "raised", "lena", "email"),
        ("acme:off_track:kr-1:1", "acknowledged", "olga", "slack"),
    ]
    before = stored(batched)
    assert await service.on_alerts(delivered(events)) == [None] * len(events)  # the batch redelivered: nothing new
    assert stored(batched) == before
    one_by_one.close()
    batched.close()


async def test_an_event_of_another_kind_in_a_batch_is_refused_alone(tmp_path: Path) -> None:
    log = SqliteSendLog(tmp_path / "batch.sqlite")
    check_in = CheckInRecorded(
        portfolio_id="acme", aggregate_id="kr-1", aggregate_version=2, actor="olga", kr_id="kr-1", confidence=0.5, what_changed="x"
    )
    verdicts = await NotifierService(log, ROUTING, Clock()).on_alerts(delivered([check_in, raised("acme:off_track:kr-1:1", "kr-1")]))
    assert "not an alert lifecycle event" in str(verdicts[0])
    assert verdicts[1] is None
    assert log.counts()["pending"] == 3  # olga: Slack and e-mail (no roles: every matching route); lena: e-mail
    log.close()
