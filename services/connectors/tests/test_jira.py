"""Jira webhooks and search results as work items: every captured payload, the fallbacks, and what is ignored or rejected."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from okr_connectors.vendors import jira
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import DeliverySource, StatusCategory, WorkItemChanged

PAYLOADS = Path(__file__).parent / "payloads"


def load(name: str) -> dict[str, Any]:
    """A payload file, as the HTTP layer hands it over (``json.loads`` of the body)."""
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def parsed(body: dict[str, Any], **options: Any) -> WorkItemChanged:
    """The work item of a webhook that must produce one."""
    item = jira.parse_webhook(body, **options)
    assert item is not None
    return item


def test_a_created_issue_becomes_a_todo_work_item() -> None:
    item = parsed(load("jira_issue_created.json"), delivery_id="d-1")
    assert item == WorkItemChanged(
        source=DeliverySource.JIRA,
        external_id="10040",
        delivery_id="d-1",
        key="TES-41",
        title="Unit test summary",
        url="https://some-instance-test.atlassian.net/browse/TES-41",
        item_type="Story",
        status="To Do",
        status_category=StatusCategory.TODO,
        project="TES",
        labels=("test-label",),
        changed_fields=("description", "priority", "reporter", "status", "summary"),
        changed_at=datetime(2019, 2, 16, 3, 1, 52, 971000, tzinfo=UTC),
    )
    assert item.portfolio_id is None
    assert item.kr_ids == ()


def test_the_legacy_epic_link_gives_the_parent_and_the_account_id_the_assignee() -> None:
    item = parsed(load("jira_issue_created_cloud_with_epic_link_customfield.json"))
    assert (item.external_id, item.key, item.title) == ("10509", "KT-22", "Lots of fields selected")
    assert item.url == "https://mmtest.atlassian.net/browse/KT-22"
    assert item.parent_key == "KT-17"
    assert item.assignee == "5cedcb4355a88a0fc86388ba"
    assert (item.project, item.item_type, item.labels) == ("KT", "Task", ("Label1", "Label2"))
    assert (item.status, item.status_category) == ("To Do", StatusCategory.TODO)
    assert item.changed_fields == (
        "assignee",
        "customfield_10073",
        "customfield_10076",
        "description",
        "fixVersions",
        "priority",
        "reporter",
        "status",
        "summary",
    )
    assert item.changed_at == datetime(2019, 8, 27, 19, 43, 24, 193000, tzinfo=UTC)
    assert item.completed_at is None


def test_a_sprint_change_is_a_change_of_the_sprint_field_only() -> None:
    item = parsed(load("jira_issue_updated_sprint_field.json"))
    assert (item.key, item.title, item.status_category) == ("TES-41", "Unit test summary 1", StatusCategory.TODO)
    assert item.changed_fields == ("Sprint",)
    assert item.previous_status_category is None
    assert item.labels == ("sad", "test-label")
    assert item.changed_at == datetime(2019, 2, 16, 21, 12, 10, 37000, tzinfo=UTC)


def test_a_transition_to_done_is_done_and_completed_at_its_resolution_date() -> None:
    item = parsed(load("jira_issue_updated_status_to_done.json"))
    assert (item.status, item.status_category) == ("Done", StatusCategory.DONE)
    assert item.changed_fields == ("resolution", "status")
    assert item.changed_at == datetime(2019, 2, 16, 3, 15, 40, 477000, tzinfo=UTC)
    assert item.completed_at == datetime(2019, 2, 16, 3, 15, 40, 470000, tzinfo=UTC)


def test_the_previous_category_is_unknown_without_the_categories_of_status_ids() -> None:
    assert parsed(load("jira_issue_updated_status_to_done.json")).previous_status_category is None


def test_the_previous_category_comes_from_the_status_the_changelog_moved_from() -> None:
    categories = {"3": StatusCategory.IN_PROGRESS, "10002": StatusCategory.DONE}
    item = parsed(load("jira_issue_updated_status_to_done.json"), status_categories=categories)
    assert item.previous_status_category is StatusCategory.IN_PROGRESS


def test_a_created_issue_has_no_previous_category_even_with_the_categories_known() -> None:
    item = parsed(load("jira_issue_created.json"), status_categories={"10001": StatusCategory.TODO})
    assert item.previous_status_category is None


def test_an_update_without_a_status_change_has_no_previous_category() -> None:
    item = parsed(load("jira_issue_updated_sprint_field.json"), status_categories={"10001": StatusCategory.TODO})
    assert item.previous_status_category is None


def test_parent_wins_over_the_legacy_epic_link() -> None:
    body = load("jira_issue_created_cloud_with_epic_link_customfield.json")
    body["issue"]["fields"]["parent"] = {"id": "10500", "key": "KT-1", "fields": {"summary": "Epic"}}
    assert parsed(body).parent_key == "KT-1"


def test_an_epic_link_field_holding_something_else_is_no_parent() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["customfield_10014"] = {"value": "not a key"}
    assert parsed(body).parent_key is None


def test_the_assignee_falls_back_to_the_user_name_without_an_account_id() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["assignee"] = {"name": "admin", "key": "admin", "displayName": "Test User"}
    assert parsed(body).assignee == "admin"


def test_a_changelog_item_without_field_id_falls_back_to_the_lower_case_field() -> None:
    body = load("jira_issue_updated_status_to_done.json")
    for item in body["changelog"]["items"]:
        del item["fieldId"]
    body["changelog"]["items"].append({"field": "Status", "from": "3", "to": "10002"})
    item = parsed(body, status_categories={"3": StatusCategory.IN_PROGRESS})
    assert item.changed_fields == ("resolution", "status")
    assert item.previous_status_category is StatusCategory.IN_PROGRESS


def test_done_without_a_resolution_date_is_completed_when_its_category_changed() -> None:
    body = load("jira_issue_updated_status_to_done.json")
    body["issue"]["fields"]["resolutiondate"] = None
    body["issue"]["fields"]["statuscategorychangedate"] = "2019-02-15T19:15:39.000-0800"
    assert parsed(body).completed_at == datetime(2019, 2, 16, 3, 15, 39, tzinfo=UTC)


def test_done_without_either_date_is_completed_when_updated() -> None:
    body = load("jira_issue_updated_status_to_done.json")
    body["issue"]["fields"]["resolutiondate"] = None
    assert parsed(body).completed_at == datetime(2019, 2, 16, 3, 15, 40, 477000, tzinfo=UTC)


def test_an_issue_not_done_has_no_completion_even_with_a_resolution_date() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["resolutiondate"] = "2019-02-15T19:15:40.470-0800"
    assert parsed(body).completed_at is None


def test_an_in_progress_category_is_in_progress() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["status"] = {"name": "Review", "id": "10003", "statusCategory": {"key": "indeterminate"}}
    assert (parsed(body).status, parsed(body).status_category) == ("Review", StatusCategory.IN_PROGRESS)


@pytest.mark.parametrize("event", ["sprint_started", "sprint_closed", "sprint_created", "sprint_updated", "sprint_deleted"])
def test_sprint_events_are_ignored(event: str) -> None:
    assert (
        jira.parse_webhook({"timestamp": 1, "webhookEvent": event, "sprint": load("jira_agile_sprint_object_openapi_example.json")}) is None
    )


@pytest.mark.parametrize("event", ["comment_created", "comment_updated", "comment_deleted", "jira:issue_deleted"])
def test_comment_and_deletion_events_are_ignored(event: str) -> None:
    body = load("jira_issue_created.json")
    body["webhookEvent"] = event
    assert jira.parse_webhook(body) is None


def test_an_unknown_event_is_rejected_by_name() -> None:
    with pytest.raises(PayloadRejected, match="unknown Jira webhookEvent 'jira:version_released'"):
        jira.parse_webhook({"webhookEvent": "jira:version_released"})


@pytest.mark.parametrize("body", [{}, {"webhookEvent": ""}, {"webhookEvent": 7}])
def test_a_body_without_an_event_is_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(PayloadRejected, match="no webhookEvent"):
        jira.parse_webhook(body)


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="must be a JSON object"):
        jira.parse_webhook([load("jira_issue_created.json")])  # type: ignore[arg-type]


def test_an_issue_event_without_an_issue_is_rejected() -> None:
    with pytest.raises(PayloadRejected, match="issue must be a JSON object"):
        jira.parse_webhook({"webhookEvent": "jira:issue_updated"})


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("updated", "missing issue.fields.updated"),
        ("summary", "missing issue.fields.summary"),
        ("status", "missing issue.fields.status.statusCategory.key"),
    ],
)
def test_an_issue_missing_a_required_field_is_rejected_naming_it(field: str, message: str) -> None:
    body = load("jira_issue_created.json")
    del body["issue"]["fields"][field]
    with pytest.raises(PayloadRejected, match=message):
        jira.parse_webhook(body)


def test_an_unknown_status_category_is_rejected() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["status"]["statusCategory"]["key"] = "undefined"
    with pytest.raises(PayloadRejected, match="unknown Jira status category 'undefined'"):
        jira.parse_webhook(body)


def test_a_time_without_an_offset_is_rejected() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["updated"] = "2019-02-15T19:01:52.971"
    with pytest.raises(PayloadRejected, match=r"issue\.fields\.updated must be an ISO 8601 date-time with an offset"):
        jira.parse_webhook(body)


def test_a_value_the_contract_refuses_is_rejected_with_the_field() -> None:
    body = load("jira_issue_created.json")
    body["issue"]["fields"]["summary"] = "x" * 2001
    with pytest.raises(PayloadRejected, match="Jira issue TES-41 does not fit WorkItemChanged: title"):
        jira.parse_webhook(body)


def test_a_search_result_with_the_search_fields_becomes_a_work_item() -> None:
    issue = load("jira_search_jql_page1_handwritten_fixture.json")["issues"][0]
    issue["fields"]["updated"] = "2025-01-01T10:00:00.000+0000"
    issue["fields"]["parent"] = {"key": "TES-1"}
    item = jira.parse_search_issue(issue)
    assert (item.external_id, item.key, item.title) == ("10040", "TES-41", "Fix login redirect")
    assert (item.status, item.status_category) == ("In Progress", StatusCategory.IN_PROGRESS)
    assert item.url == "https://example.atlassian.net/browse/TES-41"
    assert item.parent_key == "TES-1"
    assert (item.changed_fields, item.previous_status_category, item.delivery_id) == ((), None, None)
    assert item.changed_at == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


def test_a_search_result_without_a_self_link_has_no_url() -> None:
    issue = load("jira_search_jql_last_page_handwritten_fixture.json")["issues"][0]
    issue["fields"]["updated"] = "2025-01-01T10:00:00.000+0000"
    item = jira.parse_search_issue(issue)
    assert (item.key, item.status, item.status_category, item.url) == ("TES-42", "Open", StatusCategory.TODO, None)


@pytest.mark.parametrize("name", ["jira_search_jql_page1_handwritten_fixture.json", "jira_search_jql_last_page_handwritten_fixture.json"])
def test_a_search_result_without_updated_is_rejected(name: str) -> None:
    with pytest.raises(PayloadRejected, match=r"missing issue\.fields\.updated"):
        jira.parse_search_issue(load(name)["issues"][0])


@pytest.mark.parametrize(
    "name", ["jira_search_jql_response_openapi_example.json", "jira_search_legacy_startAt_response_openapi_example.json"]
)
def test_the_atlassian_search_examples_lack_a_status_summary_and_time_and_are_rejected(name: str) -> None:
    issue = load(name)["issues"][0]
    with pytest.raises(PayloadRejected, match=r"missing issue\.fields\.status\.statusCategory\.key"):
        jira.parse_search_issue(issue)
    issue["fields"]["status"] = {"name": "Open", "statusCategory": {"key": "new"}}
    with pytest.raises(PayloadRejected, match=r"issue\.fields\.updated must be an ISO 8601 date-time with an offset, not 1"):
        jira.parse_search_issue(issue)
    issue["fields"]["updated"] = "2021-04-22T05:37:05.000+0000"
    with pytest.raises(PayloadRejected, match=r"missing issue\.fields\.summary"):
        jira.parse_search_issue(issue)
    issue["fields"]["summary"] = "Main order flow broken"
    item = jira.parse_search_issue(issue)
    assert (item.external_id, item.key, item.project) == ("10002", "ED-1", "EX")
    assert item.url == "https://your-domain.atlassian.net/browse/ED-1"


def test_the_search_fields_include_everything_the_parser_reads() -> None:
    assert {"summary", "status", "updated", "parent", "customfield_10014", "resolutiondate"} <= set(jira.SEARCH_FIELDS)


def test_a_webhook_and_a_search_of_the_same_change_share_the_dedup_key() -> None:
    webhook = parsed(load("jira_issue_updated_status_to_done.json"))
    searched = jira.parse_search_issue(copy.deepcopy(load("jira_issue_updated_status_to_done.json")["issue"]))
    assert jira.dedup_key(webhook) == jira.dedup_key(searched) == "jira:10040:2019-02-16T03:15:40.477000+00:00"


def test_the_dedup_key_changes_when_the_issue_is_updated_again() -> None:
    first = parsed(load("jira_issue_created.json"))
    second = parsed(load("jira_issue_updated_sprint_field.json"))
    assert jira.dedup_key(first) != jira.dedup_key(second)
