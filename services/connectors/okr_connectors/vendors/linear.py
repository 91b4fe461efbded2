"""Linear webhooks and GraphQL issue nodes as ``WorkItemChanged`` and ``ProjectHealthReported``.

- Issue: the state's ``type`` gives the category (triage, backlog, unstarted → todo; started →
  in progress; completed → done; canceled → canceled). The key is ``identifier``, or
  ``<team key>-<number>`` for older deliveries without one. The parent is ``parent.identifier``
  only (never the ``parentId`` uuid), so webhooks and polling agree on it.
- ``changed_fields`` are the keys of ``updatedFrom`` except ``updatedAt``, which every update has.
- ``previous_status_category`` comes from ``updatedFrom.stateId`` when the caller passes
  ``state_categories`` (workflow state id to category) naming that state; otherwise None.
- ``completed_at`` only when done: ``completedAt``, else ``updatedAt``.
- ProjectUpdate with a ``health`` and Project carrying a ``health`` → ``ProjectHealthReported``;
  without a health, Cycle, and any ``remove`` action → None; any other type is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okr_connectors.vendors.doc import Doc, build
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import DeliverySource, ProjectHealth, ProjectHealthReported, StatusCategory, WorkItemChanged

ISSUE_SELECTION = (
    "id identifier title url updatedAt completedAt state { type name } team { key } project { id } "
    "labels { nodes { name } } assignee { id } parent { identifier }"
)
"""The GraphQL selection of an ``issues`` node that ``parse_graphql_issue`` reads."""

_STATE_CATEGORIES = {
    "triage": StatusCategory.TODO,
    "backlog": StatusCategory.TODO,
    "unstarted": StatusCategory.TODO,
    "started": StatusCategory.IN_PROGRESS,
    "completed": StatusCategory.DONE,
    "canceled": StatusCategory.CANCELED,
}
_HEALTH = {"onTrack": ProjectHealth.ON_TRACK, "atRisk": ProjectHealth.AT_RISK, "offTrack": ProjectHealth.OFF_TRACK}


def parse_webhook(
    body: dict[str, Any],
    *,
    delivery_id: str | None = None,
    state_categories: Mapping[str, StatusCategory] | None = None,
) -> WorkItemChanged | ProjectHealthReported | None:
    """An Issue, ProjectUpdate or Project webhook as an event; None for Cycle, removals and updates without a health."""
    if not isinstance(body, dict):
        raise PayloadRejected("Linear webhook body must be a JSON object")
    kind = body.get("type")
    if kind == "Cycle" or (kind in ("Issue", "ProjectUpdate", "Project") and body.get("action") == "remove"):
        return None
    if kind == "Issue":
        data = Doc.of(body.get("data"), "data")
        updated_from = Doc.of(body.get("updatedFrom") or {}, "updatedFrom")
        previous_state = updated_from.text("stateId")
        return _work_item(
            data,
            labels=data.texts("labels", "name"),
            changed_fields=tuple(key for key in updated_from.data if key != "updatedAt"),
            previous=state_categories.get(previous_state) if state_categories and previous_state else None,
            fallback_url=body.get("url") if isinstance(body.get("url"), str) else None,
            delivery_id=delivery_id,
        )
    if kind == "ProjectUpdate":
        return _project_update(Doc.of(body.get("data"), "data"), delivery_id)
    if kind == "Project":
        return _project(Doc.of(body.get("data"), "data"), body.get("actor"), delivery_id)
    raise PayloadRejected(f"unknown Linear webhook type {kind!r}" if kind else "Linear webhook body has no type")


def parse_graphql_issue(node: dict[str, Any]) -> WorkItemChanged:
    """A node of the GraphQL ``issues`` connection (selected with ``ISSUE_SELECTION``) as a work item."""
    issue = Doc.of(node, "issue")
    return _work_item(issue, labels=issue.texts("labels.nodes", "name"), changed_fields=(), previous=None)


def _work_item(
    data: Doc,
    *,
    labels: tuple[str, ...],
    changed_fields: tuple[str, ...],
    previous: StatusCategory | None,
    fallback_url: str | None = None,
    delivery_id: str | None = None,
) -> WorkItemChanged:
    key = data.text("identifier") or _derived_identifier(data)
    state_type = data.required_text("state.type")
    category = _STATE_CATEGORIES.get(state_type)
    if category is None:
        raise PayloadRejected(f"unknown Linear state type {state_type!r} at {data.name('state.type')}")
    changed_at = data.required_time("updatedAt")
    return build(
        WorkItemChanged,
        f"Linear issue {key}",
        source=DeliverySource.LINEAR,
        external_id=data.required_text("id"),
        delivery_id=delivery_id,
        key=key,
        title=data.required_text("title"),
        url=data.text("url") or fallback_url,
        status=data.required_text("state.name"),
        status_category=category,
        previous_status_category=previous,
        parent_key=data.text("parent.identifier"),
        project=data.text("project.id") or data.text("projectId"),
        team=data.text("team.key"),
        assignee=data.text("assignee.id") or data.text("assigneeId"),
        labels=labels,
        changed_fields=changed_fields,
        changed_at=changed_at,
        completed_at=(data.time("completedAt") or changed_at) if category is StatusCategory.DONE else None,
    )


def _derived_identifier(data: Doc) -> str:
    team, number = data.text("team.key"), data.at("number")
    if team is None or not isinstance(number, int) or isinstance(number, bool):
        raise PayloadRejected(f"missing {data.name('identifier')} (and no team.key and number to derive it from)")
    return f"{team}-{number}"


def _health(data: Doc) -> ProjectHealth | None:
    value = data.text("health")
    if value is None:
        return None
    health = _HEALTH.get(value)
    if health is None:
        raise PayloadRejected(f"unknown Linear health {value!r} at {data.name('health')}")
    return health


def _project_update(data: Doc, delivery_id: str | None) -> ProjectHealthReported | None:
    health = _health(data)
    if health is None:
        return None
    return build(
        ProjectHealthReported,
        "Linear project update",
        source=DeliverySource.LINEAR,
        external_id=data.required_text("id"),
        delivery_id=delivery_id,
        project=data.text("projectId") or data.required_text("project.id"),
        health=health,
        body=data.text("body") or "",
        author=data.text("userId") or data.text("user.id"),
        reported_at=data.required_time("createdAt"),
    )


def _project(data: Doc, actor: object, delivery_id: str | None) -> ProjectHealthReported | None:
    health = _health(data)
    if health is None:
        return None
    project = data.required_text("id")
    return build(
        ProjectHealthReported,
        f"Linear project {project}",
        source=DeliverySource.LINEAR,
        external_id=project,
        delivery_id=delivery_id,
        project=project,
        health=health,
        author=Doc.of(actor, "actor").text("id") if actor is not None else None,
        reported_at=data.required_time("updatedAt"),
    )
