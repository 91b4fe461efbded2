from pathlib import Path

import pytest
from pydantic import ValidationError

from okr_runtime.settings import RuntimeSettings


def test_defaults_run_locally_with_the_embedded_event_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OKR_KAFKA_BOOTSTRAP", "OKR_EVENT_STORE", "OKR_HTTP_HOST"):
        monkeypatch.delenv(name, raising=False)  # a developer's or test session's environment must not stand in for the defaults
    settings = RuntimeSettings()
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.event_store == "sqlite"
    assert settings.http_host == "127.0.0.1"


def test_shared_keys_are_read_from_okr_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_KAFKA_BOOTSTRAP", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("OKR_EVENT_STORE", "postgres")
    monkeypatch.setenv("OKR_POSTGRES_DSN", "postgresql://okr@db:5432/okr")
    monkeypatch.setenv("OKR_SQLITE_PATH", "/var/lib/okr/store.sqlite")
    settings = RuntimeSettings()
    assert settings.kafka_bootstrap == "kafka-0:9092,kafka-1:9092"
    assert settings.event_store == "postgres"
    assert settings.sqlite_path == Path("/var/lib/okr/store.sqlite")


def test_settings_can_be_passed_in_without_touching_the_environment() -> None:
    settings = RuntimeSettings(kafka_bootstrap="k:1", dlq_max_attempts=2)
    assert (settings.kafka_bootstrap, settings.dlq_max_attempts) == ("k:1", 2)


def test_bad_values_are_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_EVENT_STORE", "mysql")
    with pytest.raises(ValidationError, match="OKR_EVENT_STORE"):
        RuntimeSettings()
