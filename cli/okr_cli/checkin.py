"""``okr checkin PORTFOLIO KR_ID``: record a key result's weekly check-in through the checkins API.

The body is validated here first (the API's own model), so a bad option sends
nothing. Each run sends a fresh ``Idempotency-Key``, printed before the request: a
run that lost its answer can be repeated with ``--idempotency-key KEY`` and the
check-in is not recorded twice. Exit status: 0 when recorded (or found recorded by
the earlier try), 1 when the API refused (unknown key result, a portfolio the
token does not reach, a retired key result), 2 when the command could not run.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.markup import escape

from okr_checkins.http.bodies import RecordCheckIn
from okr_cli.api import Token, connect, send
from okr_cli.console import err, fail, out

API = "/v1/portfolios"


def checkin_command(
    ctx: typer.Context,
    portfolio: Annotated[str, typer.Argument(help="The portfolio id.")],
    kr_id: Annotated[str, typer.Argument(help="The key result's id.")],
    confidence: Annotated[float, typer.Option("--confidence", help="Your forecast that the key result is hit, 0.0 to 1.0.")],
    what_changed: Annotated[str, typer.Option("--what-changed", help="What changed since the last check-in.")],
    value: Annotated[float | None, typer.Option("--value", help="The current value, if known (also recorded as observed).")] = None,
    why: Annotated[str | None, typer.Option("--why", help="Why the confidence is what it is.")] = None,
    blocker: Annotated[str | None, typer.Option("--blocker", help="One blocker, if any.")] = None,
    decision_needed: Annotated[str | None, typer.Option("--decision-needed", help="One decision needed, if any.")] = None,
    checkins: Annotated[str, typer.Option(envvar="OKR_CHECKINS_URL", help="Base URL of the checkins API.")] = "http://127.0.0.1:8001",
    token: Token = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Retry an earlier run: the key it printed (default: a new one).")
    ] = None,
) -> None:
    """Record a check-in: confidence, what changed and, optionally, the value, why, a blocker and a decision needed."""
    fields = {"value": value, "why": why, "blocker": blocker, "decision_needed": decision_needed}
    body = check_in_body(confidence, what_changed, **fields)
    with connect(ctx, "checkins", checkins, token) as client:
        check_in_with(client, portfolio, kr_id, body, idempotency_key=idempotency_key)


def check_in_body(confidence: float, what_changed: str, **optional: Any) -> dict[str, Any]:
    """The request body, validated by the API's model; stops (exit 2) with what is wrong, before anything is sent."""
    if not 0.0 <= confidence <= 1.0:
        fail(f"--confidence {confidence} is outside 0.0 to 1.0 (0.7 means a 70% chance to hit it); nothing was sent")
    given = {"confidence": confidence, "what_changed": what_changed, **{k: v for k, v in optional.items() if v is not None}}
    try:
        body = RecordCheckIn.model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        fail(f"{problems}; nothing was sent")
    return body.model_dump(mode="json", exclude_unset=True)


def check_in_with(
    client: httpx.Client, portfolio: str, kr_id: str, body: dict[str, Any], *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """POST the check-in through `client` (based at the checkins API's root) and print what was recorded; returns the answer."""
    key = idempotency_key or str(uuid.uuid4())
    err.print(f"Idempotency-Key {key} (to retry this check-in safely: --idempotency-key {key})")
    path = f"{API}/{portfolio}/key-results/{kr_id}/check-ins"
    doing = f"recording the check-in of {kr_id} in {portfolio}"
    answer: dict[str, Any] = send(client, "POST", path, doing=doing, json=body, headers={"Idempotency-Key": key}).json()
    if answer["replayed"]:
        out.print(f"already recorded by an earlier try with this key; nothing was recorded again ({escape(kr_id)} in {escape(portfolio)}):")
    else:
        out.print(f"[green]recorded[/] the check-in of {escape(kr_id)} in {escape(portfolio)}:")
    for event in answer["events"]:
        where = f"version {event['aggregate_version']}, position {event['position']}"
        out.print(f"  {escape(event['type'])} {escape(event['aggregate_id'])} ({where})")
    return answer
