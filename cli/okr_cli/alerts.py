"""``okr alerts PORTFOLIO``: drift's alerts, newest first, filtered by state, product, owner and rule.

Reads the alerts API (``GET /v1/portfolios/{p}/alerts``). Exit status: 0 when
listed (none matching included), 1 when the API refused (a portfolio the token
does not reach), 2 when the command could not run (bad option, no token,
unreachable API).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from okr_cli.api import Token, connect, read
from okr_cli.console import out
from okr_contracts.alerts import DriftRule
from okr_drift.domain.alerts import AlertState

API = "/v1/portfolios"
PAGE = 200
"""The API's default page: the newest this many alerts."""
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


def alerts_command(
    ctx: typer.Context,
    portfolio: Annotated[str, typer.Argument(help="The portfolio id.")],
    drift: Annotated[str, typer.Option(envvar="OKR_DRIFT_URL", help="Base URL of the drift (alerts) API.")] = "http://127.0.0.1:8003",
    token: Token = None,
    state: Annotated[list[AlertState] | None, typer.Option("--state", help="Repeat for several; default open and acknowledged.")] = None,
    product: Annotated[str | None, typer.Option("--product", help="Only alerts about this product line's nodes.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only alerts about nodes this principal owns.")] = None,
    rule: Annotated[DriftRule | None, typer.Option("--rule", help="Only this rule.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's document as JSON instead.")] = False,
) -> None:
    """List the portfolio's drift alerts, newest first: the active ones unless --state asks for others."""
    states = [s.value for s in state or ()]
    with connect(ctx, "drift", drift, token) as client:
        alerts_with(client, portfolio, states=states, product=product, owner=owner, rule=rule.value if rule else None, as_json=as_json)


def alerts_with(
    client: httpx.Client,
    portfolio: str,
    *,
    states: Sequence[str] = (),
    product: str | None = None,
    owner: str | None = None,
    rule: str | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Read the alerts through `client` (based at the drift API's root), print them; returns the document."""
    params = {"state": list(states) or None, "product_id": product, "owner": owner, "rule": rule}
    document = read(client, f"{API}/{portfolio}/alerts", doing=f"reading the alerts of {portfolio}", params=params)
    if as_json:
        out.out(json.dumps(document, indent=2, ensure_ascii=False), highlight=False)
        return document
    which = " or ".join(states) if states else "open or acknowledged"
    items = document["items"]
    if not items:
        out.print(f"no {which} alerts of {escape(portfolio)} match")
        return document
    out.print(_table(items, f"{portfolio}: {len(items)} {which} alerts, newest first"))
    if len(items) == PAGE:
        out.print(f"only the newest {PAGE} are shown; narrow the list with --state, --product, --owner or --rule")
    return document


def _table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=escape(title))
    for name in ("severity", "rule", "node", "summary", "state", "raised at"):
        table.add_column(name, overflow="fold")
    for item in items:
        table.add_row(
            f"[{SEVERITY_STYLE.get(item['severity'], 'none')}]{escape(item['severity'])}[/]",
            escape(item["rule"]),
            escape(item["node_id"]),
            escape(item["summary"]),
            _state(item),
            when(item["raised_at"]),
        )
    return table


def _state(item: dict[str, Any]) -> str:
    if item["state"] == "acknowledged" and item.get("acknowledged_by"):
        return f"acknowledged by {escape(item['acknowledged_by'])}"
    return escape(item["state"])


def when(text: str) -> str:
    """A time from the API, to the minute in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
