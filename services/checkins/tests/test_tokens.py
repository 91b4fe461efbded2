"""Tokens are issued into a file of hashes, and a service without usable tokens refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from okr_checkins.domain.access import TokenRole
from okr_checkins.http.auth import Authenticator, TokenConfigError
from okr_checkins.tokens import issue


def _request(token: str) -> Request:
    return Request({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})


def test_an_issued_token_authenticates_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    lead = issue(path, "cpo@example.com", ["portfolio_lead"], [])
    auditor = issue(path, "audit@example.com", ["auditor"], ["acme"])
    assert lead not in path.read_text()
    auth = Authenticator.from_file(path)
    assert auth(_request(lead)).actor.roles == {TokenRole.PORTFOLIO_LEAD}
    caller = auth(_request(auditor))
    assert (caller.actor.principal, caller.portfolios) == ("audit@example.com", frozenset({"acme"}))


@pytest.mark.parametrize("content", [None, "not json", '{"tokens": [{"sha256": "short", "principal": "x"}]}'])
def test_a_missing_or_malformed_tokens_file_stops_the_service(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "tokens.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenConfigError):
        Authenticator.from_file(path)
    with pytest.raises(TokenConfigError, match="OKR_CHECKINS_TOKENS_FILE"):
        Authenticator.from_file(None)
