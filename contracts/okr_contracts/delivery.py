"""Normalised delivery signal from Jira, Linear and Slack, published on ``okr.delivery.v1``.

Keyed by portfolio id (every mapped item has one), so a portfolio's delivery signal is ordered;
an item without one is keyed by ``<source>:<external id>``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from okr_contracts.envelope import EventPayload
from okr_contracts.types import Id, Principal


class DeliverySource(StrEnum):
    """Where the signal came from."""

    JIRA = "jira"
    LINEAR = "linear"
    SLACK = "slack"


class StatusCategory(StrEnum):
    """Vendor-neutral workflow category (Jira status category, Linear state type)."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELED = "canceled"


class ProjectHealth(StrEnum):
    """A project's self-reported health (Linear project updates)."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"


class SignalKind(StrEnum):
    """What a chat message signals about a key result."""

    BLOCKER = "blocker"
    DECISION_NEEDED = "decision_needed"


class DeliveryEvent(EventPayload):
    """Fields common to every delivery event."""

    source: DeliverySource = Field(description="The vendor.")
    external_id: str = Field(min_length=1, max_length=200, description="The vendor's id of the item or message.")
    kr_ids: tuple[Id, ...] = Field(default=(), description="Key results this signal is linked to by the connector mapping.")
    portfolio_id: Id | None = Field(default=None, description="Portfolio of the linked key results, when known.")
    delivery_id: str | None = Field(default=None, max_length=200, description="The vendor's webhook delivery id, if it came by webhook.")


class WorkItemChanged(DeliveryEvent):
    """A Jira issue or Linear issue was created or changed."""

    key: str = Field(min_length=1, max_length=200, description="Human key, e.g. `ABC-123` or `ENG-42`.")
    title: str = Field(max_length=2000, description="Summary or title.")
    url: str | None = Field(default=None, max_length=2000, description="Link to the item.")
    item_type: str | None = Field(default=None, max_length=100, description="Issue type, e.g. Story, Bug.")
    status: str = Field(max_length=200, description="Workflow status name as the vendor shows it.")
    status_category: StatusCategory = Field(description="Vendor-neutral category of the status.")
    previous_status_category: StatusCategory | None = Field(default=None, description="Category before this change, if it changed.")
    parent_key: str | None = Field(default=None, max_length=200, description="Parent or epic key.")
    project: str | None = Field(default=None, max_length=200, description="Jira project key or Linear project id.")
    team: str | None = Field(default=None, max_length=200, description="Linear team key or Jira board/team, if known.")
    assignee: Principal | None = Field(default=None, description="Assignee account id, if any.")
    labels: tuple[str, ...] = Field(default=(), description="Labels on the item.")
    changed_fields: tuple[str, ...] = Field(default=(), description="Field ids changed by this change (from the changelog).")
    changed_at: AwareDatetime = Field(description="When the item was updated at the vendor.")
    completed_at: AwareDatetime | None = Field(default=None, description="When it reached done, if it is done.")


class ProjectHealthReported(DeliveryEvent):
    """A project update with a health rating (Linear ProjectUpdate)."""

    project: str = Field(min_length=1, max_length=200, description="Project id.")
    health: ProjectHealth = Field(description="Reported health.")
    body: str = Field(default="", max_length=20000, description="The update text.")
    author: Principal | None = Field(default=None, description="Who posted it.")
    reported_at: AwareDatetime = Field(description="When it was posted.")


class SignalRaised(DeliveryEvent):
    """A chat message raised a blocker or asked for a decision about a key result."""

    kind: SignalKind = Field(description="Blocker or decision needed.")
    channel: str = Field(min_length=1, max_length=200, description="Channel id.")
    author: Principal = Field(description="Who wrote it.")
    text: str = Field(max_length=40000, description="The message text.")
    permalink: str | None = Field(default=None, max_length=2000, description="Link to the message.")
    posted_at: AwareDatetime = Field(description="When it was posted.")


DELIVERY_EVENTS: tuple[type[DeliveryEvent], ...] = (WorkItemChanged, ProjectHealthReported, SignalRaised)
