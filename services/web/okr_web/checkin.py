"""My weekly check-in: every live key result the viewer owns, checked in with one form.

Rows left empty are skipped. Every row is validated before anything is sent, and a
refused form comes back with each value as typed and an error beside each field
it concerns. Each row is sent with an idempotency key made of the form's own id
and the key result, so sending the form again (after an error, a reload or a
timeout) never records a check-in twice.
"""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Seen` alias when routes are defined.

import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from okr_web.backend import ApiError, Backend
from okr_web.render import Pages
from okr_web.session import Sessions, Viewer

FIELDS = ("confidence", "value", "what_changed", "blocker")
MAX_TEXT = 4000
MAX_FORM_BYTES = 1_000_000
MAX_FORM_FIELDS = 2000
SUBMISSION = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Row:
    """One key result's part of the form: what was typed, and what is wrong with it."""

    kr: dict[str, Any]
    typed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        """Nothing typed: the key result is skipped this week."""
        return not any(v.strip() for v in self.typed.values())

    def body(self) -> dict[str, Any]:
        """The check-in to record (call once the row has no errors)."""
        sent: dict[str, Any] = {"confidence": number(self.typed["confidence"]), "what_changed": self.typed["what_changed"].strip()}
        if self.typed.get("value", "").strip():
            sent["value"] = number(self.typed["value"])
        if self.typed.get("blocker", "").strip():
            sent["blocker"] = self.typed["blocker"].strip()
        return sent


def checkin_router(pages: Pages, backend: Backend, sessions: Sessions) -> APIRouter:
    """The weekly check-in form and its submission."""
    router = APIRouter()
    Seen = Annotated[Viewer, Depends(sessions.viewer)]  # noqa: N806 (a type alias over this router's sessions)

    @router.get("/portfolios/{portfolio_id}/check-in", response_class=HTMLResponse, summary="My weekly check-in")
    async def form(viewer: Seen, portfolio_id: str, recorded: Annotated[str, Query(max_length=10_000)] = "") -> HTMLResponse:
        rows = [Row(kr) for kr in await my_key_results(backend, viewer, portfolio_id)]
        done = [r for r in recorded.split(",") if r]
        return show(pages, viewer, portfolio_id, rows, uuid.uuid4().hex, recorded=done)

    @router.post("/portfolios/{portfolio_id}/check-in", response_class=HTMLResponse, summary="Record my weekly check-in")
    async def submit(request: Request, viewer: Seen, portfolio_id: str) -> Response:
        typed = await form_fields(request)
        if typed is None:
            return pages.render("error.html", viewer, status=415, title="Unsupported form", detail="Send the check-in form from its page.")
        submission = typed.get("submission", "")
        submission = submission if SUBMISSION.match(submission) else uuid.uuid4().hex
        rows = [
            Row(kr, {f: typed.get(f"{kr['kr_id']}.{f}", "") for f in FIELDS}) for kr in await my_key_results(backend, viewer, portfolio_id)
        ]
        for row in rows:
            row.errors = validate(row)
        filled = [r for r in rows if not r.blank]
        if not filled:
            return show(
                pages,
                viewer,
                portfolio_id,
                rows,
                submission,
                status=422,
                problem="Fill in at least one key result; empty rows are skipped.",
            )
        if any(r.errors for r in rows):
            return show(pages, viewer, portfolio_id, rows, submission, status=422, problem=summary(rows))
        recorded = [r.kr["kr_id"] for r in filled if await send(backend, viewer, portfolio_id, r, submission)]
        if len(recorded) < len(filled):
            left = [r for r in rows if r.kr["kr_id"] not in recorded]
            return show(pages, viewer, portfolio_id, left, submission, status=422, problem=summary(left), recorded=recorded)
        location = f"/portfolios/{quote(portfolio_id)}/check-in?recorded={quote(','.join(recorded))}"
        return RedirectResponse(location, status_code=303)

    return router


async def my_key_results(backend: Backend, viewer: Viewer, portfolio_id: str) -> list[dict[str, Any]]:
    """The live key results the viewer owns, in the order they were defined, each with its last check-in's time if drift knows it."""
    found = await backend.get("checkins", f"/v1/portfolios/{portfolio_id}", viewer.token)
    try:
        seen = await backend.get("drift", f"/v1/portfolios/{portfolio_id}/check-ins", viewer.token)
    except ApiError:  # drift has not seen the portfolio yet, or is down: the form works without the dates
        seen = {"key_results": []}
    last = {row["kr_id"]: row["last_check_in"] for row in seen["key_results"]}
    mine = [kr for kr in found["key_results"] if kr["owner"] == viewer.principal and kr["status"] == "active"]
    return [{**kr, "last_check_in_at": last.get(kr["kr_id"])} for kr in mine]


async def form_fields(request: Request) -> dict[str, str] | None:
    """The posted form's fields (the last of repeated ones), or None when it is not a URL-encoded form of reasonable size."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError:  # more fields than any form of ours has
        return None


def validate(row: Row) -> dict[str, str]:
    """What is wrong with each field of a filled-in row (nothing for an empty one)."""
    if row.blank:
        return {}
    errors = {}
    confidence = number(row.typed.get("confidence", ""))
    if confidence is None or not 0.0 <= confidence <= 1.0:
        errors["confidence"] = "Confidence is your forecast from 0.0 (will not happen) to 1.0 (certain), e.g. 0.6."
    if row.typed.get("value", "").strip() and number(row.typed["value"]) is None:
        errors["value"] = f"The value must be a number{' in ' + row.kr['unit'] if row.kr.get('unit') else ''}, e.g. 42.5."
    if not row.typed.get("what_changed", "").strip():
        errors["what_changed"] = "Say what changed since the last check-in (one or two sentences)."
    for name in ("what_changed", "blocker"):
        if len(row.typed.get(name, "")) > MAX_TEXT:
            errors[name] = f"Keep it under {MAX_TEXT} characters."
    return errors


def number(text: str) -> float | None:
    """A decimal typed by a person ("0.6", "0,6", " 42 "), or None when it is not a finite number."""
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


async def send(backend: Backend, viewer: Viewer, portfolio_id: str, row: Row, submission: str) -> bool:
    """Record one row's check-in; on refusal, put the API's reasons on the row's fields and answer False."""
    path = f"/v1/portfolios/{portfolio_id}/key-results/{row.kr['kr_id']}/check-ins"
    try:
        await backend.post("checkins", path, viewer.token, row.body(), idempotency_key=f"web-{submission}-{row.kr['kr_id']}")
    except ApiError as exc:
        if exc.status == 401:
            raise
        if exc.status >= 500:
            row.errors["row"] = f"Not recorded: {exc.reason}. Send the form again; nothing is recorded twice."
            return False
        for found in exc.errors:
            name = found.field.rsplit(".", 1)[-1]
            row.errors[name if name in FIELDS else "row"] = found.message
        if not exc.errors:
            row.errors["row"] = exc.reason
        return False
    return True


def summary(rows: list[Row]) -> str:
    """The error summary at the top of the form."""
    count = sum(len(r.errors) for r in rows)
    return f"{count} {'problem' if count == 1 else 'problems'} to fix; nothing was recorded for the key results marked below."


def show(
    pages: Pages,
    viewer: Viewer,
    portfolio_id: str,
    rows: list[Row],
    submission: str,
    *,
    status: int = 200,
    problem: str | None = None,
    recorded: list[str] | None = None,
) -> HTMLResponse:
    """The form with what was typed and the errors beside their fields."""
    context = {"portfolio_id": portfolio_id, "rows": rows, "submission": submission, "problem": problem, "recorded": recorded or []}
    return pages.render("checkin.html", viewer, status=status, **context)
