"""A key result's delivery log: what it keeps of each linked item, when it forgets one, and what busy-but-flat counts.

The fixture ``portfolio`` is seeded the day before the 100-day cycle starts, with the
key result kr-activation; the busy window is 30 days and four done items are busy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from okr_contracts.alerts import DriftRule
from okr_contracts.delivery import DeliverySource, StatusCategory, WorkItemChanged
from okr_drift.domain.facts import DeliveryItem, DeliveryLog

KR = "kr-activation"
CHANNEL = "slack:C06NRA6JLER"


def log_of(portfolio: Any) -> DeliveryLog:
    found: DeliveryLog = portfolio.drift.state.delivery[KR]
    return found


def kept(portfolio: Any) -> set[str]:
    """The items the log holds, after checking that its times and descriptions hold the same ones."""
    log = log_of(portfolio)
    assert set(log.done_at) == set(log.changed_at) == set(log.items)
    return set(log.items)


def test_a_work_item_is_kept_with_its_key_title_link_status_and_times(portfolio: Any, at_day: Any) -> None:
    assert portfolio.work_item(at_day(3), "ENG-1", done=False) == []
    assert portfolio.work_item(at_day(4), "ENG-2") == []
    log = log_of(portfolio)
    assert log.items["jira:ENG-1"] == DeliveryItem(
        source=DeliverySource.JIRA, key="ENG-1", title="Work item ENG-1", status="In Progress", status_category=StatusCategory.IN_PROGRESS
    )
    assert (log.items["jira:ENG-2"].status, log.items["jira:ENG-2"].status_category) == ("Done", StatusCategory.DONE)
    assert log.done_at == {"jira:ENG-1": None, "jira:ENG-2": at_day(4)}
    assert log.changed_at == {"jira:ENG-1": at_day(3), "jira:ENG-2": at_day(4)}


def test_a_chat_blocker_is_kept_by_its_first_line_and_is_never_done(portfolio: Any, at_day: Any) -> None:
    assert portfolio.blocker(at_day(2), "\n  Blocked: the payments sandbox is down  \nthread below") == []
    assert portfolio.blocker(at_day(3), "x" * 300) == []
    first, second = (log_of(portfolio).items[f"{CHANNEL}:{at_day(n).timestamp():.6f}"] for n in (2, 3))
    assert (first.source, first.key, first.title, first.status, first.status_category) == (
        DeliverySource.SLACK,
        None,
        "Blocked: the payments sandbox is down",
        "blocker",
        None,
    )
    assert second.title == "x" * 199 + "…"
    assert set(log_of(portfolio).done_at.values()) == {None}
    assert portfolio.blocker(at_day(2), "\n  Blocked: the payments sandbox is down  \nthread below") is None  # redelivered


def test_a_later_change_replaces_the_status_and_an_earlier_one_changes_nothing(portfolio: Any, at_day: Any) -> None:
    assert portfolio.work_item(at_day(3), "ENG-1", done=False) == []
    assert portfolio.work_item(at_day(5), "ENG-1") == []
    assert portfolio.work_item(at_day(4), "ENG-1", done=False) is None  # arrived late
    log = log_of(portfolio)
    assert (log.items["jira:ENG-1"].status, log.done_at["jira:ENG-1"], log.changed_at["jira:ENG-1"]) == ("Done", at_day(5), at_day(5))
    assert portfolio.work_item(at_day(6), "ENG-1", done=False) == []  # reopened
    assert (log.items["jira:ENG-1"].status, log.done_at["jira:ENG-1"]) == ("In Progress", None)


def test_a_rename_at_the_same_moment_is_kept_and_its_redelivery_is_not(portfolio: Any, at_day: Any) -> None:
    def renamed(title: str) -> WorkItemChanged:
        return WorkItemChanged(
            source=DeliverySource.JIRA,
            external_id="ENG-1",
            kr_ids=(KR,),
            portfolio_id="acme",
            key="ENG-1",
            title=title,
            url="https://acme.atlassian.net/browse/ENG-1",
            status="In Progress",
            status_category=StatusCategory.IN_PROGRESS,
            changed_at=at_day(3),
        )

    state, window = portfolio.drift.state, timedelta(days=30)
    assert state.apply_delivery(KR, "jira:ENG-1", renamed("Guided setup"), window) is not None
    assert state.apply_delivery(KR, "jira:ENG-1", renamed("Guided setup, step one"), window) is not None
    assert state.apply_delivery(KR, "jira:ENG-1", renamed("Guided setup, step one"), window) is None
    assert log_of(portfolio).items["jira:ENG-1"].title == "Guided setup, step one"
    assert log_of(portfolio).items["jira:ENG-1"].url == "https://acme.atlassian.net/browse/ENG-1"


def test_items_are_forgotten_with_their_description_done_ones_after_the_busy_window_others_after_90_days(
    portfolio: Any, at_day: Any
) -> None:
    portfolio.work_item(at_day(1), "ENG-1")
    portfolio.work_item(at_day(2), "ENG-2", done=False)
    portfolio.blocker(at_day(2), "Blocked on legal review")
    blocker = f"{CHANNEL}:{at_day(2).timestamp():.6f}"
    portfolio.work_item(at_day(31), "ENG-3")
    assert kept(portfolio) == {"jira:ENG-1", "jira:ENG-2", blocker, "jira:ENG-3"}  # ENG-1 was done 30 days before: still in the window
    portfolio.work_item(at_day(31, minutes=1), "ENG-4")
    assert kept(portfolio) == {"jira:ENG-2", blocker, "jira:ENG-3", "jira:ENG-4"}
    portfolio.work_item(at_day(92), "ENG-5")
    assert kept(portfolio) == {"jira:ENG-2", blocker, "jira:ENG-5"}  # unchanged for 90 days exactly: kept
    portfolio.work_item(at_day(92, minutes=1), "ENG-6")
    assert kept(portfolio) == {"jira:ENG-5", "jira:ENG-6"}


def test_chat_blockers_never_count_towards_busy_but_flat(portfolio: Any, at_day: Any) -> None:
    for n in range(1, 6):
        assert portfolio.blocker(at_day(n), f"Blocker {n}") == []
    for n, key in enumerate(("ENG-1", "ENG-2", "ENG-3"), start=6):
        assert portfolio.work_item(at_day(n), key) == []
    changes = portfolio.work_item(at_day(9), "ENG-4")
    assert [(c.event.event_type(), c.alert.rule) for c in changes] == [("AlertRaised", DriftRule.BUSY_BUT_FLAT)]
    assert changes[0].alert.facts["items_done"] == 4
