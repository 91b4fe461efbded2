"""``okr capacity PORTFOLIO``: each cycle's squads against their capacity and its split against the intended balance.

Reads the rollup's ``GET /v1/portfolios/{p}/capacity``; nothing is computed here, so
what it prints is what the scorecard shows. ``okr audit`` prints a replay's capacity and
a capacity check's outcome with the same tables. An over-allocated squad and an
off-balance split are said in words, so they read without colour. Exit status: 0 when
shown, 1 when the API refused, 2 when the command could not run.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import JustifyMethod
from rich.markup import escape
from rich.table import Table

from okr_audit.capacity import CapacityReport
from okr_audit.replay import Replayed, capacity_cycles
from okr_cli.api import Token, connect, read
from okr_cli.console import out
from okr_cli.scorecard import API, parse_moment


def capacity_command(
    ctx: typer.Context,
    portfolio: Annotated[str, typer.Argument(help="The portfolio id.")],
    rollup: Annotated[str, typer.Option(envvar="OKR_ROLLUP_URL", help="Base URL of the rollup (scores) API.")] = "http://127.0.0.1:8002",
    token: Token = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A past moment with its time zone, e.g. 2026-11-02T17:00:00Z.")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="Only this cycle.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's document as JSON instead.")] = False,
) -> None:
    """Show each cycle's squads (allocated sprints against capacity) and its split against the intended balance."""
    moment = parse_moment(as_of)
    with connect(ctx, "rollup", rollup, token) as client:
        capacity_with(client, portfolio, as_of=moment.isoformat() if moment else None, cycle=cycle, as_json=as_json)


def capacity_with(
    client: httpx.Client, portfolio: str, *, as_of: str | None = None, cycle: str | None = None, as_json: bool = False
) -> dict[str, Any]:
    """Read the capacity through `client` (based at the rollup API's root), print it; returns the document."""
    params = {"as_of": as_of, "cycle_id": cycle}
    document = read(client, f"{API}/{portfolio}/capacity", doing=f"reading the capacity of {portfolio}", params=params)
    if as_json:
        out.out(json.dumps(document, indent=2, ensure_ascii=False), highlight=False)
    else:
        print_cycles(document["cycles"])
    return document


def print_capacity(replayed: Replayed) -> None:
    """A replay's capacity, as the rollup would serve it."""
    print_cycles(capacity_cycles(replayed))


def print_cycles(cycles: list[dict[str, Any]]) -> None:
    """Each cycle's squads (allocated, capacity, free, over) and its split by priority against the intended balance."""
    if not cycles:
        out.print("capacity: no cycle has squads (no capacity declared, nothing allocated)")
    for cycle in cycles:
        title = escape(cycle["name"] or cycle["cycle_id"]) + (f" ({escape(cycle['cycle_id'])})" if cycle["name"] else "")
        out.print(_squads(cycle["squads"], f"capacity of {title}, as of {cycle['as_of']}"))
        out.print(_priorities(cycle["balance"]))
        out.print(verdict(cycle["balance"]))


def _squads(squads: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for name in ("squad", "allocated", "capacity", "free", "over"):
        justify: JustifyMethod = "left" if name in ("squad", "over") else "right"
        table.add_column(name, justify=justify)
    for squad in squads:
        name = f"{squad['name']} ({squad['team_id']})" if squad["name"] else squad["team_id"]
        capacity = "undeclared" if squad["capacity"] is None else sprints(squad["capacity"])
        free = "—" if squad["free"] is None else sprints(squad["free"])
        table.add_row(escape(name), sprints(squad["allocated"]), capacity, free, over(squad))
    return table


def _priorities(balance: dict[str, Any]) -> Table:
    table = Table(title="split by priority against the intended balance")
    for name in ("priority", "sprints", "actual", "intended", "deviation"):
        table.add_column(name, justify="left" if name == "priority" else "right")
    for row in balance["priorities"]:
        actual = "—" if row["actual"] is None else f"{row['actual']:.2f}"
        deviation = "—" if row["deviation"] is None else f"{row['deviation']:+.2f}"
        table.add_row(row["priority"], sprints(row["sprints"]), actual, f"{row['intended']:.2f}", deviation)
    return table


def over(squad: dict[str, Any]) -> str:
    """Whether a squad is over its capacity, in words: `yes, by N`, `no (full)`, `no`, `no (undeclared)`."""
    if squad["over"]:
        return f"[bold red]yes, by {sprints(squad['over_by'])}[/]"
    if squad["capacity"] is None:
        return "no (undeclared)"
    return "no (full)" if squad["free"] == 0 else "no"


def verdict(balance: dict[str, Any]) -> str:
    """The balance's verdict in one line: off (and the priority furthest from its share), within the margin, or not judged."""
    unclassified = balance["unclassified"]
    tail = f"; {sprints(unclassified)} sprints without a priority left out of the shares" if unclassified else ""
    if balance["off"] is None:
        return f"balance not judged: no allocated objective has a priority{tail}"
    worst = next(p for p in balance["priorities"] if p["priority"] == balance["worst"])
    furthest = f"{worst['priority']} furthest from its intended share ({worst['deviation']:+.2f})"
    if balance["off"]:
        return f"[bold red]balance off[/]: {furthest}, beyond the margin {balance['margin']:.2f}{tail}"
    return f"balance within the margin {balance['margin']:.2f}: {furthest}{tail}"


def sprints(value: float) -> str:
    """An amount of sprints without needless decimals (6, 2.5, -3)."""
    return f"{value:g}"


def print_capacity_check(report: CapacityReport, replayed: Replayed) -> None:
    """Every difference on its own line, then the verdict; or one line saying all cycles match."""
    moment = report.as_of or "now"
    for difference in report.differences:
        out.print(f"  {escape(str(difference))}")
    if report.ok:
        out.print(
            f"[green]all {report.compared} cycles match[/]: the capacity of {report.portfolio_id} the rollup serves as of {moment} "
            f"is the replay's of {replayed.events} events"
        )
    else:
        out.print(
            f"[bold red]{len(report.differences)} differences[/]: {report.matched} of {report.compared} cycles of "
            f"{report.portfolio_id} match the replay as of {moment}"
        )
