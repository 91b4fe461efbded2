"""Issue a bearer token: ``python -m okr_runtime.tokens FILE PRINCIPAL [ROLE ...] [--portfolio ID ...]``.

Adds the token's SHA-256 to the tokens file (creating it) and prints the token
once; only the hash is stored.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from okr_runtime.auth import TokenEntry, TokenFile, TokenRole, hash_token


def issue(path: Path, principal: str, roles: list[str], portfolios: list[str]) -> str:
    """Add a new token for `principal` to the file at `path` and return it."""
    current = TokenFile.model_validate(json.loads(path.read_text())) if path.exists() else TokenFile(tokens=[])
    token = secrets.token_urlsafe(32)
    entry = TokenEntry(
        sha256=hash_token(token),
        principal=principal,
        roles=frozenset(TokenRole(r) for r in roles),
        portfolios=frozenset(portfolios or ["*"]),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TokenFile(tokens=[*current.tokens, entry]).model_dump_json(indent=2) + "\n")
    return token


def main(argv: list[str]) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m okr_runtime.tokens", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("principal")
    parser.add_argument("roles", nargs="*", choices=[r.value for r in TokenRole])
    parser.add_argument("--portfolio", action="append", default=[], help="limit the token to this portfolio (repeatable)")
    args = parser.parse_args(argv)
    print(issue(args.file, args.principal, args.roles, args.portfolio))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
