"""``okr scorecard PORTFOLIO``: each portfolio objective's score, confidence, trend and driving product, or the whole tree.

Reads the rollup's scores API (``GET /v1/portfolios/{p}/scorecard`` and ``…/tree``);
nothing is scored here, so what it prints is what the rollup published. Exit status:
0 when shown, 1 when the API refused (no scores, a portfolio the token does not
reach), 2 when the command could not run (bad option, no token, unreachable API).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from okr_cli.api import Token, connect, read
from okr_cli.console import fail, out

API = "/v1/portfolios"
STATUS_STYLE = {"scored": "green", "pending": "yellow", "retired": "dim"}
TREND_STYLE = {"↑": "green", "↓": "red", "→": "dim"}


def scorecard_command(
    ctx: typer.Context,
    portfolio: Annotated[str, typer.Argument(help="The portfolio id.")],
    rollup: Annotated[str, typer.Option(envvar="OKR_ROLLUP_URL", help="Base URL of the rollup (scores) API.")] = "http://127.0.0.1:8002",
    token: Token = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A past moment with its time zone, e.g. 2026-11-02T17:00:00Z.")] = None,
    window_days: Annotated[int, typer.Option("--window-days", min=1, max=366, help="The trend's window in days.")] = 14,
    cycle: Annotated[str | None, typer.Option("--cycle", help="Only this cycle's objectives.")] = None,
    tree: Annotated[bool, typer.Option("--tree", help="The hierarchy under each objective instead of the scorecard.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's document as JSON instead.")] = False,
) -> None:
    """Show the portfolio's scorecard (or with --tree its hierarchy) as the rollup scored it, now or as of a moment."""
    moment = parse_moment(as_of)
    with connect(ctx, "rollup", rollup, token) as client:
        scorecard_with(client, portfolio, as_of=moment, window_days=window_days, cycle=cycle, tree=tree, as_json=as_json)


def scorecard_with(
    client: httpx.Client,
    portfolio: str,
    *,
    as_of: datetime | None = None,
    window_days: int = 14,
    cycle: str | None = None,
    tree: bool = False,
    as_json: bool = False,
) -> dict[str, Any]:
    """Read the scorecard (or the tree) through `client` (based at the rollup API's root), print it; returns the document."""
    moment = as_of.isoformat() if as_of else None
    if tree:
        document = read(client, f"{API}/{portfolio}/tree", doing=f"reading the tree of {portfolio}", params={"as_of": moment})
    else:
        params = {"as_of": moment, "window_days": window_days, "cycle_id": cycle}
        document = read(client, f"{API}/{portfolio}/scorecard", doing=f"reading the scorecard of {portfolio}", params=params)
    if as_json:
        out.out(json.dumps(document, indent=2, ensure_ascii=False), highlight=False)
    elif tree:
        out.print(tree_of(document, cycle))
    else:
        _print_scorecard(document, cycle)
    return document


def parse_moment(text: str | None) -> datetime | None:
    """An --as-of value as a moment; stops (exit 2) unless it is ISO 8601 with a time zone."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--as-of {text!r} is not an ISO 8601 time, e.g. 2026-11-02T17:00:00Z")
    if moment.tzinfo is None:
        fail(f"--as-of {text!r} needs a time zone, e.g. 2026-11-02T17:00:00Z")
    return moment


def _print_scorecard(document: dict[str, Any], cycle: str | None) -> None:
    where = f"{document['portfolio_id']} as of {document['as_of']}"
    if not document["objectives"]:
        out.print(f"{where}: no portfolio objectives" + (f" in cycle {cycle}" if cycle else ""))
        return
    table = Table(title=f"{where}, trend over {document['window_days']} days")
    for name in ("objective", "score", "confidence", "trend", "driving product", "status", "methods"):
        table.add_column(name, justify="right" if name in ("score", "confidence") else "left", overflow="fold")
    for card in document["objectives"]:
        table.add_row(
            f"{escape(card['title'])} ({escape(card['objective_id'])})",
            percent(card["score"]),
            confidence(card["confidence"]),
            _trend(card["trend"]),
            _driver(card["driver"]),
            _status(card["status"]),
            "mixed" if card["mixed_methods"] else "",
        )
    out.print(table)


def tree_of(document: dict[str, Any], cycle: str | None = None) -> Tree:
    """The tree document as a rich Tree: objective → key result → product objective → … → initiative."""
    moment = document["as_of"] or "now"
    top = Tree(f"{escape(document['portfolio_id'])} as of {moment}")
    for root in document["roots"]:
        if cycle is None or root["cycle_id"] == cycle:
            _grow(top, root)
    return top


def _grow(parent: Tree, node: dict[str, Any]) -> None:
    branch = parent.add(_label(node))
    for child in node["children"]:
        _grow(branch, child)


def _label(node: dict[str, Any]) -> str:
    score = percent(node["progress"]) + " " if node["status"] == "scored" else ""
    facts = [f"{score}{_status(node['status'])}"]
    if node["confidence"] is not None:
        facts.append(f"confidence {confidence(node['confidence'])}")
    if node["product_id"]:
        facts.append(f"product {escape(node['product_id'])}")
    if node["mixed_methods"]:
        facts.append("mixed methods")
    return f"[bold]{kind_of(node)}[/] {escape(node['node_id'])}: {escape(node['title'] or '')} — {', '.join(facts)}"


def kind_of(node: dict[str, Any]) -> str:
    """What a node is, in words: a portfolio or product objective, an initiative, or a key result."""
    if node["node_kind"] == "key_result":
        return "KR"
    return {1: "objective", 2: "product objective", 3: "initiative"}.get(node["tier"], "objective")


def percent(progress: float) -> str:
    """Progress as a whole percent."""
    return f"{progress * 100:.0f}%"


def confidence(value: float | None) -> str:
    """A confidence with two decimals, or `unknown` when nobody has forecast yet."""
    return "unknown" if value is None else f"{value:.2f}"


def _trend(trend: dict[str, Any]) -> str:
    return f"[{TREND_STYLE.get(trend['arrow'], 'none')}]{trend['arrow']} {escape(trend['label'])}[/]"


def _driver(driver: dict[str, Any] | None) -> str:
    return "—" if driver is None else f"{escape(driver['product_id'])} ({driver['movement']:+.2f})"


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'none')}]{escape(status)}[/]"
