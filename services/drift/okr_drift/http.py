"""The drift API: active alerts by portfolio, product, owner and rule; one alert; acknowledging it; the sync's exceptions;
a key result's delivery items."""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Who` alias when routes are defined.

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from okr_contracts.alerts import DriftRule, Severity
from okr_drift import views
from okr_drift.application import DriftService, NotThisShard
from okr_drift.domain.alerts import Alert, AlertClosed, AlertNotFound, AlertState
from okr_drift.domain.evaluation import PortfolioDrift
from okr_drift.store import AlertQuery
from okr_runtime.auth import Authenticator, Caller, TokenRole
from okr_runtime.problems import Problem

UNKNOWN = "urn:okrstream:problem:unknown-id"


class Acknowledgement(BaseModel):
    """The body of an acknowledgement."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=4000, description="What the acknowledger will do about it.")


def install_api(app: FastAPI, drift: DriftService, auth: Authenticator) -> None:
    """Mount the alert routes over the service, each authenticated by `auth`."""
    router = APIRouter(prefix="/v1/portfolios", tags=["alerts"])
    Who = Annotated[Caller, Depends(auth)]  # noqa: N806 (a type alias over this router's authenticator)

    @router.get("/{portfolio_id}/alerts", summary="Alerts, newest first: active ones unless a state is asked for")
    async def list_alerts(
        caller: Who,
        portfolio_id: str,
        state: Annotated[list[AlertState] | None, Query(description="Repeat for several; default open and acknowledged.")] = None,
        product_id: Annotated[str | None, Query(description="Only alerts about this product line's nodes.")] = None,
        owner: Annotated[str | None, Query(description="Only alerts about nodes this principal owns.")] = None,
        rule: Annotated[DriftRule | None, Query(description="Only this rule.")] = None,
        node_id: Annotated[str | None, Query(description="Only this node.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        states = tuple(s.value for s in state) if state else (AlertState.OPEN.value, AlertState.ACKNOWLEDGED.value)
        query = AlertQuery(states, product_id, owner, rule.value if rule else None, node_id, limit)
        found = await run_in_threadpool(drift.store.alerts, portfolio_id, query)
        return {"portfolio_id": portfolio_id, "items": [views.alert(a) for a in found]}

    @router.get("/{portfolio_id}/alerts/{alert_id}", summary="One alert with the facts that raised it")
    async def get_alert(caller: Who, portfolio_id: str, alert_id: str) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        return views.alert(await _find(drift, portfolio_id, alert_id))

    @router.post(
        "/{portfolio_id}/alerts/{alert_id}/acknowledge",
        summary="Acknowledge an open alert (the node's owner or one of its leads); it resolves when the condition clears",
    )
    async def acknowledge(caller: Who, portfolio_id: str, alert_id: str, body: Acknowledgement | None = None) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        found = await _find(drift, portfolio_id, alert_id)
        lead = drift.drifts[portfolio_id].state.facts.lead if portfolio_id in drift.drifts else None
        # the node's owner and its leads, whoever the alert was addressed to ("by owner or lead")
        allowed = {who for who in (*found.recipients, *found.subject.recipients.values(), found.subject.owner, lead) if who}
        if caller.principal not in allowed and TokenRole.PORTFOLIO_LEAD not in caller.roles:
            who = ", ".join(sorted(allowed))
            raise Problem(403, "Forbidden", f"{caller.principal} is neither the owner nor a lead this alert is for ({who})")
        try:
            done = await drift.acknowledge(portfolio_id, alert_id, caller.principal, body.note if body else "")
        except AlertClosed as exc:
            raise Problem(409, "Alert resolved", str(exc), type_="urn:okrstream:problem:alert-resolved") from exc
        except NotThisShard as exc:
            raise Problem(421, "Misdirected request", str(exc), type_="urn:okrstream:problem:other-shard") from exc
        return views.alert(done)

    @router.get(
        "/{portfolio_id}/exceptions", summary="The portfolio sync's exceptions: nodes with active alerts, by product; green skipped"
    )
    async def exceptions(
        caller: Who,
        portfolio_id: str,
        minimum_severity: Annotated[Severity, Query(description="Leave out alerts below this severity.")] = Severity.WARNING,
    ) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        state = _defined(drift, portfolio_id)
        found = await run_in_threadpool(drift.store.alerts, portfolio_id, AlertQuery(limit=100_000))
        return views.exceptions(state, found, minimum=minimum_severity, at=drift.clock())

    @router.get("/{portfolio_id}/check-ins", summary="Each live key result's owner and latest check-in, for the weekly reminders")
    async def check_ins(
        caller: Who,
        portfolio_id: str,
        before: Annotated[datetime | None, Query(description="Only key results without a check-in since this moment.")] = None,
    ) -> dict[str, Any]:
        caller.check_scope(portfolio_id)
        state = _defined(drift, portfolio_id)
        return {"portfolio_id": portfolio_id, "key_results": views.check_ins(state, at=drift.clock(), before=before)}

    @router.get(
        "/{portfolio_id}/key-results/{kr_id}/delivery",
        summary="The delivery items linked to a key result (issues, chat blockers), newest change first",
        tags=["delivery"],
    )
    async def key_result_delivery(caller: Who, portfolio_id: str, kr_id: str) -> views.KeyResultDelivery:
        caller.check_scope(portfolio_id)
        return views.delivery(_defined(drift, portfolio_id), kr_id)

    app.include_router(router)


def _defined(drift: DriftService, portfolio_id: str) -> PortfolioDrift:
    """The portfolio's drift, or a 404 problem when drift has not seen it defined (unknown, or only delivery signal so far)."""
    state = drift.drifts.get(portfolio_id)
    if state is None or not state.state.facts.version:
        raise Problem(404, "Not found", f"drift knows no portfolio {portfolio_id}", type_=UNKNOWN)
    return state


async def _find(drift: DriftService, portfolio_id: str, alert_id: str) -> Alert:
    try:
        return await drift.find(portfolio_id, alert_id)
    except AlertNotFound as exc:
        raise Problem(404, "Not found", str(exc), type_=UNKNOWN) from exc
