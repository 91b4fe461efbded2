"""The drift API's OpenAPI document, committed at docs/openapi/drift.json.

Usage: ``python -m okr_drift.openapi write|check``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI

from okr_drift.application import DriftService
from okr_drift.bootstrap import DESCRIPTION, system_clock
from okr_drift.http import install_api
from okr_drift.store import SqliteDriftStore
from okr_runtime.auth import Authenticator
from okr_runtime.docgen import openapi_text, write_or_check

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "drift.json"


def render() -> str:
    """The committed OpenAPI document's text (routes over a throw-away store, nothing connected)."""
    app = FastAPI(title="okrstream drift", description=DESCRIPTION, version="1.0.0")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteDriftStore(Path(tmp) / "doc.sqlite")

        async def nowhere(_: object) -> None:
            raise RuntimeError("the document renderer publishes nothing")

        install_api(app, DriftService(store, nowhere, system_clock), Authenticator([]))
        text = openapi_text(app)
        store.close()
    return text


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/openapi/{DOC_PATH.name}", program="okr_drift.openapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
