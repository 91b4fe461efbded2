"""The hierarchy's rules: a node contributes to a node exactly one tier above, and never to itself through any path."""

from __future__ import annotations

from okr_checkins.domain.errors import InvalidLink, UnknownId
from okr_checkins.domain.state import PortfolioState
from okr_contracts.kr_events import Link


def check_link(state: PortfolioState, node_id: str, tier: int, link: Link) -> None:
    """Refuse a link from `node_id` (at `tier`) that makes a cycle, skips a tier or points down or sideways."""
    parent = state.node(link.parent_id)
    if parent is None:
        raise UnknownId(f"no objective or key result {link.parent_id!r} in this portfolio to contribute to", id=link.parent_id)
    if link.parent_id == node_id or node_id in ancestors(state, link.parent_id):
        raise InvalidLink(f"linking {node_id} to {link.parent_id} makes a cycle: {link.parent_id} already depends on {node_id}")
    if parent.tier > tier:
        raise InvalidLink(f"{node_id} is at tier {tier} and cannot contribute down to tier {parent.tier} ({link.parent_id})")
    if parent.tier == tier:
        raise InvalidLink(f"{node_id} and {link.parent_id} are both at tier {tier}; a link goes exactly one tier up")
    if tier - parent.tier > 1:
        raise InvalidLink(f"{node_id} is at tier {tier} and cannot skip to tier {parent.tier}; link it to a tier-{tier - 1} node")
    if link.parent_id in state.key_results and state.key_results[link.parent_id].is_retired:
        raise InvalidLink(f"{link.parent_id} is retired and takes no contributions")


def ancestors(state: PortfolioState, node_id: str) -> set[str]:
    """Every node whose score depends on `node_id`, through links and key results' objectives."""
    seen: set[str] = set()
    frontier = state.parents(node_id)
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(state.parents(current))
    return seen
