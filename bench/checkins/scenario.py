"""The benchmark's workload: portfolios with products, a cycle, objectives and key results, and a plan of weekly check-ins."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from okr_runtime.auth import TokenEntry, hash_token

CYCLE = {"cycle_id": "2026-q4", "name": "Q4 2026", "starts_on": "2026-10-01", "ends_on": "2026-12-31"}
PRODUCTS = ("checkout", "search", "onboarding", "mobile-app", "billing", "analytics")
MOVES = (
    "Shipped the redesigned flow to 50% of traffic; early numbers are in line with the A/B test from last month.",
    "Two engineers were pulled into the incident review, so the migration slipped by a week.",
    "The partner integration went live on Tuesday and the first cohort is converting better than forecast.",
    "Support tickets about the old flow dropped after the copy change; churn interviews point at pricing instead.",
    "Data pipeline backfill finished, the dashboard now shows the real baseline rather than the sampled one.",
    "Design review pushed back on the second variant; we are testing a simpler version with three steps instead of five.",
)
REASONS = (
    "Mostly the rollout pace: the experiment needed a full week of traffic before we could trust it.",
    "The dependency on the platform team is the main risk; their sprint ends on Friday.",
    "Seasonality: November is historically 8% above October for this segment.",
    "We under-estimated the QA effort for the two older Android versions still in use.",
)
ANY = frozenset({"*"})
BLOCKERS = ("Waiting for legal sign-off on the new consent text.", "The staging cluster is shared with two other squads.")


@dataclass(frozen=True)
class Call:
    """One HTTP request of the workload: a POST to `path` with `body`, authenticated by `token`."""

    path: str
    token: str
    body: dict[str, Any]
    events: int = 1


@dataclass
class Scenario:
    """The tokens the API accepts, the requests that set the portfolios up, and the check-ins to time."""

    tokens: list[TokenEntry] = field(default_factory=list)
    setup: list[list[Call]] = field(default_factory=list)
    checkins: list[Call] = field(default_factory=list)
    key_results: int = 0

    @property
    def checkin_events(self) -> int:
        """Events the check-ins append (a check-in that reports a value appends two)."""
        return sum(call.events for call in self.checkins)

    @property
    def setup_events(self) -> int:
        """Events the setup requests append."""
        return sum(call.events for calls in self.setup for call in calls)


def build_scenario(*, portfolios: int, krs_per_portfolio: int, checkins: int, value_share: float, seed: int) -> Scenario:
    """A reproducible workload; setup is one ordered list of calls per portfolio, the check-ins are shuffled weekly rounds."""
    rng = random.Random(seed)
    scenario = Scenario()
    cpo = _token(scenario, "cpo@acme.example", roles=frozenset({"portfolio_lead"}))
    owners: list[tuple[str, str, str, float, float]] = []
    for p in range(1, portfolios + 1):
        pid = f"acme-bu{p:02d}"
        calls, krs = _portfolio(scenario, rng, pid, cpo, krs_per_portfolio)
        scenario.setup.append(calls)
        owners.extend(krs)
    scenario.key_results = len(owners)
    scenario.checkins = _checkins(rng, owners, checkins, value_share)
    return scenario


def _portfolio(
    scenario: Scenario, rng: random.Random, pid: str, cpo: str, krs: int
) -> tuple[list[Call], list[tuple[str, str, str, float, float]]]:
    """One portfolio's setup calls (by its lead) and its key results as (portfolio, kr, owner token, baseline, target)."""
    lead_name = f"lead@{pid}.acme.example"
    lead = _token(scenario, lead_name, portfolios=frozenset({pid}))
    owner_tokens = [_token(scenario, f"pm{o}@{pid}.acme.example", portfolios=frozenset({pid})) for o in range(1, 6)]
    base = f"/v1/portfolios/{pid}"
    calls = [Call("/v1/portfolios", cpo, {"portfolio_id": pid, "name": f"Business unit {pid[-2:]}", "owner": lead_name})]
    products = rng.sample(PRODUCTS, 3)
    calls += [Call(f"{base}/products", lead, {"product_id": p, "name": p.replace("-", " ").title(), "lead": lead_name}) for p in products]
    calls.append(Call(f"{base}/cycles", lead, dict(CYCLE)))
    objectives = [f"o{n}" for n in range(1, max(1, krs // 5) + 1)]
    for n, objective in enumerate(objectives):
        body = {
            "objective_id": objective,
            "cycle_id": CYCLE["cycle_id"],
            "tier": 2,
            "title": f"Make {products[n % 3].replace('-', ' ')} the easiest part of the customer journey",
            "owner": f"pm{n % 5 + 1}@{pid}.acme.example",
            "product_id": products[n % 3],
        }
        calls.append(Call(f"{base}/objectives", lead, body))
    planned = []
    for k in range(1, krs + 1):
        owner = (k - 1) % 5
        baseline = float(rng.randrange(10, 60))
        target = baseline + rng.randrange(10, 40)
        body = {
            "kr_id": f"kr{k}",
            "objective_id": objectives[(k - 1) % len(objectives)],
            "title": f"Raise weekly conversion of cohort {k} from {baseline:g}% to {target:g}%",
            "baseline": baseline,
            "target": target,
            "owner": f"pm{owner + 1}@{pid}.acme.example",
        }
        calls.append(Call(f"{base}/key-results", lead, body))
        planned.append((pid, f"kr{k}", owner_tokens[owner], baseline, target))
    return calls, planned


def _checkins(rng: random.Random, krs: list[tuple[str, str, str, float, float]], total: int, value_share: float) -> list[Call]:
    """Weekly rounds over every key result in a shuffled order, each check-in sent by the key result's owner."""
    calls: list[Call] = []
    week = 0
    while len(calls) < total:
        week += 1
        for pid, kr, token, baseline, target in rng.sample(krs, len(krs)):
            body: dict[str, Any] = {
                "confidence": round(rng.uniform(0.3, 0.95), 2),
                "what_changed": f"Week {week}: {rng.choice(MOVES)}",
                "why": rng.choice(REASONS),
            }
            if rng.random() < 0.1:
                body["blocker"] = rng.choice(BLOCKERS)
            reports_value = rng.random() < value_share
            if reports_value:
                body["value"] = round(baseline + (target - baseline) * min(1.0, week / 13 + rng.uniform(-0.05, 0.05)), 1)
            calls.append(Call(f"/v1/portfolios/{pid}/key-results/{kr}/check-ins", token, body, events=2 if reports_value else 1))
            if len(calls) == total:
                break
    return calls


def _token(scenario: Scenario, principal: str, *, roles: frozenset[Any] = frozenset(), portfolios: frozenset[str] = ANY) -> str:
    """A bearer token for `principal`, registered with the scenario's authenticator entries."""
    token = f"bench-token-{principal}"
    scenario.tokens.append(TokenEntry(sha256=hash_token(token), principal=principal, roles=roles, portfolios=portfolios))
    return token
