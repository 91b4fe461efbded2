"""Domain errors answered as RFC 7807 problems, with a stable type per rule."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from okr_checkins.domain.errors import DomainError
from okr_runtime.problems import Problem, problem_response

PROBLEM_TYPE = "urn:okrstream:problem:{code}"

STATUS = {
    "unknown-id": (404, "Not found"),
    "forbidden": (403, "Forbidden"),
    "already-defined": (409, "Already defined"),
    "version-conflict": (409, "Version conflict"),
    "key-result-retired": (409, "Key result retired"),
    "cycle-closed": (409, "Cycle closed"),
    "contention": (409, "Too many concurrent changes"),
    "baseline-equals-target": (422, "Baseline equals target"),
    "invalid-link": (422, "Invalid link"),
    "mixed-methods-refused": (422, "Mixed rollup methods refused"),
    "unit-mismatch": (422, "Unit mismatch"),
    "idempotency-key-reused": (422, "Idempotency-Key reused"),
    "invalid-command": (422, "Invalid command"),
}
"""HTTP status and title of each problem code; documented in docs/checkins.md."""


def install_domain_errors(app: FastAPI) -> None:
    """Answer every `DomainError` as problem+json; nothing was recorded when one is raised."""

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status, title = STATUS.get(exc.code, (422, "Invalid command"))
        problem = Problem(status, title, exc.detail, type_=PROBLEM_TYPE.format(code=exc.code), **exc.facts)
        return problem_response(request, problem)

    app.add_exception_handler(DomainError, on_domain_error)
