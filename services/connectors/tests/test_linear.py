"""Linear webhooks and GraphQL issue nodes: issues as work items, project health, and what is ignored or rejected.

There is no real capture of a ProjectUpdate or of an issue update; those bodies are written here from the
fields Linear's SDK schema lists (``IssueWebhookPayload``, ``ProjectUpdateWebhookPayload``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from okr_connectors.vendors import linear
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import DeliverySource, ProjectHealth, ProjectHealthReported, StatusCategory, WorkItemChanged

PAYLOADS = Path(__file__).parent / "payloads"
IN_PROGRESS_STATE = "a2530cac-36a0-4b6d-9af0-6357784035d4"
DONE_STATE = "5e1b1d6a-0000-4000-8000-00000000d0e0"


def load(name: str) -> dict[str, Any]:
    """A payload file, as the HTTP layer hands it over (``json.loads`` of the body)."""
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def work_item(body: dict[str, Any], **options: Any) -> WorkItemChanged:
    """The work item of a webhook that must produce one."""
    event = linear.parse_webhook(body, **options)
    assert isinstance(event, WorkItemChanged)
    return event


def health_report(body: dict[str, Any]) -> ProjectHealthReported:
    """The health report of a webhook that must produce one."""
    event = linear.parse_webhook(body)
    assert isinstance(event, ProjectHealthReported)
    return event


def completed_update() -> dict[str, Any]:
    """The captured issue, moved from In Progress to Done."""
    body = load("linear_issue_create.json")
    body["action"] = "update"
    body["data"].update(
        identifier="WEB-44",
        stateId=DONE_STATE,
        state={"id": DONE_STATE, "color": "#5e6ad2", "name": "Done", "type": "completed"},
        updatedAt="2023-04-12T08:00:00.000Z",
        completedAt="2023-04-12T08:00:00.000Z",
        url="https://linear.app/webhooks/issue/WEB-44/outage",
    )
    body["updatedFrom"] = {"stateId": IN_PROGRESS_STATE, "completedAt": None, "updatedAt": "2023-04-11T10:10:15.037Z"}
    return body


def project_update(health: str | None = "atRisk") -> dict[str, Any]:
    """A ProjectUpdate create delivery with a health rating."""
    data = {
        "id": "9b7a3c1e-1111-4222-8333-444455556666",
        "body": "Checkout slips a week: the payment provider's sandbox is down.",
        "health": health,
        "projectId": "e65b2421-bad1-4075-bfd4-24be439c83f9",
        "project": {"id": "e65b2421-bad1-4075-bfd4-24be439c83f9", "name": "Zulip-Test-Project"},
        "userId": "e825c109-f691-4716-a85f-b68a2626531c",
        "user": {"id": "e825c109-f691-4716-a85f-b68a2626531c", "name": "Dhruv Shetty"},
        "createdAt": "2026-05-29T09:00:00.000Z",
        "updatedAt": "2026-05-29T09:00:00.000Z",
        "url": "https://linear.app/zulipdhruv/project/zulip-test-project-532c1333013b/updates",
    }
    return {
        "action": "create",
        "type": "ProjectUpdate",
        "data": data,
        "createdAt": "2026-05-29T09:00:00.000Z",
        "webhookTimestamp": 1780045200000,
    }


def test_the_captured_issue_creation_becomes_an_in_progress_work_item() -> None:
    item = work_item(load("linear_issue_create.json"), delivery_id="6f1d-delivery")
    assert item == WorkItemChanged(
        source=DeliverySource.LINEAR,
        external_id="3443a709-f2b5-46f2-a136-a0445fd432be",
        delivery_id="6f1d-delivery",
        key="WEB-44",
        title="This is regarding the outage that we faced during 11/12/22 from 2000 to 2200.",
        url="https://linear.app/webhooks/issue/WEB-44/this-is-regarding-the-outage-that-we-faced-during-111222-from-2000-to",
        status="In Progress",
        status_category=StatusCategory.IN_PROGRESS,
        team="WEB",
        assignee="674c90c8-35ea-454d-8ca4-5548258fd795",
        labels=("Improvement", "Feature", "Bug", "Custom Label"),
        changed_at=datetime(2023, 4, 11, 10, 10, 15, 37000, tzinfo=UTC),
    )
    assert (item.portfolio_id, item.kr_ids, item.item_type, item.project, item.parent_key) == (None, (), None, None, None)


def test_an_identifier_in_the_payload_wins_over_team_key_and_number() -> None:
    body = load("linear_issue_create.json")
    body["data"]["identifier"] = "WEB-4400"
    assert work_item(body).key == "WEB-4400"


def test_an_issue_without_identifier_team_key_or_number_is_rejected() -> None:
    body = load("linear_issue_create.json")
    del body["data"]["team"], body["data"]["number"]
    with pytest.raises(PayloadRejected, match=r"missing data\.identifier"):
        linear.parse_webhook(body)


def test_a_move_to_done_is_done_and_completed_at_completed_at() -> None:
    item = work_item(completed_update())
    assert (item.key, item.status, item.status_category) == ("WEB-44", "Done", StatusCategory.DONE)
    assert item.url == "https://linear.app/webhooks/issue/WEB-44/outage"
    assert item.completed_at == datetime(2023, 4, 12, 8, 0, tzinfo=UTC)
    assert item.changed_fields == ("stateId", "completedAt")


def test_the_previous_category_is_unknown_without_the_categories_of_states() -> None:
    assert work_item(completed_update()).previous_status_category is None


def test_the_previous_category_comes_from_the_state_it_moved_from() -> None:
    categories = {IN_PROGRESS_STATE: StatusCategory.IN_PROGRESS, DONE_STATE: StatusCategory.DONE}
    assert work_item(completed_update(), state_categories=categories).previous_status_category is StatusCategory.IN_PROGRESS


def test_a_previous_state_missing_from_the_categories_stays_unknown() -> None:
    assert work_item(completed_update(), state_categories={DONE_STATE: StatusCategory.DONE}).previous_status_category is None


def test_done_without_completed_at_is_completed_when_updated() -> None:
    body = completed_update()
    del body["data"]["completedAt"]
    assert work_item(body).completed_at == datetime(2023, 4, 12, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state_type", "category"),
    [
        ("triage", StatusCategory.TODO),
        ("backlog", StatusCategory.TODO),
        ("unstarted", StatusCategory.TODO),
        ("started", StatusCategory.IN_PROGRESS),
        ("completed", StatusCategory.DONE),
        ("canceled", StatusCategory.CANCELED),
    ],
)
def test_each_state_type_has_its_category(state_type: str, category: StatusCategory) -> None:
    body = load("linear_issue_create.json")
    body["data"]["state"]["type"] = state_type
    item = work_item(body)
    assert item.status_category is category
    assert (item.completed_at is not None) is (category is StatusCategory.DONE)


def test_a_project_and_parent_are_read_from_their_objects_or_ids() -> None:
    body = load("linear_issue_create.json")
    body["data"].update(projectId="p-1", parentId="3f0c-uuid", parent={"id": "3f0c-uuid", "identifier": "WEB-40"})
    item = work_item(body)
    assert (item.project, item.parent_key) == ("p-1", "WEB-40")


def test_a_parent_known_only_by_its_uuid_is_no_parent_key() -> None:
    body = load("linear_issue_create.json")
    body["data"]["parentId"] = "3f0c-uuid"
    assert work_item(body).parent_key is None


def test_an_issue_removal_is_ignored() -> None:
    body = load("linear_issue_create.json")
    body["action"] = "remove"
    assert linear.parse_webhook(body) is None


def test_the_captured_project_status_change_without_health_is_ignored() -> None:
    assert linear.parse_webhook(load("linear_project_update_status.json")) is None


def test_a_project_carrying_a_health_reports_it() -> None:
    body = load("linear_project_update_status.json")
    body["data"]["health"] = "offTrack"
    report = health_report(body)
    assert report == ProjectHealthReported(
        source=DeliverySource.LINEAR,
        external_id="e65b2421-bad1-4075-bfd4-24be439c83f9",
        project="e65b2421-bad1-4075-bfd4-24be439c83f9",
        health=ProjectHealth.OFF_TRACK,
        author="e825c109-f691-4716-a85f-b68a2626531c",
        reported_at=datetime(2026, 5, 28, 9, 59, 40, 256000, tzinfo=UTC),
    )


def test_a_project_update_reports_its_health_body_and_author() -> None:
    report = health_report(project_update())
    assert report == ProjectHealthReported(
        source=DeliverySource.LINEAR,
        external_id="9b7a3c1e-1111-4222-8333-444455556666",
        project="e65b2421-bad1-4075-bfd4-24be439c83f9",
        health=ProjectHealth.AT_RISK,
        body="Checkout slips a week: the payment provider's sandbox is down.",
        author="e825c109-f691-4716-a85f-b68a2626531c",
        reported_at=datetime(2026, 5, 29, 9, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("health", "expected"),
    [("onTrack", ProjectHealth.ON_TRACK), ("atRisk", ProjectHealth.AT_RISK), ("offTrack", ProjectHealth.OFF_TRACK)],
)
def test_each_linear_health_has_its_contract_value(health: str, expected: ProjectHealth) -> None:
    assert health_report(project_update(health)).health is expected


def test_a_project_update_without_health_is_ignored() -> None:
    assert linear.parse_webhook(project_update(None)) is None


def test_an_unknown_health_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="unknown Linear health 'onFire'"):
        linear.parse_webhook(project_update("onFire"))


def test_a_project_update_without_a_project_is_rejected() -> None:
    body = project_update()
    del body["data"]["projectId"], body["data"]["project"]
    with pytest.raises(PayloadRejected, match=r"missing data\.project\.id"):
        linear.parse_webhook(body)


def test_cycles_are_ignored() -> None:
    assert linear.parse_webhook({"action": "update", "type": "Cycle", "data": {"id": "c-1", "number": 7}}) is None


@pytest.mark.parametrize("kind", ["Comment", "IssueLabel", "Reaction"])
def test_other_types_are_rejected_by_name(kind: str) -> None:
    with pytest.raises(PayloadRejected, match=f"unknown Linear webhook type '{kind}'"):
        linear.parse_webhook({"action": "create", "type": kind, "data": {}})


def test_a_body_without_a_type_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="no type"):
        linear.parse_webhook({"action": "create", "data": {}})


def test_an_issue_without_data_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="data must be a JSON object"):
        linear.parse_webhook({"action": "create", "type": "Issue"})


def test_an_unknown_state_type_is_rejected() -> None:
    body = load("linear_issue_create.json")
    body["data"]["state"]["type"] = "paused"
    with pytest.raises(PayloadRejected, match=r"unknown Linear state type 'paused' at data\.state\.type"):
        linear.parse_webhook(body)


def test_an_issue_without_a_state_is_rejected() -> None:
    body = load("linear_issue_create.json")
    del body["data"]["state"]
    with pytest.raises(PayloadRejected, match=r"missing data\.state\.type"):
        linear.parse_webhook(body)


def test_a_graphql_issue_node_becomes_a_work_item() -> None:
    node = {
        "id": "3443a709-f2b5-46f2-a136-a0445fd432be",
        "identifier": "WEB-44",
        "title": "Outage follow-up",
        "url": "https://linear.app/webhooks/issue/WEB-44/outage",
        "updatedAt": "2023-04-12T08:00:00.000Z",
        "completedAt": "2023-04-12T08:00:00.000Z",
        "state": {"type": "completed", "name": "Done"},
        "team": {"key": "WEB"},
        "project": {"id": "e65b2421-bad1-4075-bfd4-24be439c83f9"},
        "labels": {"nodes": [{"name": "Bug"}, {"name": "Feature"}]},
        "assignee": {"id": "674c90c8-35ea-454d-8ca4-5548258fd795"},
        "parent": {"identifier": "WEB-40"},
    }
    assert linear.parse_graphql_issue(node) == WorkItemChanged(
        source=DeliverySource.LINEAR,
        external_id="3443a709-f2b5-46f2-a136-a0445fd432be",
        key="WEB-44",
        title="Outage follow-up",
        url="https://linear.app/webhooks/issue/WEB-44/outage",
        status="Done",
        status_category=StatusCategory.DONE,
        parent_key="WEB-40",
        project="e65b2421-bad1-4075-bfd4-24be439c83f9",
        team="WEB",
        assignee="674c90c8-35ea-454d-8ca4-5548258fd795",
        labels=("Bug", "Feature"),
        changed_at=datetime(2023, 4, 12, 8, 0, tzinfo=UTC),
        completed_at=datetime(2023, 4, 12, 8, 0, tzinfo=UTC),
    )


def test_a_graphql_node_with_nulls_for_its_optional_links_is_read() -> None:
    node: dict[str, Any] = {
        "id": "i-1",
        "identifier": "WEB-45",
        "title": "Unassigned",
        "url": None,
        "updatedAt": "2023-04-12T08:00:00.000Z",
        "completedAt": None,
        "state": {"type": "backlog", "name": "Backlog"},
        "team": {"key": "WEB"},
        "project": None,
        "labels": {"nodes": []},
        "assignee": None,
        "parent": None,
    }
    item = linear.parse_graphql_issue(node)
    assert (item.status_category, item.url, item.project, item.assignee, item.parent_key, item.labels) == (
        StatusCategory.TODO,
        None,
        None,
        None,
        None,
        (),
    )


def test_the_issue_selection_asks_for_every_field_the_parser_reads() -> None:
    for field in ("identifier", "updatedAt", "completedAt", "state { type name }", "labels { nodes { name } }", "parent { identifier }"):
        assert field in linear.ISSUE_SELECTION
