"""The rollup read API's OpenAPI document, committed at docs/openapi/rollup.json.

Usage: ``python -m okr_rollup.openapi write|check``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from okr_rollup.bootstrap import DESCRIPTION
from okr_rollup.http import install_api
from okr_rollup.store import SqliteScoreStore
from okr_runtime.auth import Authenticator
from okr_runtime.docgen import write_or_check

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "rollup.json"


def document() -> dict[str, Any]:
    """The OpenAPI document of the routes (over a throw-away store, nothing connected)."""
    app = FastAPI(title="okrstream rollup", description=DESCRIPTION, version="1.0.0")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteScoreStore(Path(tmp) / "doc.sqlite")
        install_api(app, store, Authenticator([]))
        spec = app.openapi()
        store.close()
    spec.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    spec["security"] = [{"bearer": []}]
    return spec


def render() -> str:
    """Canonical text of the committed document."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/openapi/{DOC_PATH.name}", program="okr_rollup.openapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
