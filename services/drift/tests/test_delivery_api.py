"""A key result's delivery items over the API and the store: linked issues and chat blockers, newest change first; problems.

The portfolio "acme" is defined by the history of the seeded scenario (conftest), fed
to the service as checkins publishes it; delivery arrives as the connectors publish it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from okr_contracts.delivery import DeliverySource, SignalKind, SignalRaised, StatusCategory, WorkItemChanged
from okr_contracts.envelope import Envelope
from okr_drift.application import DriftService
from okr_drift.http import install_api
from okr_drift.store import DriftStore, PostgresDriftStore, SqliteDriftStore, Write
from okr_runtime.auth import Authenticator, TokenEntry, hash_token
from okr_runtime.problems import install_problem_handlers

CYCLE_START = datetime(2026, 7, 1, tzinfo=UTC)
NOW = CYCLE_START + timedelta(days=10)
KR = "kr-activation"
PATH = f"/v1/portfolios/acme/key-results/{KR}/delivery"
PROBLEM = "application/problem+json"
OLD_DOC = (
    '{"version":0,"kr_id":"kr-activation",'
    '"done_at":{"jira:10001":"2026-07-04T09:00:00Z","jira:10002":null},'
    '"changed_at":{"jira:10001":"2026-07-04T09:00:00Z","jira:10002":"2026-07-05T09:00:00Z"}}'
)
"""A delivery log as drift stored it before it kept what each item is."""


def day(n: float) -> datetime:
    return CYCLE_START + timedelta(days=n)


def issue(number: int, at: datetime, status: str, category: StatusCategory, *, portfolio: str = "acme") -> Envelope[Any]:
    """Jira issue ENG-<number> (id 1000<number>) linked to the key result, changed at `at`."""
    payload = WorkItemChanged(
        source=DeliverySource.JIRA,
        external_id=f"1000{number}",
        kr_ids=(KR,),
        portfolio_id=portfolio,
        key=f"ENG-{number}",
        title=f"Guided setup, step {number}",
        url=f"https://acme.atlassian.net/browse/ENG-{number}",
        status=status,
        status_category=category,
        changed_at=at,
        completed_at=at if category == StatusCategory.DONE else None,
    )
    return Envelope.wrap(payload, producer="connector-jira", occurred_at=at, recorded_at=at)


def blocker(at: datetime, text: str) -> Envelope[Any]:
    payload = SignalRaised(
        source=DeliverySource.SLACK,
        external_id="C06NRA6JLER:1783000000.000100",
        kr_ids=(KR,),
        portfolio_id="acme",
        kind=SignalKind.BLOCKER,
        channel="C06NRA6JLER",
        author="U024BE7LH",
        text=text,
        permalink="https://acme.slack.com/archives/C06NRA6JLER/p1783000000000100",
        posted_at=at,
    )
    return Envelope.wrap(payload, producer="connector-slack", occurred_at=at, recorded_at=at)


async def discard(records: Sequence[tuple[str, bytes]]) -> None:
    """Kafka is not part of these tests; the store is."""


OpenStore = Callable[[], DriftStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores over one empty database (a SQLite file, or a fresh schema in the session's PostgreSQL), as a new process would."""
    opened: list[DriftStore] = []

    def opener() -> DriftStore:
        if request.param == "sqlite":
            opened.append(SqliteDriftStore(tmp_path / "drift.sqlite"))
        else:
            opened.append(PostgresDriftStore(request.getfixturevalue("postgres_dsn"), request.getfixturevalue("postgres_schema")))
        return opened[-1]

    yield opener
    for found in opened:
        found.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DriftStore]:
    found = SqliteDriftStore(tmp_path / "drift.sqlite")
    yield found
    found.close()


async def defined(store: DriftStore, seeded_portfolio: Callable[[str], Any]) -> DriftService:
    """A service over the store that has read acme's history: the portfolio, its cycle, objective and key result."""
    service = DriftService(store, discard, lambda: NOW)
    for envelope in seeded_portfolio("acme").envelopes:
        await service.on_history(envelope)
    return service


def client_of(service: DriftService) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    tokens = [
        TokenEntry(sha256=hash_token("ana"), principal="ana"),
        TokenEntry(sha256=hash_token("elsewhere"), principal="ana", portfolios=frozenset({"other"})),
    ]
    install_api(app, service, Authenticator(tokens))
    return TestClient(app)


def where(item: dict[str, Any]) -> tuple[Any, ...]:
    """Where an item stands: status, category, when it was done and last changed."""
    return item["status"], item["status_category"], item["done_at"], item["changed_at"]


