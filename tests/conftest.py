"""The running system for the suites that cross services (browser, e2e, faults): real processes on real Kafka.

Each service runs as `python -m okr_<service>` (exactly as `make run` starts it) on a free
port, with its own SQLite files (or a PostgreSQL schema of its own), consumer groups
unique to the system and a tokens file of its own. The notifier talks to a real SMTP
server (aiosmtpd) and to a Slack-compatible HTTP server on 127.0.0.1, both of which keep
what they receive. A test may SIGKILL one service and start it again over the same
files and groups.

pytest imports conftest files by path (`--import-mode=importlib`), so nothing here is
importable by a test module: tests reach it through the fixtures at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiosmtpd.controller import Controller

from okr_runtime.auth import TokenEntry, TokenFile, TokenRole, hash_token
from okr_runtime.readiness import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "checkins": "okr_checkins",
    "rollup": "okr_rollup",
    "drift": "okr_drift",
    "connectors": "okr_connectors",
    "notifier": "okr_notifier",
    "web": "okr_web",
}
BACKEND = ("checkins", "rollup", "drift", "connectors", "notifier")
"""The five services behind the web pages."""
PEOPLE = {"cpo@example.com": "t-cpo", "ana@example.com": "t-ana", "ben@example.com": "t-ben"}
JIRA_SECRET = "jira-e2e-secret"
SLACK_TOKEN = "xoxb-e2e"


# --- Slack and SMTP on 127.0.0.1 -----------------------------------------------------------------------------------


class SlackRecorder:
    """A Slack Web API on https://127.0.0.1 that accepts every `chat.postMessage` and keeps its body.

    The notifier posts to Slack over HTTPS only, so the server has a self-signed certificate
    (made by `openssl`) that the notifier process trusts through `SSL_CERT_FILE`.
    """

    def __init__(self, home: Path) -> None:
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ok = self.path.endswith("/chat.postMessage") and self.headers.get("Authorization") == f"Bearer {SLACK_TOKEN}"
                if ok:
                    with recorder.lock:
                        recorder.posts.append(body)
                answer = (
                    {"ok": True, "channel": body.get("channel"), "ts": f"{time.time():.6f}"}
                    if ok
                    else {"ok": False, "error": "invalid_auth"}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(answer).encode())

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.cert, key = home / "slack-cert.pem", home / "slack-key.pem"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(self.cert)),
            ],
            check=True,
            capture_output=True,
        )
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.cert, key)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_port}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, channel_prefix: str) -> list[dict[str, Any]]:
        """The posts to channels starting with `channel_prefix` (a portfolio's people have Slack ids `U-<portfolio>-<name>`)."""
        with self.lock:
            return [post for post in self.posts if str(post.get("channel", "")).startswith(channel_prefix)]


class Mailbox:
    """An SMTP server on 127.0.0.1 (aiosmtpd) keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = free_port()  # aiosmtpd checks it is up by connecting, so it needs a real port
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, portfolio_id: str) -> list[Message]:
        """The messages to a portfolio's people (addresses `<name>+<portfolio>@example.com`)."""
        return [m for m in list(self.messages) if f"+{portfolio_id}@" in str(m["To"])]


# --- Writing to Kafka from a test ------------------------------------------------------------------------------------


class KafkaWriter:
    """A producer on a loop of its own, for synchronous tests: each send waits for the broker's ack, retrying while it is away."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.producer: AIOKafkaProducer | None = None

    def send(self, topic: str, value: bytes, key: bytes, headers: Mapping[str, str] | None = None, *, timeout_s: float = 120) -> None:
        """Produce one record and wait for its ack (a broker that is down is waited for, up to `timeout_s`)."""
        encoded = [(name, content.encode()) for name, content in (headers or {}).items()]
        asyncio.run_coroutine_threadsafe(self._send(topic, value, key, encoded, timeout_s), self.loop).result()

    async def _send(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.producer is None:
                    self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10000)
                    await self.producer.start()
                await self.producer.send_and_wait(topic, value, key=key, headers=headers)
                return
            except (KafkaError, OSError):
                if time.monotonic() > deadline:
                    raise
                await self._drop()
                await asyncio.sleep(0.5)

    async def _drop(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()

    def close(self) -> None:
        """Stop the producer and the loop."""
        asyncio.run_coroutine_threadsafe(self._drop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --- The services as processes ---------------------------------------------------------------------------------------


def write_tokens(path: Path) -> None:
    """The tokens file every service reads: the CPO (portfolio lead) and two product managers."""
    entries = [
        TokenEntry(
            sha256=hash_token(token),
            principal=person,
            roles=frozenset({TokenRole.PORTFOLIO_LEAD}) if person.startswith("cpo") else frozenset(),
        )
        for person, token in PEOPLE.items()
    ]
    path.write_text(TokenFile(tokens=entries).model_dump_json())


def routing(portfolios: Iterable[str]) -> dict[str, Any]:
    """Notifier routing: warning and above to every recipient by Slack DM and e-mail, no quiet hours.

    A portfolio's people have addresses of its own (`U-<portfolio>-ana`, `ana+<portfolio>@example.com`),
    so a test finds its portfolio's notifications among everyone's.
    """

    def people(pid: str) -> dict[str, Any]:
        return {person: {"slack_user": f"U-{pid}-{person.split('@')[0]}", "email": person.replace("@", f"+{pid}@")} for person in PEOPLE}

    rules = [{"min_severity": "warning", "channels": ["slack", "email"]}]
    return {"link_base": "https://okr.example.com", "portfolios": {pid: {"people": people(pid), "rules": rules} for pid in portfolios}}


@dataclass
class Service:
    """One service process: started, SIGKILLed and started again over the same files, port and groups."""

    name: str
    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process without waiting for it."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", MODULES[self.name]], env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Wait until `/health/ready` answers 200."""
        assert self.process is not None, f"{self.name} was not launched"
        wait_until_ready(self.name, self.url, self.process, self.log, timeout_s)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class LocalSystem:
    """The running services, the Kafka they share, and their consumer groups."""

    kafka_bootstrap: str
    home: Path
    services: dict[str, Service] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    writer: KafkaWriter | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {name: service.url for name, service in self.services.items()}

    def api(self, service: str, person: str = "cpo@example.com") -> httpx.Client:
        """A client of one service's API, authenticated as `person`."""
        return httpx.Client(base_url=self.urls[service], headers={"Authorization": f"Bearer {PEOPLE[person]}"}, timeout=10)

    def token(self, person: str) -> str:
        """The bearer token of `person` (the CPO, Ana or Ben at example.com)."""
        return PEOPLE[person]

    def dead_letter_topic(self, group: str) -> str:
        """The dead-letter topic of one of the system's groups (`rollup`, `drift`, `checkins.kpi`, `notifier`)."""
        return f"okr.dead-letter.{self.groups[group]}.v1"

    def publish(self, topic: str, value: bytes, key: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Produce one record to the system's Kafka and wait for the ack (retrying while the broker is away)."""
        if self.writer is None:
            self.writer = KafkaWriter(self.kafka_bootstrap)
        self.writer.send(topic, value, key, headers)

    def kill(self, name: str) -> None:
        """SIGKILL one service."""
        self.services[name].kill()

    def start(self, name: str) -> None:
        """Start one service again (same files, port and groups) and wait until it is ready."""
        self.services[name].launch()
        self.services[name].wait_ready()

    def stop(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after 20 s)."""
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.terminate()
        for service in self.services.values():
            service.terminate()
        if self.writer is not None:
            self.writer.close()


def _own_env(
    system: LocalSystem, tokens: Path, run: str, portfolios: Iterable[str], slack: SlackRecorder | None, mailbox: Mailbox | None
) -> dict[str, dict[str, str]]:
    home = system.home
    system.groups = {
        "rollup": f"rollup.{run}",
        "drift": f"drift.{run}",
        "checkins.kpi": f"checkins.kpi.{run}",
        "notifier": f"notifier.{run}",
    }
    (home / "routing.json").write_text(json.dumps(routing(portfolios)))
    notifier = {"OKR_NOTIFIER_SQLITE_PATH": str(home / "notifier.sqlite"), "OKR_NOTIFIER_GROUP": system.groups["notifier"]}
    notifier |= {"OKR_NOTIFIER_ROUTING_FILE": str(home / "routing.json"), "OKR_NOTIFIER_DISPATCH_IDLE_S": "0.1"}
    if slack is not None:
        notifier |= {"OKR_NOTIFIER_SLACK_BOT_TOKEN": SLACK_TOKEN, "OKR_NOTIFIER_SLACK_API_BASE": slack.url}
        notifier |= {"OKR_NOTIFIER_SLACK_ALLOWED_HOSTS": "127.0.0.1", "SSL_CERT_FILE": str(slack.cert)}
    if mailbox is not None:
        notifier |= {
            "OKR_NOTIFIER_SMTP_HOST": "127.0.0.1",
            "OKR_NOTIFIER_SMTP_PORT": str(mailbox.port),
            "OKR_NOTIFIER_SMTP_STARTTLS": "false",
        }
    return {
        "checkins": {
            "OKR_SQLITE_PATH": str(home / "checkins.sqlite"),
            "OKR_CHECKINS_TOKENS_FILE": str(tokens),
            "OKR_CHECKINS_KPI_GROUP": system.groups["checkins.kpi"],
            "OKR_CHECKINS_RELAY_IDLE_S": "0.1",
        },
        "rollup": {
            "OKR_ROLLUP_SQLITE_PATH": str(home / "rollup.sqlite"),
            "OKR_ROLLUP_TOKENS_FILE": str(tokens),
            "OKR_ROLLUP_GROUP": system.groups["rollup"],
        },
        "drift": {
            "OKR_DRIFT_SQLITE_PATH": str(home / "drift.sqlite"),
            "OKR_DRIFT_TOKENS_FILE": str(tokens),
            "OKR_DRIFT_GROUP": system.groups["drift"],
        },
        "connectors": {
            "OKR_CONNECTORS_SQLITE_PATH": str(home / "connectors.sqlite"),
            "OKR_CONNECTORS_TOKENS_FILE": str(tokens),
            "OKR_CONNECTORS_JIRA_WEBHOOK_SECRET": JIRA_SECRET,
            "OKR_CONNECTORS_RELAY_IDLE_S": "0.1",
        },
        "notifier": notifier,
        "web": {
            "OKR_WEB_TOKENS_FILE": str(tokens),
            "OKR_WEB_CHECKINS_URL": system.urls["checkins"],
            "OKR_WEB_ROLLUP_URL": system.urls["rollup"],
            "OKR_WEB_DRIFT_URL": system.urls["drift"],
        },
    }


def launch_system(
    kafka_bootstrap: str,
    home: Path,
    names: Iterable[str] = BACKEND,
    *,
    portfolios: Iterable[str] = (),
    slack: SlackRecorder | None = None,
    mailbox: Mailbox | None = None,
    env: Mapping[str, str] | None = None,
) -> LocalSystem:
    """Start the named services together and wait until each is ready; `portfolios` are routed by the notifier."""
    tokens = home / "tokens.json"
    write_tokens(tokens)
    system = LocalSystem(kafka_bootstrap, home)
    names = tuple(names)
    for name in names:
        system.services[name] = Service(name, f"http://127.0.0.1:{free_port()}", {}, home / f"{name}.log")
    common = {
        "OKR_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "OKR_LOG_FORMAT": "text",
        "OKR_HTTP_HOST": "127.0.0.1",
        "OKR_DLQ_RETRY_BACKOFF_S": "0.2",
    }
    own = _own_env(system, tokens, uuid.uuid4().hex[:8], portfolios, slack, mailbox)
    for name, service in system.services.items():
        service.env = {**common, **own[name], **(env or {}), "OKR_HTTP_PORT": service.url.rsplit(":", 1)[1]}
    try:
        for service in system.services.values():  # start together: their start-ups overlap
            service.launch()
        for service in system.services.values():
            service.wait_ready()
    except BaseException:
        system.stop()
        raise
    return system


# --- What every story needs: a portfolio, and what the vendors send ------------------------------------------------


def define_portfolio(system: LocalSystem, pid: str, *, method: str = "weighted", metric: str | None = None) -> None:
    """A portfolio of two products in a cycle that is two thirds gone today (past drift's mid-cycle mark).

    `grow` (tier 1) ← `activation` (growth, weight 2: KRs `activated` 20→40 %, `churn` 5→2 %)
                    ← `reliability` (platform, weight 1: KRs `uptime` ≥ 99.9 %, `signups` 100→200 bound to KPI `metric`).
    Ana owns the key results, Ben leads platform, the CPO growth and the portfolio. Busy-but-flat is
    set out of reach so that delivery never races the scores into an alert, and capacity alerts do not wait for the plan
    to settle (a test's allocations are its whole plan).
    """
    today = datetime.now(UTC).date()
    base = f"/v1/portfolios/{pid}"
    objective = {"cycle_id": "q", "owner": "ana@example.com"}
    kr = {"owner": "ana@example.com"}
    steps: list[tuple[str, dict[str, Any]]] = [
        (
            "/v1/portfolios",
            {
                "portfolio_id": pid,
                "name": "E2E",
                "owner": "cpo@example.com",
                "rollup_method": method,
                "drift": {"busy_items": 1000, "capacity_settle_minutes": 0},
            },
        ),
        (f"{base}/products", {"product_id": "growth", "name": "Growth", "lead": "cpo@example.com"}),
        (f"{base}/products", {"product_id": "platform", "name": "Platform", "lead": "ben@example.com"}),
        (
            f"{base}/cycles",
            {
                "cycle_id": "q",
                "name": "This quarter",
                "starts_on": str(today - timedelta(days=60)),
                "ends_on": str(today + timedelta(days=29)),
            },
        ),
        (
            f"{base}/objectives",
            {**objective, "objective_id": "grow", "tier": 1, "title": "A healthy customer base", "owner": "cpo@example.com"},
        ),
        (
            f"{base}/objectives",
            {**objective, "objective_id": "activation", "tier": 2, "title": "Customers succeed in week one", "product_id": "growth"}
            | {"contributes_to": {"parent_id": "grow", "weight": 2}},
        ),
        (
            f"{base}/objectives",
            {**objective, "objective_id": "reliability", "tier": 2, "title": "Checkout stays up", "product_id": "platform"}
            | {"contributes_to": {"parent_id": "grow", "weight": 1}},
        ),
        (
            f"{base}/key-results",
            {
                **kr,
                "kr_id": "activated",
                "objective_id": "activation",
                "title": "Activated accounts",
                "baseline": 20,
                "target": 40,
                "unit": "%",
            },
        ),
        (
            f"{base}/key-results",
            {**kr, "kr_id": "churn", "objective_id": "activation", "title": "First-month churn", "baseline": 5, "target": 2, "unit": "%"},
        ),
        (
            f"{base}/key-results",
            {**kr, "kr_id": "uptime", "objective_id": "reliability", "title": "Checkout availability", "kind": "threshold"}
            | {"direction": "at_least", "target": 99.9, "unit": "%"},
        ),
        (
            f"{base}/key-results",
            {**kr, "kr_id": "signups", "objective_id": "reliability", "title": "Weekly sign-ups", "baseline": 100, "target": 200}
            | {"unit": "signups", "kpi_binding": metric or f"signups-{pid}"},
        ),
    ]
    with system.api("checkins") as cpo:
        for path, body in steps:
            response = cpo.post(path, json=body)
            assert response.status_code == 201, f"{path}: {response.text}"
    if "connectors" in system.services:
        rules = [{"source": "jira", "project": jira_project(pid), "portfolio_id": pid, "kr_ids": ["activated"]}]
        with system.api("connectors") as cpo:
            response = cpo.put(f"/v1/connectors/mappings/{pid}", json={"rules": rules, "slack_channels": {}})
            assert response.status_code in (200, 201), response.text


def jira_project(pid: str) -> str:
    """The Jira project key mapped to a portfolio's `activated` key result."""
    return "P" + hashlib.sha256(pid.encode()).hexdigest()[:8].upper()


def jira_done(pid: str, number: int, done_at: datetime) -> bytes:
    """Jira's own `jira:issue_updated` webhook (the captured one in the connectors' test payloads), issue `<project>-<number>` to done."""
    change: dict[str, Any] = json.loads((ROOT / "services/connectors/tests/payloads/jira_issue_updated_status_to_done.json").read_text())
    issue, project = change["issue"], jira_project(pid)
    stamp = done_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    issue["id"] = str(int(project[1:], 16) % 10**6 * 1000 + number)  # Jira's ids are unique per site, so per portfolio here
    issue["key"] = f"{project}-{number}"
    issue["fields"] |= {"updated": stamp, "resolutiondate": stamp, "summary": f"Onboarding step {number}"}
    issue["fields"]["project"]["key"] = project
    change["timestamp"] = int(done_at.timestamp() * 1000)
    return json.dumps(change).encode()


def jira_signed(body: bytes, delivery: str) -> dict[str, str]:
    """The headers Jira sends: `X-Hub-Signature: sha256=<HMAC-SHA256(secret, raw body)>` and the delivery id."""
    signature = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={signature}", "X-Atlassian-Webhook-Identifier": delivery, "Content-Type": "application/json"}


@dataclass(frozen=True)
class Vendors:
    """What the tests need to speak as Jira, and where notifications land."""

    slack: SlackRecorder
    mailbox: Mailbox
    jira_done: Callable[[str, int, datetime], bytes] = jira_done
    jira_signed: Callable[[bytes, str], dict[str, str]] = jira_signed
    jira_project: Callable[[str], str] = jira_project


# --- Fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vendors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vendors]:
    """A Slack API and an SMTP server on 127.0.0.1 keeping what they receive, and Jira's webhook signing."""
    slack, mailbox = SlackRecorder(tmp_path_factory.mktemp("slack")), Mailbox()
    yield Vendors(slack, mailbox)
    slack.server.shutdown()
    mailbox.controller.stop()


SystemLauncher = Callable[..., LocalSystem]


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemLauncher]:
    """`launch(kafka_bootstrap, names=..., portfolios=..., slack=..., mailbox=..., env=...)`: a running `LocalSystem`.

    Every system launched is stopped when the module ends.
    """
    systems: list[LocalSystem] = []

    def start(kafka_bootstrap: str, names: Iterable[str] = BACKEND, **options: Any) -> LocalSystem:
        system = launch_system(kafka_bootstrap, tmp_path_factory.mktemp("system"), names, **options)
        systems.append(system)
        return system

    yield start
    for system in systems:
        system.stop()


@pytest.fixture(scope="session")
def portfolio_defined() -> Callable[..., None]:
    """`portfolio_defined(system, pid, method="weighted", metric=None)`: the two-product portfolio of `define_portfolio`."""
    return define_portfolio
