"""A key result's delivery log: how a linked item's change is folded into it, and when an item is forgotten.

Work items (Jira and Linear issues) count towards busy-but-flat once done; chat
signals (a Slack blocker or a decision asked for) are never done and count for
no rule, they are kept so a person sees them next to the key result. An item is
identified by ``<source>:<external id>`` and folded only when its change is
newer than the last one, or says something new at the same moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from okr_contracts.delivery import SignalRaised, StatusCategory, WorkItemChanged
from okr_drift.domain.facts import DeliveryItem, DeliveryLog

LinkedChange = WorkItemChanged | SignalRaised
"""The delivery events drift keeps per linked key result."""

KEEP_UNDONE_ITEMS = timedelta(days=90)
"""Items that never reached done are forgotten after this long without a change (the delivery topic's retention)."""
HEADLINE_CHARS = 200
"""A chat message's title is its first line, cut to this many characters."""


def item_id(change: LinkedChange) -> str:
    """The item's id in a delivery log: the source and the vendor's id."""
    return f"{change.source}:{change.external_id}"


def fold_item(log: DeliveryLog, item: str, change: LinkedChange, window: timedelta) -> bool:
    """Fold one change of a linked item; false if it is older than the item's last change, or the same."""
    changed_at, done_at, described = _read(change)
    last = log.changed_at.get(item)
    same = (log.done_at.get(item), log.items.get(item)) == (done_at, described)
    if last is not None and (changed_at < last or (changed_at == last and same)):
        return False  # two changes may share a timestamp: one that says something new at the same moment still counts
    log.changed_at[item] = changed_at
    log.done_at[item] = done_at
    log.items[item] = described
    prune_items(log, changed_at, window)
    return True


def prune_items(log: DeliveryLog, newest: datetime, window: timedelta) -> None:
    """Forget done items done before the busy window, and other items unchanged for `KEEP_UNDONE_ITEMS`, as of `newest`."""
    for item, done_at in list(log.done_at.items()):
        stale_done = done_at is not None and done_at < newest - window
        stale_open = done_at is None and log.changed_at[item] < newest - KEEP_UNDONE_ITEMS
        if stale_done or stale_open:
            del log.done_at[item]
            del log.changed_at[item]
            log.items.pop(item, None)


def _read(change: LinkedChange) -> tuple[datetime, datetime | None, DeliveryItem]:
    """When the change happened, when the item reached done (none if it is not done), and what it is."""
    if isinstance(change, SignalRaised):
        described = DeliveryItem(source=change.source, title=_headline(change.text), url=change.permalink, status=change.kind.value)
        return change.posted_at, None, described
    done = change.status_category == StatusCategory.DONE
    described = DeliveryItem(
        source=change.source,
        key=change.key,
        title=change.title,
        url=change.url,
        status=change.status,
        status_category=change.status_category,
    )
    return change.changed_at, (change.completed_at or change.changed_at) if done else None, described


def _headline(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= HEADLINE_CHARS else first[: HEADLINE_CHARS - 1].rstrip() + "…"
