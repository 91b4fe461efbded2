"""Liveness and readiness endpoints, the same on every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from okr_runtime.problems import Problem, problem_response

ReadinessCheck = Callable[[], Awaitable[bool]]
"""Answers True when the dependency it checks is usable."""


def health_router(checks: Mapping[str, ReadinessCheck], *, timeout_s: float = 2.0) -> APIRouter:
    """`/health/live` (the process answers) and `/health/ready` (every check passes in time)."""
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        results = await asyncio.gather(*(_run(check, timeout_s) for check in checks.values()))
        report = dict(zip(checks, results, strict=True))
        failing = [name for name, result in report.items() if result != "ok"]
        if not failing:
            return JSONResponse({"status": "ready", "checks": report})
        return problem_response(request, Problem(503, "Not ready", f"not ready: {', '.join(failing)}", checks=report))

    return router


async def _run(check: ReadinessCheck, timeout_s: float) -> str:
    try:
        ok = await asyncio.wait_for(check(), timeout_s)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok" if ok else "failing"
