from okr_contracts import TOPICS, schemas
from okr_runtime import asyncapi


def test_committed_topic_schemas_match_the_models() -> None:
    drifted = [str(p.name) for p in schemas.drifted()]
    assert drifted == [], f"run `make schemas`: {drifted}"


def test_models_stay_backward_compatible_with_the_published_schemas() -> None:
    assert schemas.compatibility_report() == []


def test_every_event_type_is_published() -> None:
    for spec in TOPICS:
        for event in spec.events:
            assert schemas.published_path(spec, event).exists(), f"run `make publish-schemas` for {event.event_type()}"


def test_committed_asyncapi_document_matches_the_apps() -> None:
    assert asyncapi.DOC_PATH.read_text() == asyncapi.render()


def test_asyncapi_document_describes_every_topic() -> None:
    channels = asyncapi.document()["channels"]
    assert {c["address"] for c in channels.values()} >= {t.name for t in TOPICS}
