"""A caller authenticated by the shared tokens acts in the domain with its token's roles; the service names its tokens setting."""

from __future__ import annotations

import pytest

from okr_checkins.bootstrap import create_app
from okr_checkins.domain.access import Actor
from okr_checkins.domain.access import TokenRole as DomainRole
from okr_checkins.http.auth import actor_of
from okr_checkins.settings import CheckinsSettings
from okr_runtime.auth import Caller, TokenConfigError
from okr_runtime.auth import TokenRole as TokenFileRole


def test_the_domain_knows_every_role_a_token_can_grant() -> None:
    assert {r.value for r in TokenFileRole} == {r.value for r in DomainRole}


def test_a_caller_acts_with_its_tokens_roles() -> None:
    caller = Caller("audit@example.com", frozenset({TokenFileRole.AUDITOR}), frozenset({"acme"}))
    assert actor_of(caller) == Actor("audit@example.com", frozenset({DomainRole.AUDITOR}))
    assert actor_of(caller).read_only


def test_without_a_tokens_file_the_service_names_its_setting() -> None:
    with pytest.raises(TokenConfigError, match="OKR_CHECKINS_TOKENS_FILE is not set"):
        create_app(CheckinsSettings(tokens_file=None))
