"""Rendering the Helm chart for the deploy tests: the pinned Helm that `make test` installs (deploy/tools/helm.sh)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "okrstream"
HELM = REPO / ".tools" / "bin" / "helm"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned Helm binary; missing means the set-up did not run, which is a failure, not a skip."""
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: `make test` builds it (bash deploy/tools/helm.sh)")
    return HELM


@pytest.fixture(scope="session")
def render_text(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`helm template` of the chart with extra values; the completed process, for tests of failures."""
    counter = iter(range(1_000_000))

    def run(
        values: dict[str, Any] | None = None, *, kube_version: str = "1.35.0", release: str = "okr"
    ) -> subprocess.CompletedProcess[str]:
        path = tmp_path_factory.mktemp("values") / f"values-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(values or {}))
        command = [
            str(helm),
            "template",
            release,
            str(CHART),
            "--namespace",
            "okrstream",
            "--kube-version",
            kube_version,
            "--values",
            str(path),
        ]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    return run


@pytest.fixture(scope="session")
def render(render_text: Callable[..., subprocess.CompletedProcess[str]]) -> Render:
    """The chart's objects for the given values (fails the test on a rendering error)."""

    def run(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        done = render_text(values, **kwargs)
        if done.returncode:
            pytest.fail(f"helm template failed:\n{done.stderr}")
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    return run


@pytest.fixture(scope="session")
def subscriptions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    """(topic, consumer group) of every subscription each service's composition root makes, with default settings.

    Each service is built as its ``__main__`` builds it (SQLite stores in a temporary
    directory, nothing started); the app's broker holds the subscriptions.
    """
    import importlib
    import os
    from unittest import mock

    from okr_runtime.tokens import issue

    home = tmp_path_factory.mktemp("services")
    tokens = home / "tokens.json"
    issue(tokens, "ops@example.com", ["portfolio_lead"], ["demo"])
    found: dict[str, list[tuple[str, str]]] = {}
    for name in ("checkins", "rollup", "drift", "connectors", "notifier", "web"):
        env = {
            "OKR_EVENT_STORE": "sqlite",
            "OKR_SQLITE_PATH": str(home / "events.sqlite"),
            f"OKR_{name.upper()}_TOKENS_FILE": str(tokens),
            f"OKR_{name.upper()}_SQLITE_PATH": str(home / f"{name}.sqlite"),
        }
        bootstrap = importlib.import_module(f"okr_{name}.bootstrap")
        settings_module = importlib.import_module(f"okr_{name}.settings")
        [settings_class] = [
            value
            for key, value in vars(settings_module).items()
            if key.endswith("Settings") and value.__module__ == settings_module.__name__
        ]
        with mock.patch.dict(os.environ, env):
            app = bootstrap.create_app(settings_class())
        broker = getattr(app.state, "broker", None)
        subscribers = broker.subscribers if broker is not None else []
        found[name] = sorted((topic, s.group_id) for s in subscribers for topic in s.topic_names)
    return found


STRIMZI_VALIDATOR = REPO / ".tools" / "strimzi" / "validate.mjs"


@pytest.fixture(scope="session")
def strimzi_problems() -> Callable[[list[dict[str, Any]]], list[str]]:
    """Validate Strimzi resources against Strimzi's CRD schemas; the invalid ones, one line each."""
    import json
    import shutil

    node = shutil.which("node")
    if not STRIMZI_VALIDATOR.exists() or not node:
        pytest.fail(f"{STRIMZI_VALIDATOR} or node is missing: `make test` installs it (bash deploy/tools/strimzi/install.sh)")

    def run(objects: list[dict[str, Any]]) -> list[str]:
        done = subprocess.run([node, str(STRIMZI_VALIDATOR)], input=json.dumps(objects), capture_output=True, text=True, check=False)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout.splitlines()

    return run
