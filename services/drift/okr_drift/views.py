"""Read models of the drift API: an alert as JSON, the exceptions-only view of the portfolio sync, a key result's delivery items."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from okr_contracts.alerts import Severity
from okr_contracts.delivery import StatusCategory
from okr_drift.domain.alerts import Alert
from okr_drift.domain.evaluation import PortfolioDrift
from okr_drift.domain.facts import DeliveryLog

ALERT_FIELDS = {"alert_id", "rule", "severity", "state", "summary", "asked", "raised_at", "facts"}
SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def alert(found: Alert) -> dict[str, Any]:
    """An alert as the API returns it."""
    return found.model_dump(mode="json")


def exceptions(drift: PortfolioDrift, alerts: list[Alert], *, minimum: Severity, at: datetime) -> dict[str, Any]:
    """The bi-weekly sync's view: nodes with active alerts at or above `minimum`, by product, most urgent first; green is skipped."""
    kept = [a for a in alerts if SEVERITY_ORDER[a.severity] <= SEVERITY_ORDER[minimum]]
    nodes: dict[str, dict[str, Any]] = {}
    for found in sorted(kept, key=lambda a: (SEVERITY_ORDER[a.severity], a.raised_at.isoformat(), a.alert_id)):
        node = nodes.get(found.node_id) or nodes.setdefault(found.node_id, _node(drift, found))
        node["alerts"].append(
            {
                k: v
                for k, v in alert(found).items()
                if k in {"alert_id", "rule", "severity", "state", "summary", "asked", "raised_at", "facts"}
            }
        )
    products: dict[str, list[dict[str, Any]]] = {}
    for node in nodes.values():
        products.setdefault(node["product_id"] or "", []).append(node)
    live = sum(1 for kr in drift.state.krs.values() if drift.kr_context(kr.kr_id, at) is not None)
    flagged = sum(1 for node in nodes.values() if node["node_kind"] == "key_result")
    return {
        "portfolio_id": drift.portfolio_id,
        "as_of": at.isoformat(),
        "minimum_severity": minimum.value,
        "counts": {
            "live_key_results": live,
            "key_results_with_exceptions": flagged,
            "skipped_green": max(0, live - flagged),
            "by_rule": _by_rule(kept),
        },
        "products": [{"product_id": pid or None, "nodes": items} for pid, items in sorted(products.items())],
    }


def _node(drift: PortfolioDrift, found: Alert) -> dict[str, Any]:
    kr = drift.state.krs.get(found.node_id) if found.subject.node_kind == "key_result" else None
    plan = kr.plan if kr else None
    return {
        "node_id": found.node_id,
        "node_kind": found.subject.node_kind,
        "title": found.subject.title,
        "product_id": found.subject.product_id,
        "owner": found.subject.owner,
        "confidence": kr.confidence if kr else None,
        "recovery_plan": plan.model_dump(mode="json") if plan else None,
        "alerts": [],
    }


def _by_rule(alerts: list[Alert]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for found in alerts:
        counts[found.rule.value] = counts.get(found.rule.value, 0) + 1
    return dict(sorted(counts.items()))


def check_ins(drift: PortfolioDrift, *, at: datetime, before: datetime | None) -> list[dict[str, Any]]:
    """Live key results (not retired, cycle running) with owner and latest check-in, oldest check-in first."""
    rows = []
    for kr in drift.state.krs.values():
        if drift.kr_context(kr.kr_id, at) is None:
            continue
        last = kr.last_checkin_at
        if before is not None and last is not None and last >= before:
            continue
        rows.append({"kr_id": kr.kr_id, "title": kr.title, "owner": kr.owner, "last_check_in": last.isoformat() if last else None})
    return sorted(rows, key=lambda r: (r["last_check_in"] or "", r["kr_id"]))


class DeliveryItemView(BaseModel):
    """A delivery item linked to a key result: a Jira or Linear issue, or a Slack message raising a blocker or asking for a decision."""

    item_id: str = Field(description="`<source>:<vendor id>`, e.g. `jira:10042`, `slack:C024BE91L:1355517523.000005`.")
    source: str = Field(description="`jira`, `linear` or `slack`.")
    key: str | None = Field(description="The vendor's key, e.g. `ENG-42`; none for a chat message.")
    title: str | None = Field(description="The issue's title, or the message's first line.")
    url: str | None = Field(description="Link to the issue or the message, when the source gave one.")
    status: str | None = Field(description="The vendor's status name, or a chat signal's kind (`blocker`, `decision_needed`).")
    status_category: StatusCategory | None = Field(description="The status's vendor-neutral category; none for a chat signal.")
    done_at: datetime | None = Field(description="When the item reached done; none while it is not done.")
    changed_at: datetime = Field(description="The item's last change (a message's posting time).")


class KeyResultDelivery(BaseModel):
    """A key result's linked delivery items, newest change first."""

    portfolio_id: str
    kr_id: str
    items: list[DeliveryItemView]


def delivery(drift: PortfolioDrift, kr_id: str) -> KeyResultDelivery:
    """A key result's linked delivery items, newest change first; none when nothing is linked to it."""
    log = drift.state.delivery.get(kr_id)
    rows = [] if log is None else [_delivery_item(log, item) for item in sorted(log.changed_at)]
    rows.sort(key=lambda row: row.changed_at, reverse=True)  # stable: items changed at the same moment stay in id order
    return KeyResultDelivery(portfolio_id=drift.portfolio_id, kr_id=kr_id, items=rows)


def _delivery_item(log: DeliveryLog, item: str) -> DeliveryItemView:
    done_at, described = log.done_at.get(item), log.items.get(item)
    if described is None:  # folded before drift kept descriptions: the id (source first) and the times are all it knows
        return DeliveryItemView(
            item_id=item,
            source=item.partition(":")[0],
            key=None,
            title=None,
            url=None,
            status=None,
            status_category=StatusCategory.DONE if done_at is not None else None,
            done_at=done_at,
            changed_at=log.changed_at[item],
        )
    return DeliveryItemView(
        item_id=item,
        source=described.source.value,
        key=described.key,
        title=described.title,
        url=described.url,
        status=described.status,
        status_category=described.status_category,
        done_at=done_at,
        changed_at=log.changed_at[item],
    )
