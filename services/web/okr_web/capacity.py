"""The scorecard's capacity section: each squad's sprints against its capacity, and where the cycle's sprints go.

Every number is the rollup's (`GET …/capacity`, computed with the arithmetic drift's
alerts use); this module only chooses the cycles shown and puts the numbers into
words, so an over-allocated squad or an off-balance split reads without colour.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from okr_web.backend import ApiError, Backend
from okr_web.formats import number
from okr_web.session import Viewer

PRIORITY_WORDS = {"primary": "Primary", "secondary": "Secondary", "exploration": "Exploration"}
STAGE_WORDS = {
    "acquisition": "Acquisition",
    "activation": "Activation",
    "retention": "Retention",
    "referral": "Referral",
    "revenue": "Revenue",
}
HORIZON_WORDS = {"run": "Run", "grow": "Grow", "transform": "Transform"}


async def capacity_of(backend: Backend, viewer: Viewer, portfolio_id: str, cycle_id: str | None) -> dict[str, Any] | ApiError:
    """The rollup's capacity views (one cycle's, if given), or why it cannot say: the scorecard shows without them."""
    try:
        found: dict[str, Any] = await backend.get("rollup", f"/v1/portfolios/{portfolio_id}/capacity", viewer.token, cycle_id=cycle_id)
    except ApiError as exc:
        return exc
    return found


def sections(found: dict[str, Any], shown: Iterable[str]) -> list[dict[str, Any]]:
    """The capacity of each cycle shown that has squads, in the order shown, with its loads and balance in words."""
    by_cycle = {c["cycle_id"]: c for c in found["cycles"]}
    return [section(by_cycle[cycle_id]) for cycle_id in shown if cycle_id in by_cycle]


def section(cycle: dict[str, Any]) -> dict[str, Any]:
    """One cycle's view with words: each squad's load, the balance's verdict, and the splits' names."""
    balance = cycle["balance"]
    return {
        **cycle,
        "title": cycle["name"] or cycle["cycle_id"],
        "squads": [{**s, "load": load(s), "shown_name": s["name"] or s["team_id"], "free_text": free(s["free"])} for s in cycle["squads"]],
        "over": [s["name"] or s["team_id"] for s in cycle["squads"] if s["over"]],
        "priorities": [
            {**p, "label": PRIORITY_WORDS.get(p["priority"], p["priority"]), "difference": points(p["deviation"])}
            for p in balance["priorities"]
        ],
        "verdict": verdict(balance),
        "stages": named(cycle["aarrr"]["values"], STAGE_WORDS),
        "horizons": named(cycle["horizon"]["values"], HORIZON_WORDS),
    }


def sprints(value: float) -> str:
    """An amount of sprints in words ("1 sprint", "2.5 sprints")."""
    return f"{number(value)} sprint{'' if value == 1 else 's'}"


def free(value: float | None) -> str:
    """Free sprints, with a true minus sign when over ("−2"), a dash when the capacity is undeclared."""
    if value is None:
        return "—"
    return f"−{number(-value)}" if value < 0 else number(value)


def load(squad: dict[str, Any]) -> dict[str, str]:
    """A squad's load as a state (`over`, `full`, `free`, `undeclared`) and words that say it without colour."""
    if squad["capacity"] is None:
        return {"state": "undeclared", "words": "capacity not declared"}
    if squad["over"]:
        return {"state": "over", "words": f"Over-allocated by {sprints(squad['over_by'])}"}
    if squad["free"] == 0:
        return {"state": "full", "words": "full"}
    return {"state": "free", "words": f"{sprints(squad['free'])} free"}


def points(deviation: float | None) -> str:
    """A difference of shares in percentage points ("+5 pts", "−20 pts"); a dash when not judged."""
    if deviation is None:
        return "—"
    whole = round(deviation * 100)
    return f"−{-whole} pts" if whole < 0 else f"+{whole} pts" if whole > 0 else "0 pts"


def verdict(balance: dict[str, Any]) -> dict[str, str]:
    """Whether the split by priority keeps to the intended balance, as a state and a sentence."""
    margin = round(balance["margin"] * 100)
    if balance["off"] is None:
        return {"state": "unjudged", "words": "Not judged: no allocated objective has a priority yet."}
    if not balance["off"]:
        return {"state": "in", "words": f"In balance: every priority's share is within {margin} points of its intended share."}
    worst = next(p for p in balance["priorities"] if p["priority"] == balance["worst"])
    side = "over" if worst["deviation"] > 0 else "under"
    intended = round(worst["intended"] * 100)
    label = PRIORITY_WORDS.get(worst["priority"], worst["priority"])
    words = (
        f"Off balance: {label} is {abs(round(worst['deviation'] * 100))} points {side} its intended {intended}% (margin {margin} points)."
    )
    return {"state": "off", "words": words}


def named(values: list[dict[str, Any]], words: dict[str, str]) -> list[dict[str, Any]]:
    """The rows of a split with the names people use."""
    return [{**v, "label": words.get(v["value"], v["value"])} for v in values]
