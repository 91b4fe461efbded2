"""Bearer tokens mapped to principals and roles, configured in a file (never in code), shared by every HTTP service.

The file holds SHA-256 hashes of the tokens, not the tokens, so it can be read
by operators without disclosing credentials::

    {"tokens": [{"sha256": "…", "principal": "ana@example.com", "roles": [], "portfolios": ["acme"]}]}

``roles`` may hold ``portfolio_lead`` (may create portfolios), ``auditor``
(read-only) and ``connector``; what else a principal may do is each service's
business. ``portfolios`` limits the token to those portfolios (``["*"]``, the
default, is all). Issue tokens with ``python -m okr_runtime.tokens``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from okr_contracts.types import Principal
from okr_runtime.problems import Problem

ALL_PORTFOLIOS = "*"


class TokenConfigError(ValueError):
    """The tokens file is missing or malformed."""


class TokenRole(StrEnum):
    """Roles a bearer token grants beyond what a service's model says about its principal."""

    PORTFOLIO_LEAD = "portfolio_lead"
    AUDITOR = "auditor"
    CONNECTOR = "connector"


class TokenEntry(BaseModel):
    """One configured bearer token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the token.")
    principal: Principal = Field(description="Who the token authenticates.")
    roles: frozenset[TokenRole] = Field(default=frozenset(), description="Roles beyond those the model gives the principal.")
    portfolios: frozenset[str] = Field(default=frozenset({ALL_PORTFOLIOS}), description="Portfolios the token may reach.")


class TokenFile(BaseModel):
    """The tokens file."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry]


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who sent it, the roles its token grants and the portfolios it may reach."""

    principal: str
    roles: frozenset[TokenRole]
    portfolios: frozenset[str]

    def check_scope(self, portfolio_id: str) -> None:
        """Refuse (403) a portfolio the token does not reach."""
        if ALL_PORTFOLIOS not in self.portfolios and portfolio_id not in self.portfolios:
            raise Problem(403, "Forbidden", f"this token does not reach portfolio {portfolio_id}")


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as the tokens file stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Resolves `Authorization: Bearer …` to a caller."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._by_hash = {entry.sha256: entry for entry in entries}

    @classmethod
    def from_file(cls, path: Path | None, setting_name: str) -> Authenticator:
        """Load the tokens file the setting `setting_name` names; a service without tokens would refuse everyone, so it will not start."""
        if path is None:
            raise TokenConfigError(f"{setting_name} is not set; the API needs bearer tokens (`python -m okr_runtime.tokens` issues them)")
        try:
            parsed = TokenFile.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError, ValidationError) as exc:
            raise TokenConfigError(f"cannot use tokens file {path} ({setting_name}): {exc}") from exc
        return cls(parsed.tokens)

    def entry_for(self, token: str) -> TokenEntry | None:
        """The configured entry of a token, or None when the token is empty or unknown."""
        return self._by_hash.get(hash_token(token.strip())) if token.strip() else None

    def __call__(self, request: Request) -> Caller:
        """FastAPI dependency: the caller, or a 401 problem."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        entry = self.entry_for(token) if scheme.lower() == "bearer" else None
        if entry is None:
            raise Problem(
                401, "Unauthorized", "send a valid token as `Authorization: Bearer <token>`", headers={"WWW-Authenticate": "Bearer"}
            )
        return Caller(entry.principal, entry.roles, entry.portfolios)
