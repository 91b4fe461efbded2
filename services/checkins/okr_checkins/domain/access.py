"""Who may do what: roles follow from the model (owner, leads, scorekeeper) and from the token (auditor, connector).

A principal's relations to a node are computed from the portfolio's state, so
making someone a product lead is an event in the history like everything else.
Tokens add global roles: ``portfolio_lead`` may create portfolios, ``auditor``
is read-only everywhere (even where the principal also owns something), and
``connector`` records values only on key results bound to a KPI.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from okr_checkins.domain.errors import NotPermitted
from okr_checkins.domain.state import KeyResult, Objective, PortfolioState


class TokenRole(StrEnum):
    """Roles a bearer token grants beyond what the model says about its principal."""

    PORTFOLIO_LEAD = "portfolio_lead"
    AUDITOR = "auditor"
    CONNECTOR = "connector"


class Relation(StrEnum):
    """How a principal relates to the node a command is about."""

    PORTFOLIO_LEAD = "portfolio lead"
    PRODUCT_LEAD = "product lead"
    OWNER = "owner"
    SCOREKEEPER = "scorekeeper"
    BOUND_CONNECTOR = "connector bound to the key result"


class Action(StrEnum):
    """Commands, named as the verbs a role is allowed or refused."""

    REDEFINE_PORTFOLIO = "redefine the portfolio"
    DEFINE_PRODUCT = "define a product"
    DEFINE_TEAM = "define a team"
    START_CYCLE = "start a cycle"
    CLOSE_CYCLE = "close a cycle"
    DEFINE_OBJECTIVE = "define an objective"
    DEFINE_KEY_RESULT = "define a key result"
    CHECK_IN = "check in"
    RECORD_VALUE = "record a value"
    CHANGE_TARGET = "change a target"
    CHANGE_WEIGHT = "change a weight"
    CHANGE_LINK = "change a link"
    RETIRE = "retire a key result"
    ESCALATE = "escalate a key result"
    FILE_RECOVERY_PLAN = "file a recovery plan"
    SET_CAPACITY = "set a squad's capacity"
    ALLOCATE = "allocate an objective to a squad"
    REMOVE_ALLOCATION = "remove an objective's allocation"
    CLASSIFY_OBJECTIVE = "classify an objective"
    INTEND_BALANCE = "set the intended balance"


LEAD, PRODUCT, OWNER, KEEPER, CONNECTOR = (
    Relation.PORTFOLIO_LEAD,
    Relation.PRODUCT_LEAD,
    Relation.OWNER,
    Relation.SCOREKEEPER,
    Relation.BOUND_CONNECTOR,
)

ALLOWED: dict[Action, frozenset[Relation]] = {
    Action.REDEFINE_PORTFOLIO: frozenset({LEAD}),
    Action.DEFINE_PRODUCT: frozenset({LEAD}),
    Action.DEFINE_TEAM: frozenset({LEAD, PRODUCT}),
    Action.START_CYCLE: frozenset({LEAD}),
    Action.CLOSE_CYCLE: frozenset({LEAD}),
    Action.DEFINE_OBJECTIVE: frozenset({LEAD, PRODUCT}),
    Action.DEFINE_KEY_RESULT: frozenset({LEAD, PRODUCT, OWNER}),
    Action.CHECK_IN: frozenset({OWNER}),
    Action.RECORD_VALUE: frozenset({LEAD, PRODUCT, OWNER, CONNECTOR}),
    Action.CHANGE_TARGET: frozenset({LEAD, PRODUCT}),
    Action.CHANGE_WEIGHT: frozenset({LEAD, PRODUCT}),
    Action.CHANGE_LINK: frozenset({LEAD, PRODUCT}),
    Action.RETIRE: frozenset({LEAD, PRODUCT, OWNER}),
    Action.ESCALATE: frozenset({PRODUCT, OWNER}),
    Action.FILE_RECOVERY_PLAN: frozenset({LEAD, PRODUCT, OWNER}),
    Action.SET_CAPACITY: frozenset({LEAD, PRODUCT}),
    Action.ALLOCATE: frozenset({LEAD, PRODUCT}),
    Action.REMOVE_ALLOCATION: frozenset({LEAD, PRODUCT}),
    Action.CLASSIFY_OBJECTIVE: frozenset({LEAD, PRODUCT}),
    Action.INTEND_BALANCE: frozenset({LEAD}),
}
"""The relations that may perform each action (a scorekeeper narrows RECORD_VALUE, see `authorise`)."""


@dataclass(frozen=True)
class Actor:
    """An authenticated principal and the roles its token grants."""

    principal: str
    roles: frozenset[TokenRole] = frozenset()

    @property
    def read_only(self) -> bool:
        return TokenRole.AUDITOR in self.roles


def relations(state: PortfolioState, actor: Actor, *, product_id: str | None = None, node_id: str | None = None) -> set[Relation]:
    """The actor's relations to a node (or to a product, or to the portfolio when neither is given)."""
    found: set[Relation] = set()
    if actor.principal == state.settings.owner:
        found.add(LEAD)
    node = state.node(node_id) if node_id else None
    product = product_id or _product_of(state, node)
    if product and product in state.products and state.products[product].lead == actor.principal:
        found.add(PRODUCT)
    if isinstance(node, Objective) and node.owner == actor.principal:
        found.add(OWNER)
    if isinstance(node, KeyResult):
        if node.spec.owner == actor.principal:
            found.add(OWNER)
        if node.spec.scorekeeper == actor.principal:
            found.add(KEEPER)
        if TokenRole.CONNECTOR in actor.roles and node.spec.kpi_binding:
            found.add(CONNECTOR)
    return found


def authorise(state: PortfolioState, actor: Actor, action: Action, *, product_id: str | None = None, node_id: str | None = None) -> None:
    """Refuse the command unless the actor's relations allow `action`."""
    if actor.read_only:
        raise NotPermitted(f"{actor.principal} holds a read-only auditor token and may not {action}", action=str(action))
    held = relations(state, actor, product_id=product_id, node_id=node_id)
    if TokenRole.CONNECTOR in actor.roles:
        held &= {CONNECTOR}
    allowed = _allowed(state, action, node_id)
    if not held & allowed:
        who = " or ".join(sorted(allowed))
        raise NotPermitted(f"only the {who} may {action}", action=str(action), allowed=sorted(allowed))


def _allowed(state: PortfolioState, action: Action, node_id: str | None) -> frozenset[Relation]:
    kr = state.key_results.get(node_id) if node_id else None
    if action is Action.RECORD_VALUE and kr is not None and kr.spec.scorekeeper:
        return frozenset({KEEPER, CONNECTOR})
    if action in {Action.CHANGE_TARGET, Action.CHANGE_WEIGHT, Action.CHANGE_LINK, Action.DEFINE_OBJECTIVE} and _tier(state, node_id) == 1:
        return frozenset({LEAD})
    return ALLOWED[action]


def _tier(state: PortfolioState, node_id: str | None) -> int | None:
    node = state.node(node_id) if node_id else None
    return node.tier if node is not None else None


def _product_of(state: PortfolioState, node: Objective | KeyResult | None) -> str | None:
    if isinstance(node, Objective):
        return node.product_id
    if isinstance(node, KeyResult):
        objective = state.objectives.get(node.spec.objective_id)
        return objective.product_id if objective else None
    return None
