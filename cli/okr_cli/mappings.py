"""The document's `connectors:` section against the portfolio's stored connector mapping, and replacing it.

The section is the portfolio's whole mapping: what it declares is stored as it is
(``PUT /v1/connectors/mappings/{portfolio_id}``), and a rule or channel taken out of it
is removed. It is sent only when it differs from what is stored, so applying the same
document again changes nothing. A document without the section leaves the stored
mapping alone. Rules are told apart by their matchers (source, project, epic, label,
team); the same matchers with other key results or product are a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from okr_connectors.mapping import Mapping, MappingRule, SlackChannel
from okr_runtime.problems import problem_reason

API = "/v1/connectors/mappings"
MATCHERS = ("source", "project", "parent_key", "label", "team")


class MappingUnavailable(Exception):
    """The stored mapping could not be read or replaced; `status` is the exit status (1 refused, 2 could not run)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class MappingPlan:
    """What applying the `connectors:` section would change: the lines to show, and whether to send it."""

    portfolio_id: str
    declared: Mapping
    stored: Mapping
    lines: list[str] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        """Whether the stored mapping is not yet the declared one."""
        return self.declared != self.stored


def read_stored(client: httpx.Client, portfolio_id: str) -> Mapping:
    """The portfolio's stored mapping (the empty one when none is stored); :class:`MappingUnavailable` otherwise."""
    answer = _call(client, "GET", portfolio_id, doing="reading the stored connector mapping")
    try:
        return Mapping.model_validate({"rules": answer.get("rules", []), "slack_channels": answer.get("slack_channels", {})})
    except ValidationError as exc:
        raise MappingUnavailable(f"the connectors API's stored mapping of {portfolio_id} is not one this okr reads: {exc}", 2) from exc


def replace(client: httpx.Client, portfolio_id: str, declared: Mapping) -> int:
    """Store the declared mapping; its new version."""
    body = declared.model_dump(mode="json", exclude_none=True)
    answer = _call(client, "PUT", portfolio_id, doing="storing the connector mapping", body=body)
    return int(answer.get("version", 0))


def _call(client: httpx.Client, method: str, portfolio_id: str, *, doing: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        response = client.request(method, f"{API}/{portfolio_id}", json=body)
    except httpx.HTTPError as exc:
        raise MappingUnavailable(f"{doing}: cannot reach the connectors API at {client.base_url}: {exc}", 2) from exc
    if not response.is_success:
        raise MappingUnavailable(f"{doing}: {response.status_code} {problem_reason(response)}", 1 if response.is_client_error else 2)
    answer: dict[str, Any] = response.json()
    return answer


def plan_mapping(portfolio_id: str, declared: Mapping, stored: Mapping) -> MappingPlan:
    """The lines that show how `stored` becomes `declared`: ``+`` added, ``-`` removed, ``~`` changed."""
    plan = MappingPlan(portfolio_id, declared, stored)
    remaining = list(stored.rules)
    kept: list[MappingRule] = []
    for rule in declared.rules:
        same = next((old for old in remaining if _matchers(old) == _matchers(rule)), None)
        if same is None:
            plan.lines.append(f"+ connector rule {_describe(rule)}")
            continue
        remaining.remove(same)
        kept.append(same)
        if same != rule:
            plan.lines.append(f"~ connector rule {_matchers_text(rule)}: {_targets(same)} → {_targets(rule)}")
    plan.lines += [f"- connector rule {_describe(rule)}" for rule in remaining]
    if kept != [rule for rule in stored.rules if rule in kept]:
        plan.lines.append("~ connector rules in another order (the first matching rule names the portfolio)")
    plan.lines += _channels(declared.slack_channels, stored.slack_channels)
    return plan


def _channels(declared: dict[str, SlackChannel], stored: dict[str, SlackChannel]) -> list[str]:
    lines = [f"+ slack channel {c} → {_krs(declared[c])}" for c in declared if c not in stored]
    lines += [f"~ slack channel {c}: {_krs(stored[c])} → {_krs(declared[c])}" for c in declared if c in stored and stored[c] != declared[c]]
    return lines + [f"- slack channel {c} → {_krs(stored[c])}" for c in stored if c not in declared]


def _matchers(rule: MappingRule) -> tuple[object, ...]:
    return tuple(getattr(rule, name) for name in MATCHERS)


def _matchers_text(rule: MappingRule) -> str:
    return " ".join(f"{name}={getattr(rule, name)}" for name in MATCHERS if getattr(rule, name) is not None)


def _describe(rule: MappingRule) -> str:
    return f"{_matchers_text(rule)} → {_targets(rule)}"


def _targets(rule: MappingRule) -> str:
    product = f" (product {rule.product_id})" if rule.product_id else ""
    return f"{_krs(rule)}{product}"


def _krs(entry: MappingRule | SlackChannel) -> str:
    return f"key results {', '.join(entry.kr_ids)}" if entry.kr_ids else "the portfolio, no key result"
