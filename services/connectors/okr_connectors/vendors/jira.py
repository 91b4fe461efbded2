"""Jira Cloud issues, from a webhook (v2 representation) or the search API (v3), as ``WorkItemChanged``.

- Status category comes from ``fields.status.statusCategory.key`` (``new``, ``indeterminate``,
  ``done``), never from the status name, which is per workflow.
- ``changed_fields`` are the changelog items' ``fieldId`` (``field`` lower-cased when an older
  payload has no ``fieldId``), in changelog order without repeats.
- The changelog gives the previous status only by id. Its category is known when the caller
  passes ``status_categories`` (status id to category, e.g. from ``GET /rest/api/3/status``);
  otherwise ``previous_status_category`` is None, as it is for a creation (no previous status).
- Parent or epic: ``fields.parent.key``, else the legacy Epic Link ``customfield_10014`` (a string).
- ``completed_at`` only when done: ``resolutiondate``, else ``statuscategorychangedate``, else ``updated``.
- All times are given in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from okr_connectors.vendors.doc import Doc, build
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import DeliverySource, StatusCategory, WorkItemChanged

EPIC_LINK_FIELD = "customfield_10014"
"""The legacy Epic Link custom field (deprecated by Atlassian; its id differs on some sites)."""

SEARCH_FIELDS: tuple[str, ...] = (
    "summary",
    "status",
    "issuetype",
    "project",
    "labels",
    "assignee",
    "parent",
    EPIC_LINK_FIELD,
    "updated",
    "resolutiondate",
    "statuscategorychangedate",
)
"""The ``fields`` a search must ask for (the search API returns only ``id`` by default)."""

_CATEGORIES = {"new": StatusCategory.TODO, "indeterminate": StatusCategory.IN_PROGRESS, "done": StatusCategory.DONE}
_ISSUE_EVENTS = frozenset({"jira:issue_created", "jira:issue_updated"})
_IGNORED_EVENTS = frozenset({"jira:issue_deleted"})
_IGNORED_PREFIXES = ("sprint_", "comment_", "worklog_", "issuelink_")


def parse_webhook(
    body: dict[str, Any],
    *,
    delivery_id: str | None = None,
    status_categories: Mapping[str, StatusCategory] | None = None,
) -> WorkItemChanged | None:
    """An issue created or updated webhook as a work item; None for sprint, comment and other ignored events."""
    if not isinstance(body, dict):
        raise PayloadRejected("Jira webhook body must be a JSON object")
    event = body.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise PayloadRejected("Jira webhook body has no webhookEvent")
    if event in _IGNORED_EVENTS or event.startswith(_IGNORED_PREFIXES):
        return None
    if event not in _ISSUE_EVENTS:
        raise PayloadRejected(f"unknown Jira webhookEvent {event!r}")
    issue = Doc.of(body.get("issue"), "issue")
    changed_fields, previous_status = _changelog(body.get("changelog"))
    previous = status_categories.get(previous_status) if status_categories and previous_status else None
    return _work_item(issue, changed_fields=changed_fields, previous=previous, delivery_id=delivery_id)


def parse_search_issue(issue: dict[str, Any]) -> WorkItemChanged:
    """An issue from ``/rest/api/3/search/jql`` (asked for ``SEARCH_FIELDS``) as a work item without a changelog."""
    return _work_item(Doc.of(issue, "issue"), changed_fields=(), previous=None, delivery_id=None)


def dedup_key(issue: WorkItemChanged) -> str:
    """The key a poller deduplicates on: the issue id and when it was updated (UTC)."""
    return f"jira:{issue.external_id}:{issue.changed_at.astimezone(UTC).isoformat()}"


def _work_item(issue: Doc, *, changed_fields: tuple[str, ...], previous: StatusCategory | None, delivery_id: str | None) -> WorkItemChanged:
    fields = Doc.of(issue.at("fields"), issue.name("fields"))
    key = issue.required_text("key")
    category_key = fields.required_text("status.statusCategory.key")
    category = _CATEGORIES.get(category_key)
    if category is None:
        raise PayloadRejected(f"unknown Jira status category {category_key!r} at {fields.name('status.statusCategory.key')}")
    changed_at = fields.required_time("updated")
    completed_at = None
    if category is StatusCategory.DONE:
        completed_at = fields.time("resolutiondate") or fields.time("statuscategorychangedate") or changed_at
    return build(
        WorkItemChanged,
        f"Jira issue {key}",
        source=DeliverySource.JIRA,
        external_id=issue.required_text("id"),
        delivery_id=delivery_id,
        key=key,
        title=fields.required_text("summary"),
        url=_browse_url(issue.text("self"), key),
        item_type=fields.text("issuetype.name"),
        status=fields.required_text("status.name"),
        status_category=category,
        previous_status_category=previous,
        parent_key=fields.text("parent.key") or _epic_link(fields),
        project=fields.text("project.key"),
        assignee=fields.text("assignee.accountId") or fields.text("assignee.name"),
        labels=fields.texts("labels"),
        changed_fields=changed_fields,
        changed_at=changed_at,
        completed_at=completed_at,
    )


def _changelog(changelog: object) -> tuple[tuple[str, ...], str | None]:
    """The changed field ids, and the previous status id if the status changed from one."""
    items = changelog.get("items") if isinstance(changelog, dict) else None
    changed: dict[str, None] = {}
    previous_status = None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        field_id = item.get("fieldId") or str(item.get("field") or "").lower()
        if not isinstance(field_id, str) or not field_id:
            continue
        changed[field_id] = None
        if field_id == "status" and item.get("from") is not None:
            previous_status = str(item["from"])
    return tuple(changed), previous_status


def _epic_link(fields: Doc) -> str | None:
    # Custom field ids differ per site: on a site where 10014 is another field, it is not a key.
    value = fields.at(EPIC_LINK_FIELD)
    return value if isinstance(value, str) and value else None


def _browse_url(self_link: str | None, key: str) -> str | None:
    if not self_link or "/rest/" not in self_link:
        return None
    return f"{self_link.split('/rest/', 1)[0]}/browse/{key}"
