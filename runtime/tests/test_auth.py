"""Tokens are issued into a file of hashes and resolve to callers limited to portfolios; without usable tokens a service will not start."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from okr_runtime.auth import Authenticator, Caller, TokenConfigError, TokenRole
from okr_runtime.problems import Problem
from okr_runtime.tokens import issue


def _request(authorization: str) -> Request:
    return Request({"type": "http", "headers": [(b"authorization", authorization.encode())]})


def test_an_issued_token_authenticates_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    lead = issue(path, "cpo@example.com", ["portfolio_lead"], [])
    auditor = issue(path, "audit@example.com", ["auditor"], ["acme"])
    assert lead not in path.read_text()
    auth = Authenticator.from_file(path, "OKR_TEST_TOKENS_FILE")
    assert auth(_request(f"Bearer {lead}")) == Caller("cpo@example.com", frozenset({TokenRole.PORTFOLIO_LEAD}), frozenset({"*"}))
    assert auth(_request(f"Bearer {auditor}")) == Caller("audit@example.com", frozenset({TokenRole.AUDITOR}), frozenset({"acme"}))


@pytest.mark.parametrize("authorization", ["", "Bearer ", "Bearer not-issued", "Basic dXNlcjpwYXNz"])
def test_a_missing_or_unknown_token_is_unauthorized(tmp_path: Path, authorization: str) -> None:
    path = tmp_path / "tokens.json"
    issue(path, "cpo@example.com", [], [])
    with pytest.raises(Problem) as refused:
        Authenticator.from_file(path, "OKR_TEST_TOKENS_FILE")(_request(authorization))
    assert (refused.value.status, refused.value.headers) == (401, {"WWW-Authenticate": "Bearer"})


def test_a_token_limited_to_portfolios_is_forbidden_elsewhere() -> None:
    caller = Caller("pm@example.com", frozenset(), frozenset({"acme"}))
    caller.check_scope("acme")
    with pytest.raises(Problem) as refused:
        caller.check_scope("globex")
    assert refused.value.status == 403
    Caller("cpo@example.com", frozenset(), frozenset({"*"})).check_scope("globex")


@pytest.mark.parametrize("content", [None, "not json", '{"tokens": [{"sha256": "short", "principal": "x"}]}'])
def test_a_missing_or_malformed_tokens_file_stops_the_service(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "tokens.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenConfigError):
        Authenticator.from_file(path, "OKR_TEST_TOKENS_FILE")
    with pytest.raises(TokenConfigError, match="OKR_TEST_TOKENS_FILE is not set"):
        Authenticator.from_file(None, "OKR_TEST_TOKENS_FILE")
