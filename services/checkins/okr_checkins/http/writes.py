"""The command routes: every change to a portfolio is a POST, or a PUT of something set whole, that appends events.

PUT sets: the portfolio's settings, a squad's capacity, an objective's allocation to a
squad, an objective's tags, the intended balance.

Each answers 201 with the events it appended. ``Idempotency-Key`` makes a retry
return the first answer (marked ``Idempotent-Replayed: true``) without
appending again; ``If-Match: "<version>"`` refuses the command with 409 when
the node has moved on since the client read it.
"""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Who` alias when routes are defined.

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from opentelemetry import propagate
from pydantic import BaseModel

from okr_checkins.application import CheckinsApplication, Command, CommandResult
from okr_checkins.domain import capacity as cap
from okr_checkins.domain import commands as c
from okr_checkins.domain import key_results as k
from okr_checkins.domain.portfolio import Request as CommandRequest
from okr_checkins.domain.portfolio import RequestRef
from okr_checkins.http import bodies as b
from okr_checkins.http.auth import actor_of
from okr_contracts.export import canonical_json
from okr_runtime.auth import Authenticator, Caller
from okr_runtime.problems import Problem

MAX_KEY_LENGTH = 255


def write_router(app: CheckinsApplication, auth: Authenticator) -> APIRouter:
    """The command routes over `app`, each authenticated by `auth`."""
    router = APIRouter(prefix="/v1/portfolios", tags=["commands"])
    Who = Annotated[Caller, Depends(auth)]  # noqa: N806 (a type alias over this router's authenticator)

    def run(http: Request, caller: Caller, portfolio_id: str, body: BaseModel, command: Command) -> JSONResponse:
        caller.check_scope(portfolio_id)
        return _answer(app.execute(portfolio_id, _command_request(http, caller, body), command))

    @router.post("", status_code=201, summary="Create a portfolio")
    def define_portfolio(http: Request, caller: Who, body: b.DefinePortfolio) -> JSONResponse:
        caller.check_scope(body.portfolio_id)
        return _answer(app.define_portfolio(_command_request(http, caller, body), _fields(body)))

    @router.put("/{portfolio_id}/settings", status_code=201, summary="Redefine the portfolio's settings")
    def redefine(http: Request, caller: Who, portfolio_id: str, body: b.PortfolioSettings) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: c.redefine_portfolio(p, ctx, _fields(body)))

    @router.post("/{portfolio_id}/products", status_code=201, summary="Add a product line")
    def define_product(http: Request, caller: Who, portfolio_id: str, body: b.DefineProduct) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: c.define_product(p, ctx, **_fields(body)))

    @router.post("/{portfolio_id}/teams", status_code=201, summary="Add a team or squad")
    def define_team(http: Request, caller: Who, portfolio_id: str, body: b.DefineTeam) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: c.define_team(p, ctx, **_fields(body)))

    @router.post("/{portfolio_id}/cycles", status_code=201, summary="Start a cycle")
    def start_cycle(http: Request, caller: Who, portfolio_id: str, body: b.StartCycle) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: c.start_cycle(p, ctx, **_fields(body)))

    @router.post("/{portfolio_id}/cycles/{cycle_id}/close", status_code=201, summary="Close (score) a cycle")
    def close_cycle(http: Request, caller: Who, portfolio_id: str, cycle_id: str, body: b.CloseCycle) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.close_cycle(p, ctx, cycle_id, **_fields(body)))

    @router.post("/{portfolio_id}/objectives", status_code=201, summary="Define an objective")
    def define_objective(http: Request, caller: Who, portfolio_id: str, body: b.DefineObjective) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: c.define_objective(p, ctx, _fields(body)))

    @router.post("/{portfolio_id}/key-results", status_code=201, summary="Define a key result")
    def define_key_result(http: Request, caller: Who, portfolio_id: str, body: b.DefineKeyResult) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: c.define_key_result(p, ctx, _fields(body)))

    @router.post("/{portfolio_id}/key-results/{kr_id}/check-ins", status_code=201, summary="Record the weekly check-in")
    def check_in(http: Request, caller: Who, portfolio_id: str, kr_id: str, body: b.RecordCheckIn) -> JSONResponse:
        fields = _fields(body, exclude={"occurred_at"})
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.record_check_in(p, ctx, kr_id, **fields))

    @router.post("/{portfolio_id}/key-results/{kr_id}/values", status_code=201, summary="Record a value")
    def record_value(http: Request, caller: Who, portfolio_id: str, kr_id: str, body: b.RecordValue) -> JSONResponse:
        def command(p: Any, ctx: Any) -> None:
            k.record_value(p, ctx, kr_id, value=body.value, observed_at=body.observed_at or ctx.now, source=body.source)

        return run(http, caller, portfolio_id, body, command)

    @router.post("/{portfolio_id}/key-results/{kr_id}/target", status_code=201, summary="Change the target (reason required)")
    def change_target(http: Request, caller: Who, portfolio_id: str, kr_id: str, body: b.ChangeTarget) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.change_target(p, ctx, kr_id, **_fields(body)))

    @router.post("/{portfolio_id}/key-results/{kr_id}/retire", status_code=201, summary="Retire (reason required)")
    def retire(http: Request, caller: Who, portfolio_id: str, kr_id: str, body: b.Retire) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.retire(p, ctx, kr_id, **_fields(body)))

    @router.post("/{portfolio_id}/key-results/{kr_id}/escalations", status_code=201, summary="Escalate to a lead")
    def escalate(http: Request, caller: Who, portfolio_id: str, kr_id: str, body: b.Escalate) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.escalate(p, ctx, kr_id, **_fields(body)))

    @router.post("/{portfolio_id}/key-results/{kr_id}/recovery-plans", status_code=201, summary="File a recovery plan")
    def recovery_plan(http: Request, caller: Who, portfolio_id: str, kr_id: str, body: b.FileRecoveryPlan) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.file_recovery_plan(p, ctx, kr_id, **_fields(body)))

    @router.post("/{portfolio_id}/nodes/{node_id}/weight", status_code=201, summary="Change a node's weight in a parent")
    def change_weight(http: Request, caller: Who, portfolio_id: str, node_id: str, body: b.ChangeWeight) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: k.change_weight(p, ctx, node_id, **_fields(body)))

    @router.post("/{portfolio_id}/nodes/{node_id}/link", status_code=201, summary="Add, move or remove a node's link")
    def change_link(http: Request, caller: Who, portfolio_id: str, node_id: str, body: b.ChangeLink) -> JSONResponse:
        return run(
            http, caller, portfolio_id, body, lambda p, ctx: k.change_link(p, ctx, node_id, new_link=body.new_link, reason=body.reason)
        )

    @router.put("/{portfolio_id}/teams/{team_id}/capacity", status_code=201, summary="Set a squad's capacity (default or a cycle's)")
    def set_capacity(http: Request, caller: Who, portfolio_id: str, team_id: str, body: b.SetCapacity) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: cap.set_capacity(p, ctx, team_id, **_fields(body)))

    @router.put(
        "/{portfolio_id}/objectives/{objective_id}/allocations/{team_id}",
        status_code=201,
        summary="Allocate an objective to a squad for a number of sprints, or change it (recorded even beyond capacity)",
    )
    def allocate(http: Request, caller: Who, portfolio_id: str, objective_id: str, team_id: str, body: b.Allocate) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: cap.allocate(p, ctx, objective_id, team_id, **_fields(body)))

    @router.post(
        "/{portfolio_id}/objectives/{objective_id}/allocations/{team_id}/remove",
        status_code=201,
        summary="Remove an objective's allocation to a squad (reason required)",
    )
    def remove_allocation(
        http: Request, caller: Who, portfolio_id: str, objective_id: str, team_id: str, body: b.RemoveAllocation
    ) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: cap.remove_allocation(p, ctx, objective_id, team_id, **_fields(body)))

    @router.put(
        "/{portfolio_id}/objectives/{objective_id}/classification",
        status_code=201,
        summary="Classify an objective: priority, AARRR stage and horizon (null: unclassified)",
    )
    def classify(http: Request, caller: Who, portfolio_id: str, objective_id: str, body: b.ClassifyObjective) -> JSONResponse:
        return run(http, caller, portfolio_id, body, lambda p, ctx: cap.classify_objective(p, ctx, objective_id, **_fields(body)))

    @router.put("/{portfolio_id}/balance", status_code=201, summary="Set the intended primary/secondary/exploration split and its margin")
    def intend_balance(http: Request, caller: Who, portfolio_id: str, body: b.IntendBalance) -> JSONResponse:
        def command(p: Any, ctx: Any) -> None:
            cap.intend_balance(p, ctx, intended=body.intended(), margin=body.margin, reason=body.reason)

        return run(http, caller, portfolio_id, body, command)

    return router


def _fields(body: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    return {name: getattr(body, name) for name in type(body).model_fields if name not in (exclude or set())}


def _command_request(http: Request, caller: Caller, body: BaseModel) -> CommandRequest:
    key = http.headers.get("idempotency-key")
    idempotency = None
    if key is not None:
        if not key.strip() or len(key) > MAX_KEY_LENGTH:
            raise Problem(400, "Bad Idempotency-Key", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        request_line = f"{http.method} {http.url.path}\n".encode()
        fingerprint = hashlib.sha256(request_line + canonical_json(body.model_dump(mode="json"))).hexdigest()
        idempotency = RequestRef(f"{caller.principal}\x1f{key}", fingerprint)
    trace: dict[str, str] = {}
    propagate.inject(trace)  # the outbox publishes in this request's trace
    return CommandRequest(
        actor_of(caller),
        idempotency=idempotency,
        expected_version=_if_match(http),
        occurred_at=getattr(body, "occurred_at", None),
        trace=trace or None,
    )


def _if_match(http: Request) -> int | None:
    raw = http.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    tag = raw.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise Problem(400, "Bad If-Match", 'If-Match must be the ETag of the node you read, e.g. "3"')
    return int(tag)


def _answer(result: CommandResult) -> JSONResponse:
    events = [event.__dict__ for event in result.events]
    headers = {"ETag": f'"{result.events[-1].aggregate_version}"'} if result.events else {}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"portfolio_id": result.portfolio_id, "replayed": result.replayed, "events": events}, 201, headers)