def items(client: TestClient, path: str = PATH) -> list[dict[str, Any]]:
    response = client.get(path, headers={"Authorization": "Bearer ana"})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def test_linked_issues_and_chat_blockers_are_listed_newest_change_first(
    store: DriftStore, seeded_portfolio: Callable[[str], Any]
) -> None:
    service = await defined(store, seeded_portfolio)
    for envelope in (
        issue(1, day(3), "In Progress", StatusCategory.IN_PROGRESS),
        issue(2, day(5), "Done", StatusCategory.DONE),
        blocker(day(6), "Blocked: the payments sandbox is down\nthread below"),
    ):
        await service.on_delivery(envelope)
    response = client_of(service).get(PATH, headers={"Authorization": "Bearer ana"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "portfolio_id": "acme",
        "kr_id": KR,
        "items": [
            {
                "item_id": "slack:C06NRA6JLER:1783000000.000100",
                "source": "slack",
                "key": None,
                "title": "Blocked: the payments sandbox is down",
                "url": "https://acme.slack.com/archives/C06NRA6JLER/p1783000000000100",
                "status": "blocker",
                "status_category": None,
                "done_at": None,
                "changed_at": "2026-07-07T00:00:00Z",
            },
            {
                "item_id": "jira:10002",
                "source": "jira",
                "key": "ENG-2",
                "title": "Guided setup, step 2",
                "url": "https://acme.atlassian.net/browse/ENG-2",
                "status": "Done",
                "status_category": "done",
                "done_at": "2026-07-06T00:00:00Z",
                "changed_at": "2026-07-06T00:00:00Z",
            },
            {
                "item_id": "jira:10001",
                "source": "jira",
                "key": "ENG-1",
                "title": "Guided setup, step 1",
                "url": "https://acme.atlassian.net/browse/ENG-1",
                "status": "In Progress",
                "status_category": "in_progress",
                "done_at": None,
                "changed_at": "2026-07-04T00:00:00Z",
            },
        ],
    }


async def test_a_later_change_updates_the_status_and_survives_a_restart(store: DriftStore, seeded_portfolio: Callable[[str], Any]) -> None:
    service = await defined(store, seeded_portfolio)
    late = issue(1, day(4), "In Review", StatusCategory.IN_PROGRESS)
    for envelope in (issue(1, day(3), "In Progress", StatusCategory.IN_PROGRESS), issue(1, day(6), "Done", StatusCategory.DONE), late):
        await service.on_delivery(envelope)
    [item] = items(client_of(service))
    assert where(item) == ("Done", "done", "2026-07-07T00:00:00Z", "2026-07-07T00:00:00Z")
    await service.on_delivery(issue(1, day(7), "Reopened", StatusCategory.TODO))
    restarted = DriftService(store, discard, lambda: NOW)
    await restarted.start()
    [item] = items(client_of(restarted))
    assert where(item) == ("Reopened", "todo", None, "2026-07-08T00:00:00Z")


async def test_a_key_result_without_linked_items_has_an_empty_list(store: DriftStore, seeded_portfolio: Callable[[str], Any]) -> None:
    client = client_of(await defined(store, seeded_portfolio))
    assert client.get(PATH, headers={"Authorization": "Bearer ana"}).json() == {"portfolio_id": "acme", "kr_id": KR, "items": []}
    assert items(client, "/v1/portfolios/acme/key-results/kr-unheard-of/delivery") == []


async def test_a_portfolio_drift_has_no_definition_of_is_not_found(store: DriftStore, seeded_portfolio: Callable[[str], Any]) -> None:
    service = await defined(store, seeded_portfolio)
    await service.on_delivery(issue(1, day(3), "Done", StatusCategory.DONE, portfolio="ghost"))  # delivery alone defines nothing
    client = client_of(service)
    for pid in ("nobody", "ghost"):
        response = client.get(f"/v1/portfolios/{pid}/key-results/{KR}/delivery", headers={"Authorization": "Bearer ana"})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert (problem["type"], problem["detail"]) == ("urn:okrstream:problem:unknown-id", f"drift knows no portfolio {pid}")


async def test_a_token_for_other_portfolios_is_forbidden_and_none_is_unauthorized(
    store: DriftStore, seeded_portfolio: Callable[[str], Any]
) -> None:
    client = client_of(await defined(store, seeded_portfolio))
    for headers, status in (({"Authorization": "Bearer elsewhere"}, 403), ({}, 401)):
        response = client.get(PATH, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == status


async def test_delivery_facts_stored_before_items_were_described_still_load_and_count(
    open_store: OpenStore, seeded_portfolio: Callable[[str], Any]
) -> None:
    store = open_store()
    await defined(store, seeded_portfolio)
    store.write(Write("acme", facts=[("delivery", KR, OLD_DOC)]))
    restarted = DriftService(open_store(), discard, lambda: NOW)
    await restarted.start()
    log = restarted.drifts["acme"].state.delivery[KR]
    assert (log.items, log.done_between(day(0), NOW)) == ({}, 1)
    listed = items(client_of(restarted))
    assert [(i["item_id"], i["source"], i["key"], i["title"], i["url"]) for i in listed] == [
        ("jira:10002", "jira", None, None, None),
        ("jira:10001", "jira", None, None, None),
    ]
    assert [where(i) for i in listed] == [
        (None, None, None, "2026-07-05T09:00:00Z"),
        (None, "done", "2026-07-04T09:00:00Z", "2026-07-04T09:00:00Z"),
    ]
    await restarted.on_delivery(issue(2, day(8), "In Review", StatusCategory.IN_PROGRESS))  # its next change describes it
    assert [(i["item_id"], i["key"], i["status"]) for i in items(client_of(restarted))] == [
        ("jira:10002", "ENG-2", "In Review"),
        ("jira:10001", None, None),
    ]
