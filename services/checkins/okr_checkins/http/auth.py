"""The check-in API's callers: authenticated by the shared bearer tokens (`okr_runtime.auth`), acting as the domain's actors."""

from __future__ import annotations

from okr_checkins.domain.access import Actor, TokenRole
from okr_runtime.auth import Caller


def actor_of(caller: Caller) -> Actor:
    """The domain actor an authenticated caller stands for, its token's roles named as the domain names them."""
    return Actor(caller.principal, frozenset(TokenRole(role.value) for role in caller.roles))
