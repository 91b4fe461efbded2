"""``okr apply portfolio.yaml``: OKRs as code, applied through the checkins API as events, idempotently.

The document's `connectors:` section, when it has one, is stored through the connectors
API last, after the portfolio's steps: a mapping then never routes signal to key results
not yet defined, and a connectors API that cannot be reached does not hold up the plan.

Exit status: 0 when the portfolio is as declared (applied, or nothing to do), 1 when
something stands in the way (a conflict, a change without a reason, a refusal by an
API), 2 when the document is invalid or an API cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from okr_cli import mappings
from okr_cli.api import connect
from okr_cli.console import err, fail, out
from okr_cli.mappings import MappingUnavailable
from okr_cli.plan import Plan, Step, make_plan
from okr_cli.spec import PortfolioSpec, SpecError, load_spec
from okr_runtime.problems import problem_reason

API = "/v1/portfolios"


def apply_command(
    ctx: typer.Context,
    document: Annotated[Path, typer.Argument(help="The portfolio as YAML (docs/okrs-as-code.md).")],
    checkins: Annotated[str, typer.Option(envvar="OKR_CHECKINS_URL", help="Base URL of the checkins API.")] = "http://127.0.0.1:8001",
    connectors: Annotated[
        str, typer.Option(envvar="OKR_CONNECTORS_URL", help="Base URL of the connectors API (for the `connectors:` section).")
    ] = "http://127.0.0.1:8004",
    token: Annotated[str | None, typer.Option(envvar="OKR_TOKEN", help="Bearer token of the portfolio lead.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be recorded, record nothing.")] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why: recorded with every change to what is recorded (a target, weight, link, setting, capacity, …).")
    ] = None,
) -> None:
    """Make the recorded portfolio what the document declares: define what is missing, record declared changes."""
    with connect(ctx, "checkins", checkins, token) as client, connect(ctx, "connectors", connectors, token) as mapping_client:
        apply_with(client, document, connectors=mapping_client, dry_run=dry_run, reason=reason)


def apply_with(client: httpx.Client, document: Path, *, connectors: httpx.Client, dry_run: bool = False, reason: str | None = None) -> Plan:
    """Apply `document` through `client` (the checkins API) and `connectors` (the connectors API); returns the plan it carried out."""
    try:
        spec = load_spec(document)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(problem.render(document))
        fail(f"{document} is not a valid portfolio ({len(exc.problems)} problems); nothing was recorded")
    recorded = _recorded(client, spec.portfolio.portfolio_id)
    plan = make_plan(spec, recorded, reason=reason, source=document.name)
    unavailable = _plan_mapping(plan, spec, connectors)
    _show(plan)
    if plan.conflicts:
        fail(f"{len(plan.conflicts)} conflicts: nothing was recorded", 1)
    if plan.changes and not reason:
        fail("changes to what is recorded need a reason: --reason TEXT (it is recorded with each change)", 1)
    mapping_differs = plan.mapping is not None and plan.mapping.differs
    if dry_run:
        _dry_run(plan, mapping_differs, unavailable)
    elif not plan.steps and not mapping_differs and unavailable is None:
        out.print(f"{plan.portfolio_id} is as declared: nothing to do")
    else:
        if plan.steps:
            _run(client, plan, _fingerprint(document, reason, recorded))
        _store_mapping(connectors, plan, unavailable)
    return plan


def _plan_mapping(plan: Plan, spec: PortfolioSpec, connectors: httpx.Client) -> MappingUnavailable | None:
    """Read the stored mapping when the document declares one; what stood in the way, to report once the portfolio is applied."""
    if spec.connectors is None:
        return None
    try:
        stored = mappings.read_stored(connectors, plan.portfolio_id)
    except MappingUnavailable as exc:
        return exc
    plan.mapping = mappings.plan_mapping(plan.portfolio_id, spec.connectors, stored)
    return None


def _dry_run(plan: Plan, mapping_differs: bool, unavailable: MappingUnavailable | None) -> None:
    if unavailable is not None:
        fail(f"{unavailable}; dry run: nothing was recorded", unavailable.status)
    what = [f"{len(plan.steps)} steps"] * bool(plan.steps) + ["the connector mapping"] * mapping_differs
    if what:
        out.print(f"dry run: {' and '.join(what)}, nothing was recorded")
    else:
        out.print(f"{plan.portfolio_id} is as declared: nothing to do")


def _store_mapping(connectors: httpx.Client, plan: Plan, unavailable: MappingUnavailable | None) -> None:
    """The last step: replace the stored connector mapping when it differs from the declared one."""
    problem = unavailable
    if problem is None and plan.mapping is not None and plan.mapping.differs:
        try:
            version = mappings.replace(connectors, plan.portfolio_id, plan.mapping.declared)
        except MappingUnavailable as exc:
            problem = exc
        else:
            out.print(f"[green]applied:[/] the connector mapping of {plan.portfolio_id} stored (version {version})")
    if problem is not None:
        applied = f"is applied ({len(plan.steps)} steps recorded)" if plan.steps else "was already as declared"
        again = " Apply the document again once the connectors API answers: nothing is recorded twice." if problem.status == 2 else ""
        fail(f"the connector mapping of {plan.portfolio_id} was not stored: {problem}. The portfolio {applied}.{again}", problem.status)


def _recorded(client: httpx.Client, portfolio_id: str) -> dict[str, Any] | None:
    try:
        response = client.get(f"{API}/{portfolio_id}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the checkins API at {client.base_url}: {exc}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        fail(f"reading {portfolio_id}: {response.status_code} {problem_reason(response)}")
    recorded: dict[str, Any] = response.json()
    return recorded


def _show(plan: Plan) -> None:
    for step in plan.steps:
        out.print(f"  {step.sign} {step.summary}")
    for conflict in plan.conflicts:
        out.print(f"  [bold red]![/] {conflict}")
    for name in plan.undeclared:
        out.print(f"  [dim]= {name} is recorded but not declared: left as it is[/]")
    for line in plan.mapping.lines if plan.mapping else []:
        out.print(f"  {escape(line)}")


def _run(client: httpx.Client, plan: Plan, fingerprint: str) -> None:
    for done, step in enumerate(plan.steps):
        response = _send(client, step, fingerprint)
        if response.status_code not in (200, 201):
            refused = f"{response.status_code} {problem_reason(response)}"
            fail(f"{step.summary}: {refused} ({done} of {len(plan.steps)} steps were recorded before it)", 1)
    out.print(f"[green]applied:[/] {len(plan.steps)} steps recorded for {plan.portfolio_id}")


def _send(client: httpx.Client, step: Step, fingerprint: str) -> httpx.Response:
    # The same document applied again after a crash re-sends the same keys, so nothing is recorded twice.
    request = json.dumps([step.method, step.path, step.body], sort_keys=True)
    key = hashlib.sha256(f"{fingerprint}\n{request}".encode()).hexdigest()
    try:
        return client.request(step.method, f"{API}{step.path}", json=step.body, headers={"Idempotency-Key": f"okr-apply-{key}"})
    except httpx.HTTPError as exc:
        fail(f"{step.summary}: {exc}; apply the document again to finish (what was recorded is not recorded twice)")


def _fingerprint(document: Path, reason: str | None, recorded: dict[str, Any] | None) -> str:
    """The same document and reason applied to the same recorded version: a retry, so the same keys.
    Against a later version (the portfolio changed since), the same request is a new one."""
    version = recorded.get("version") if recorded else 0
    return hashlib.sha256(document.read_bytes() + f"\n{reason or ''}\n{version}".encode()).hexdigest()
