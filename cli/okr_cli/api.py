"""How the ``okr`` commands talk to the services' HTTP APIs: one client per command, the bearer token, and the answers judged once.

Exit status when a request goes wrong: 2 when the command could not run (no token,
the API unreachable, the service failing with a 5xx), 1 when the API answered and
refused (a 4xx problem: unknown id, forbidden portfolio, conflict, invalid command).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import httpx
import typer

from okr_cli.console import fail
from okr_runtime.problems import problem_reason

Token = Annotated[str | None, typer.Option(envvar="OKR_TOKEN", help="Bearer token (OKR_TOKEN).")]

Connect = Callable[[str, str], httpx.Client]
"""Makes the client of one service from its base URL and a bearer token."""

TIMEOUT_S = 30


def http_client(base_url: str, token: str) -> httpx.Client:
    """A client of one okrstream API: its base URL, the bearer token on every request; redirects are not followed."""
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S)


def connect(ctx: typer.Context, service: str, base_url: str, token: str | None) -> httpx.Client:
    """The client a command talks to `service` (checkins, rollup, drift) with; stops (exit 2) without a token.

    Whoever runs the app may hand in another way to connect per service as the context
    object (``app(obj={"rollup": connect})``); the tests hand in the API in process.
    """
    if not token:
        fail("a bearer token is needed: --token or OKR_TOKEN")
    given: Mapping[str, Connect] = ctx.obj if isinstance(ctx.obj, Mapping) else {}
    return given.get(service, http_client)(base_url, token)


def send(client: httpx.Client, method: str, path: str, *, doing: str, **request: Any) -> httpx.Response:
    """Send one request and return a 2xx answer; stop with the API's reason otherwise (see the exit statuses above)."""
    try:
        response = client.request(method, path, **request)
    except httpx.HTTPError as exc:
        fail(f"{doing}: cannot reach {client.base_url}: {exc}")
    if not response.is_success:
        fail(f"{doing}: {response.status_code} {problem_reason(response)}", 1 if response.is_client_error else 2)
    return response


def read(client: httpx.Client, path: str, *, doing: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """GET a JSON document (a mapping), or stop as :func:`send` does; parameters that are ``None`` are left out."""
    given = {name: value for name, value in (params or {}).items() if value is not None}
    document: dict[str, Any] = send(client, "GET", path, doing=doing, params=given).json()
    return document
