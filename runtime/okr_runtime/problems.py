"""RFC 7807 problem+json responses for every HTTP error a service returns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error to answer as problem+json: raise it from a route with what the caller can act on."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.headers = dict(headers or {})
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.extensions = extensions


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    """The problem+json response for a problem raised while serving `request`."""
    body = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extensions,
    }
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error, validation and unexpected ones included, as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, Problem):
            return problem_response(request, exc)
        return await on_unexpected(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
        return problem_response(request, Problem(422, "Invalid request", detail, errors=fields))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = str(exc.detail) if isinstance(exc, StarletteHTTPException) else "error"
        return problem_response(request, Problem(status, _title(status), detail))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error serving %s", request.url.path)
        return problem_response(request, Problem(500, "Internal error", "The service failed to handle the request; it was logged."))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_reason(response: Any) -> str:
    """What a problem+json answer (an ``httpx.Response``) says, as ``Title: detail``; the start of its text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return str(response.text[:200])
    if not isinstance(body, dict):
        return str(response.text[:200])
    return f"{body.get('title', '')}: {body.get('detail', '')}".strip(": ")
