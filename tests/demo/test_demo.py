"""The demo `make run` loads delivers what it promises, against real services on real Kafka.

The services run as processes (`python -m okr_<service>`, as `make run` starts them) on free
ports with SQLite files of their own; the loader and the mail and Slack captures are run
exactly as `deploy/local/run.sh` runs them, under a portfolio id of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from okr_runtime.readiness import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "local" / "demo"
SERVICES = ("checkins", "rollup", "drift", "connectors", "notifier")


@dataclass
class Demo:
    """The running system and the demo loaded into it."""

    home: Path
    portfolio: str
    urls: dict[str, str]
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def token(self, person: str) -> str:
        """A person's development token (from dev-tokens.txt, as `make run` writes it)."""
        lines = (self.home / "dev-tokens.txt").read_text().splitlines()
        return next(line.split()[1] for line in lines if line.split()[0] == person)

    def get(self, service: str, path: str, **params: Any) -> Any:
        """One JSON answer, read as the CPO."""
        answer = httpx.get(
            f"{self.urls[service]}{path}", params=params, headers={"Authorization": f"Bearer {self.token('cpo@example.com')}"}
        )
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        return answer.json()

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """Start one process, its output in `<name>.log`."""
        log = (self.home / f"{name}.log").open("wb")
        self.processes.append(subprocess.Popen(command, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        self.names.append(name)

    def wait_ready(self, name: str) -> None:
        """Wait until the service answers /health/ready."""
        process = self.processes[self.names.index(name)]
        wait_until_ready(name, self.urls[name], process, self.home / f"{name}.log")

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 20 s)."""
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def secrets_of(home: Path) -> dict[str, str]:
    """The webhook secrets `load.py prepare` made."""
    lines = (home / "demo" / "webhook-secrets.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def service_env(demo: Demo, name: str, run: str) -> dict[str, str]:
    """What `make run` gives each service, on the test's ports and files."""
    tokens = str(demo.home / "checkins-tokens.json")
    own = {
        "checkins": {"OKR_SQLITE_PATH": str(demo.home / "checkins.sqlite"), "OKR_CHECKINS_KPI_GROUP": f"kpi-{run}"},
        "rollup": {
            "OKR_ROLLUP_SQLITE_PATH": str(demo.home / "rollup.sqlite"),
            "OKR_ROLLUP_TOKENS_FILE": tokens,
            "OKR_ROLLUP_GROUP": f"rollup-{run}",
        },
        "drift": {
            "OKR_DRIFT_SQLITE_PATH": str(demo.home / "drift.sqlite"),
            "OKR_DRIFT_TOKENS_FILE": tokens,
            "OKR_DRIFT_GROUP": f"drift-{run}",
        },
        "connectors": {"OKR_CONNECTORS_SQLITE_PATH": str(demo.home / "connectors.sqlite"), "OKR_CONNECTORS_TOKENS_FILE": tokens},
        "notifier": {
            "OKR_NOTIFIER_SQLITE_PATH": str(demo.home / "notifier.sqlite"),
            "OKR_NOTIFIER_GROUP": f"notifier-{run}",
            "OKR_NOTIFIER_ROUTING_FILE": str(demo.home / "routing.yaml"),
            "OKR_NOTIFIER_SMTP_HOST": "127.0.0.1",
            "OKR_NOTIFIER_SMTP_PORT": demo.env["SMTP_PORT"],
            "OKR_NOTIFIER_SMTP_STARTTLS": "false",
            "OKR_NOTIFIER_SLACK_API_BASE": f"https://127.0.0.1:{demo.env['SLACK_PORT']}/api",
            "OKR_NOTIFIER_SLACK_ALLOWED_HOSTS": "127.0.0.1",
            "OKR_NOTIFIER_SLACK_BOT_TOKEN": "xoxb-local-capture",
            "OKR_NOTIFIER_DRIFT_URL": demo.urls["drift"],
            "OKR_NOTIFIER_ROLLUP_URL": demo.urls["rollup"],
            "OKR_NOTIFIER_API_TOKEN": demo.token("notifier@example.com"),
            "OKR_NOTIFIER_DISPATCH_IDLE_S": "0.2",
            "SSL_CERT_FILE": str(demo.home / "slack-capture.pem"),
        },
    }
    return {"OKR_HTTP_PORT": demo.urls[name].rsplit(":", 1)[1], "OKR_CHECKINS_TOKENS_FILE": tokens, **own[name]}


@pytest.fixture(scope="module")
def demo(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The system started and the demo loaded, as `make run` does it."""
    home = tmp_path_factory.mktemp("demo")
    run = uuid.uuid4().hex[:8]
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES}
    env = {**os.environ, "OKR_KAFKA_BOOTSTRAP": kafka_bootstrap, "OKR_LOG_FORMAT": "text", "OKR_EVENT_STORE": "sqlite"}
    env |= {"SMTP_PORT": str(free_port()), "SLACK_PORT": str(free_port())}
    system = Demo(home, f"acme-{run}", urls, env)
    python = sys.executable
    try:
        subprocess.run([python, str(DEMO / "load.py"), "prepare", str(home)], check=True, cwd=ROOT)
        system.env |= secrets_of(home)
        capture = [python, str(DEMO / "capture.py"), str(home), "--smtp-port", env["SMTP_PORT"], "--slack-port", env["SLACK_PORT"]]
        system.start("capture", capture, {})
        first = ("checkins", "rollup", "drift", "connectors")
        for name in first:  # together: each takes seconds to import on a busy machine
            system.start(name, [python, "-m", f"okr_{name}"], service_env(system, name, run))
        for name in first:
            system.wait_ready(name)
        load = [python, str(DEMO / "load.py"), "load", str(home), "--portfolio", system.portfolio]
        load += ["--checkins", urls["checkins"], "--connectors", urls["connectors"], "--drift", urls["drift"]]
        loaded = subprocess.run(load, env=system.env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        (home / "loaded.txt").write_text(loaded.stdout)
        routing = (DEMO / "routing.yaml").read_text().replace("\n  acme:\n", f"\n  {system.portfolio}:\n")
        (home / "routing.yaml").write_text(routing)
        system.start("notifier", [python, "-m", "okr_notifier"], service_env(system, "notifier", run))
        system.wait_ready("notifier")
        yield system
    finally:
        system.stop()


@pytest.mark.e2e
def test_the_demo_has_three_products_and_objectives_at_every_tier(demo: Demo) -> None:
    portfolio = demo.get("checkins", f"/v1/portfolios/{demo.portfolio}")
    assert len(portfolio["products"]) >= 3
    assert {o["tier"] for o in portfolio["objectives"]} == {1, 2, 3}
    assert {kr["tier"] for kr in portfolio["key_results"]} == {1, 2, 3}


@pytest.mark.e2e
def test_every_key_result_has_ten_weekly_check_ins_over_ten_weeks(demo: Demo) -> None:
    portfolio = demo.get("checkins", f"/v1/portfolios/{demo.portfolio}")
    for kr in portfolio["key_results"]:
        history = demo.get("checkins", f"/v1/portfolios/{demo.portfolio}/key-results/{kr['kr_id']}/history", limit=500)["items"]
        moments = sorted(datetime.fromisoformat(r["occurred_at"]) for r in history if r["type"] == "CheckInRecorded")
        assert len(moments) >= 10, kr["kr_id"]
        assert (moments[-1] - moments[0]).days >= 63, kr["kr_id"]
        assert all(6 <= (later - earlier).days <= 8 for earlier, later in pairwise(moments)), kr["kr_id"]


@pytest.mark.e2e
def test_signed_vendor_webhooks_reach_drift_as_delivery_signal(demo: Demo) -> None:
    items = demo.get("drift", f"/v1/portfolios/{demo.portfolio}/key-results/payment-failures/delivery")["items"]
    keys = {item.get("key") for item in items}
    assert {"PAY-101", "PAY-105"} <= keys  # Jira issues
    search = demo.get("drift", f"/v1/portfolios/{demo.portfolio}/key-results/search-success/delivery")["items"]
    assert "SRCH-43" in {item.get("key") for item in search}  # a Linear issue
    status = demo.get("connectors", "/v1/connectors/status")
    assert status, "the connectors answer their status"


@pytest.mark.e2e
def test_drift_raises_alerts_on_the_demo(demo: Demo) -> None:
    alerts = demo.get("drift", f"/v1/portfolios/{demo.portfolio}/alerts")["items"]
    rules = {(a["rule"], a["node_id"]) for a in alerts}
    assert ("off_track", "payment-failures") in rules
    assert ("plan_overdue", "payment-failures") in rules
    assert ("busy_but_flat", "payment-failures") in rules


@pytest.mark.e2e
def test_the_demo_shows_a_squad_over_its_capacity_and_a_quarter_off_its_intended_balance(demo: Demo) -> None:
    [quarter] = demo.get("rollup", f"/v1/portfolios/{demo.portfolio}/capacity?cycle_id=demo-quarter")["cycles"]
    squads = {s["team_id"]: s for s in quarter["squads"]}
    assert (squads["squad-payments"]["allocated"], squads["squad-payments"]["capacity"], squads["squad-payments"]["over"]) == (8, 6, True)
    assert not squads["squad-relevance"]["over"]
    assert not squads["squad-activation"]["over"]
    assert quarter["balance"]["off"] is True
    assert quarter["balance"]["worst"] == "primary"


@pytest.mark.e2e
def test_the_notifier_sends_mail_over_smtp_and_posts_to_the_slack_capture(demo: Demo) -> None:
    deadline = time.monotonic() + 60
    mails: list[Path] = []
    posts: list[Path] = []
    while time.monotonic() < deadline and not (
        mails and posts and any("digest" in m.read_text().lower() or "sync" in m.read_text() for m in mails)
    ):
        time.sleep(0.5)
        mails, posts = sorted((demo.home / "mail").glob("*.eml")), sorted((demo.home / "slack").glob("*.json"))
    assert mails, f"no e-mail captured; see {demo.home / 'notifier.log'}"
    assert posts, f"no Slack post captured; see {demo.home / 'notifier.log'}"
    assert any("sync exceptions" in m.read_text() for m in mails), "the sync digest was e-mailed"
    assert any("payment-failures" in p.read_text() for p in posts)
