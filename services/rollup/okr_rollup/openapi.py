"""The rollup read API's OpenAPI document, committed at docs/openapi/rollup.json.

Usage: ``python -m okr_rollup.openapi write|check``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI

from okr_rollup.bootstrap import DESCRIPTION
from okr_rollup.http import install_api
from okr_rollup.store import SqliteScoreStore
from okr_runtime.auth import Authenticator
from okr_runtime.docgen import openapi_text, write_or_check

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "rollup.json"


def render() -> str:
    """The committed OpenAPI document's text (routes over a throw-away store, nothing connected)."""
    app = FastAPI(title="okrstream rollup", description=DESCRIPTION, version="1.0.0")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteScoreStore(Path(tmp) / "doc.sqlite")
        install_api(app, store, Authenticator([]))
        text = openapi_text(app)
        store.close()
    return text


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/openapi/{DOC_PATH.name}", program="okr_rollup.openapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
