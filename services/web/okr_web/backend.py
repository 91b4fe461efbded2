"""The APIs the pages read and write, called with the signed-in viewer's own token.

The web service holds no data and no privileges of its own: every page is what the
checkins, rollup and drift APIs answer to the viewer's token, so what a person may
see and do is decided where it always is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from opentelemetry import propagate

from okr_runtime.problems import problem_reason
from okr_web.settings import WebSettings

Api = Literal["checkins", "rollup", "drift"]


@dataclass(frozen=True)
class FieldError:
    """One field of a request body the API refused, as its problem+json `errors` names it."""

    field: str
    message: str


class ApiError(Exception):
    """An API answered with an error (problem+json), or could not be reached."""

    def __init__(self, api: Api, status: int, reason: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(f"{api}: {status} {reason}")
        self.api = api
        self.status = status
        self.reason = reason
        self.errors = errors


@dataclass
class Backend:
    """One HTTP client per API, shared by every request the web service serves.

    `transports` reaches an API some other way than over the network (the tests serve
    the real apps in process through `httpx.ASGITransport`); by default, none.
    """

    settings: WebSettings
    transports: Mapping[Api, httpx.AsyncBaseTransport] = field(default_factory=dict)
    clients: dict[Api, httpx.AsyncClient] = field(default_factory=dict)

    def start(self) -> None:
        """Open the clients (connection pools live for the service's lifetime)."""
        urls: dict[Api, str] = {
            "checkins": self.settings.checkins_url,
            "rollup": self.settings.rollup_url,
            "drift": self.settings.drift_url,
        }
        for api, url in urls.items():
            transport = self.transports.get(api)
            self.clients[api] = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=self.settings.api_timeout_s, transport=transport)

    async def close(self) -> None:
        """Close the clients."""
        for client in self.clients.values():
            await client.aclose()

    async def get(self, api: Api, path: str, token: str, **params: Any) -> Any:
        """The JSON an API answers to GET `path`, or ApiError."""
        query = {k: v for k, v in params.items() if v is not None}
        return await self._send(api, "GET", path, token, params=query)

    async def post(self, api: Api, path: str, token: str, body: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        """The JSON an API answers to POST `path` with `body`, or ApiError."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._send(api, "POST", path, token, json=body, headers=headers)

    async def live(self, api: Api) -> bool:
        """Whether the API answers its liveness probe."""
        try:
            return (await self.clients[api].get("/health/live")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _send(self, api: Api, method: str, path: str, token: str, *, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        propagate.inject(sent)  # the API's spans join the page's trace
        try:
            response = await self.clients[api].request(method, path, headers=sent, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(api, 502, f"the {api} service cannot be reached ({type(exc).__name__})") from exc
        if response.is_success:
            return response.json()
        raise ApiError(api, response.status_code, problem_reason(response), _field_errors(response))


def _field_errors(response: httpx.Response) -> tuple[FieldError, ...]:
    try:
        body = response.json()
    except ValueError:
        return ()
    found = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(found, list):
        return ()
    return tuple(FieldError(str(e.get("field", "")), str(e.get("message", ""))) for e in found if isinstance(e, dict))
