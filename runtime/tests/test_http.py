import asyncio

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field

from okr_runtime.health import health_router
from okr_runtime.problems import PROBLEM_JSON, Problem, install_problem_handlers


class CheckIn(BaseModel):
    confidence: float = Field(ge=0, le=1)


def make_app(ready: bool = True) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    async def dependency_ok() -> bool:
        return True

    async def dependency_state() -> bool:
        return ready

    async def dependency_hangs() -> bool:
        await asyncio.Event().wait()
        return True

    checks = {"store": dependency_ok, "kafka": dependency_state}
    if not ready:
        checks["slow"] = dependency_hangs
    app.include_router(health_router(checks, timeout_s=0.05))

    @app.post("/checkins")
    async def record(body: CheckIn) -> dict[str, float]:
        if body.confidence == 0.0:
            raise Problem(409, "Key result retired", "kr-1 was retired on 2026-08-01; check in on its replacement kr-2.")
        return {"confidence": body.confidence}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


async def call(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_validation_errors_are_problem_json_naming_each_field() -> None:
    response = await call(make_app(), "POST", "/checkins", json={"confidence": 1.5})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["title"] == "Invalid request"
    assert body["errors"] == [{"field": "body.confidence", "message": "Input should be less than or equal to 1"}]
    assert body["instance"] == "/checkins"


async def test_a_raised_problem_reaches_the_caller_as_written() -> None:
    response = await call(make_app(), "POST", "/checkins", json={"confidence": 0.0})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("kr-1 was retired")


async def test_unknown_routes_and_unexpected_errors_are_problem_json_too() -> None:
    missing = await call(make_app(), "GET", "/nowhere")
    assert (missing.status_code, missing.headers["content-type"], missing.json()["title"]) == (404, PROBLEM_JSON, "Not Found")
    boom = await call(make_app(), "GET", "/boom")
    assert boom.status_code == 500
    assert "secret internals" not in boom.text


async def test_ready_when_every_check_passes() -> None:
    response = await call(make_app(), "GET", "/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "kafka": "ok"}}


async def test_not_ready_names_the_failing_and_hanging_checks() -> None:
    response = await call(make_app(ready=False), "GET", "/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"store": "ok", "kafka": "failing", "slow": "timeout"}
    assert (await call(make_app(ready=False), "GET", "/health/live")).status_code == 200
