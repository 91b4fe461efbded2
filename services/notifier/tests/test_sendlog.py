"""The send log on SQLite and PostgreSQL: once per alert state and recipient, due order, status moves and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okr_notifier.sendlog import PostgresSendLog, Send, SendLog, SendNotPending, SqliteSendLog

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SendLog]:
    if request.param == "sqlite":
        found: SendLog = SqliteSendLog(tmp_path / "notifier.sqlite")
    else:
        found = PostgresSendLog(request.getfixturevalue("postgres_dsn"), request.getfixturevalue("postgres_schema"))
    yield found
    found.close()


def send(alert: str = "a1", state: str = "at_risk", recipient: str = "team-growth", channel: str = "slack") -> Send:
    return Send(alert, state, recipient, channel, address="C123", payload={"text": f"{alert} is {state}"})


def test_a_redelivered_alert_enqueues_nothing(store: SendLog) -> None:
    assert store.enqueue([send(), send(recipient="ceo", channel="email")], now=T0) == 2
    assert store.enqueue([send(), send(recipient="ceo", channel="email")], now=T0 + timedelta(minutes=1)) == 0
    assert store.enqueue([send(state="off_track")], now=T0) == 1  # a new state of the same alert is a new notification
    assert store.counts() == {"pending": 3, "sent": 0, "dead": 0}


def test_a_sent_notification_is_not_enqueued_again(store: SendLog) -> None:
    store.enqueue([send()], now=T0)
    (first,) = store.due(T0)
    store.record(first, "ok", at=T0, detail="delivered")
    assert store.enqueue([send()], now=T0 + timedelta(hours=1)) == 0
    assert store.due(T0 + timedelta(hours=2)) == []
    stored = store.get(*first.key)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.sent_at) == ("sent", 1, T0)


def test_due_sends_come_oldest_first_and_only_when_their_time_has_come(store: SendLog) -> None:
    store.enqueue([send("a2")], now=T0 + timedelta(seconds=2))
    store.enqueue([send("a1")], now=T0 + timedelta(seconds=1))
    store.enqueue([send("a3", state="later")], now=T0)
    store.enqueue([Send("a4", "s", "r", "slack", "C1", {}, next_attempt_at=T0 + timedelta(hours=1))], now=T0)
    assert [s.alert_id for s in store.due(T0 + timedelta(seconds=5))] == ["a3", "a1", "a2"]
    assert [s.alert_id for s in store.due(T0 + timedelta(seconds=5), limit=2)] == ["a3", "a1"]
    assert [s.alert_id for s in store.due(T0 + timedelta(seconds=1))] == ["a3", "a1"]
    assert [s.alert_id for s in store.due(T0 + timedelta(hours=1))] == ["a3", "a4", "a1", "a2"]


def test_a_send_keeps_its_payload_and_address(store: SendLog) -> None:
    payload = {"text": "Growth is at risk", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Growth* ✓"}}]}
    store.enqueue([Send("a1", "at_risk", "ops", "email", "ops@example.com", payload)], now=T0)
    (found,) = store.due(T0)
    assert (found.address, found.payload, found.attempts, found.status) == ("ops@example.com", payload, 0, "pending")
    assert found.created_at == T0
    assert found.next_attempt_at == T0


def test_a_retry_holds_the_send_back_until_its_next_attempt(store: SendLog) -> None:
    store.enqueue([send()], now=T0)
    (first,) = store.due(T0)
    assert store.record(first, "retry", at=T0, detail="HTTP 500", next_attempt_at=T0 + timedelta(seconds=30)) == 1
    assert store.due(T0 + timedelta(seconds=29)) == []
    (again,) = store.due(T0 + timedelta(seconds=30))
    assert (again.attempts, again.last_error, again.status) == (1, "HTTP 500", "pending")


def test_every_attempt_is_kept_for_audit(store: SendLog) -> None:
    store.enqueue([send(), send(recipient="ops", channel="email")], now=T0)
    email, slack = store.due(T0)  # same enqueue time: ordered by key, "ops" before "team-growth"
    assert (email.channel, slack.channel) == ("email", "slack")
    store.record(slack, "retry", at=T0, detail="ratelimited", next_attempt_at=T0 + timedelta(seconds=5))
    store.record(email, "permanent", at=T0 + timedelta(seconds=1), detail="SMTP 550: no such user")
    (slack,) = store.due(T0 + timedelta(seconds=5))
    assert store.record(slack, "ok", at=T0 + timedelta(seconds=6), detail="delivered") == 2

    trail = [(a.recipient, a.attempt, a.at, a.outcome, a.detail) for a in store.attempts("a1")]
    assert trail == [
        ("team-growth", 1, T0, "retry", "ratelimited"),
        ("ops", 1, T0 + timedelta(seconds=1), "permanent", "SMTP 550: no such user"),
        ("team-growth", 2, T0 + timedelta(seconds=6), "ok", "delivered"),
    ]
    assert store.attempts("other") == []
    assert store.counts() == {"pending": 0, "sent": 1, "dead": 1}
    dead = store.get("a1", "at_risk", "ops", "email")
    assert dead is not None
    assert (dead.status, dead.last_error) == ("dead", "SMTP 550: no such user")


def test_a_send_is_recorded_once_even_if_two_dispatchers_hold_it(store: SendLog) -> None:
    store.enqueue([send()], now=T0)
    (mine,) = store.due(T0)
    (theirs,) = store.due(T0)
    store.record(mine, "ok", at=T0, detail="delivered")
    with pytest.raises(SendNotPending):
        store.record(theirs, "ok", at=T0, detail="delivered")
    assert [a.outcome for a in store.attempts("a1")] == ["ok"]  # the refused record left no attempt row behind


def test_a_retry_without_its_next_attempt_is_refused(store: SendLog) -> None:
    store.enqueue([send()], now=T0)
    (first,) = store.due(T0)
    with pytest.raises(ValueError, match="next_attempt_at"):
        store.record(first, "retry", at=T0, detail="HTTP 500")
