"""The connectors' OpenAPI document (webhook receivers and status API), committed at docs/openapi/connectors.json.

Usage: ``python -m okr_connectors.openapi write|check``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI

from okr_connectors.bootstrap import DESCRIPTION
from okr_connectors.http import install_api
from okr_connectors.mapping import Mapping
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import SqliteConnectorStore
from okr_connectors.webhooks import Webhooks
from okr_runtime.auth import Authenticator
from okr_runtime.docgen import openapi_text, write_or_check

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "connectors.json"


def render() -> str:
    """The committed OpenAPI document's text (routes over a throw-away store, nothing connected)."""
    app = FastAPI(title="okrstream connectors", description=DESCRIPTION, version="1.0.0")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteConnectorStore(Path(tmp) / "doc.sqlite")
        install_api(app, Webhooks(ConnectorsSettings(), store, Mapping(), notify=lambda: None), store, Authenticator([]))
        text = openapi_text(app)
        store.close()
    return text


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/openapi/{DOC_PATH.name}", program="okr_connectors.openapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
