import json
import uuid

import pytest
from pydantic import ValidationError

from okr_contracts import TOPICS, Envelope, Headers, topic
from okr_contracts.examples import EXAMPLES
from okr_contracts.kr_events import CheckInRecorded, CycleStarted, KeyResultDefined
from okr_contracts.topics import MalformedMessage, UnknownEventType, dead_letter_topic


def _checkin(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "portfolio_id": "p1",
        "aggregate_id": "kr-1",
        "aggregate_version": 2,
        "actor": "ana",
        "kr_id": "kr-1",
        "confidence": 0.5,
        "what_changed": "shipped",
    }
    return {**fields, **overrides}


def test_every_registered_event_type_has_an_example() -> None:
    registered = {e.event_type() for spec in TOPICS for e in spec.events}
    assert registered == {type(e).event_type() for e in EXAMPLES}


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: type(p).event_type())
def test_every_example_survives_the_wire_unchanged(payload: CheckInRecorded) -> None:
    spec = next(s for s in TOPICS if type(payload) in s.events)
    envelope = Envelope.wrap(payload, producer="test")
    decoded = spec.decode(envelope.to_json_bytes(), tolerant=False)
    assert decoded == envelope
    assert decoded.data == payload


def test_envelope_headers_mirror_id_type_and_version() -> None:
    envelope = Envelope.wrap(CheckInRecorded(**_checkin()), producer="checkins")
    assert envelope.headers() == {
        Headers.EVENT_ID: str(envelope.event_id),
        Headers.EVENT_TYPE: "CheckInRecorded",
        Headers.SCHEMA_VERSION: "1",
        Headers.CONTENT_TYPE: "application/json",
    }


def test_each_topic_keys_its_messages_as_documented() -> None:
    keys = {}
    for payload in EXAMPLES:
        spec = next(s for s in TOPICS if type(payload) in s.events)
        keys[spec.name] = spec.key_for(Envelope.wrap(payload, producer="t"))
    assert keys == {
        "okr.kr-events.v1": b"acme",
        "okr.delivery.v1": b"slack:C024BE91L:1355517523.000005",
        "okr.metrics.v1": b"billing.churn_rate",
        "okr.scores.v1": b"acme/kr-churn",
        "okr.alerts.v1": b"acme",
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"confidence": 1.01}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"value": float("nan")}, "value"),
        ({"value": float("inf")}, "value"),
        ({"kr_id": ""}, "kr_id"),
        ({"kr_id": "has space"}, "kr_id"),
        ({"aggregate_version": 0}, "aggregate_version"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_producers_cannot_build_an_invalid_check_in(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CheckInRecorded(**_checkin(**overrides))
    assert field in str(info.value)


def test_a_cycle_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValidationError, match="ends_on is before starts_on"):
        CycleStarted(
            portfolio_id="p",
            aggregate_id="c",
            aggregate_version=1,
            actor="a",
            cycle_id="c",
            name="Q",
            cadence="quarterly",
            starts_on="2026-07-01",
            ends_on="2026-06-30",
        )


def test_events_are_frozen() -> None:
    event = CheckInRecorded(**_checkin())
    with pytest.raises(ValidationError):
        event.confidence = 0.9  # type: ignore[misc]


def test_consumers_read_tolerantly_and_ignore_fields_they_do_not_know() -> None:
    raw = Envelope.wrap(CheckInRecorded(**_checkin()), producer="t").as_json()
    raw["added_later"] = True
    raw["data"]["mood"] = "good"
    decoded = topic("okr.kr-events.v1").decode(json.dumps(raw))
    assert decoded.data == CheckInRecorded(**_checkin())
    with pytest.raises(MalformedMessage, match="Extra inputs"):
        topic("okr.kr-events.v1").decode(json.dumps(raw), tolerant=False)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (b"\xff\xfe not json", MalformedMessage, "not JSON"),
        (b"[1, 2]", MalformedMessage, "no string field `type`"),
        (b'{"type": "Nope"}', UnknownEventType, "carries no event of type 'Nope'"),
        (b'{"type": "CheckInRecorded", "data": {}}', MalformedMessage, "invalid CheckInRecorded"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(value: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        topic("okr.kr-events.v1").decode(value)


def test_a_message_of_another_topic_is_refused() -> None:
    envelope = Envelope.wrap(CheckInRecorded(**_checkin()), producer="t")
    with pytest.raises(UnknownEventType):
        topic("okr.scores.v1").decode(envelope.to_json_bytes())


def test_registry_settings_follow_the_design() -> None:
    settings = {t.name: (t.cleanup_policy, t.retention_ms, t.key) for t in TOPICS}
    assert settings["okr.kr-events.v1"] == ("delete", -1, "portfolio_id")
    assert settings["okr.scores.v1"][0:1] == ("compact",)
    assert all(t.name.startswith("okr.") and t.name.endswith(".v1") for t in TOPICS)
    assert dead_letter_topic("rollup") == "okr.dead-letter.rollup.v1"


def test_key_result_defaults_are_explicit_on_the_wire() -> None:
    event = KeyResultDefined(
        portfolio_id="p",
        aggregate_id="k",
        aggregate_version=1,
        actor="a",
        kr_id="k",
        objective_id="o",
        cycle_id="c",
        tier=2,
        title="Grow activation",
        kind="metric",
        owner="a",
    )
    wire = json.loads(Envelope.wrap(event, producer="t", event_id=uuid.UUID(int=1)).to_json_bytes())
    assert wire["data"]["weight"] == 1.0
    assert wire["data"]["scorekeeper"] is None
