"""The check-in API's OpenAPI document, committed at docs/openapi/checkins.json.

Usage: ``python -m okr_checkins.openapi write|check``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI

from okr_checkins.application import CheckinsApplication
from okr_checkins.bootstrap import DESCRIPTION
from okr_checkins.http import install_api
from okr_runtime.auth import Authenticator
from okr_runtime.docgen import openapi_text, write_or_check

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "checkins.json"


def render() -> str:
    """The committed OpenAPI document's text (routes over an in-memory store, nothing connected)."""
    app = FastAPI(title="okrstream checkins", description=DESCRIPTION, version="1.0.0")
    install_api(app, CheckinsApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"}), Authenticator([]))
    return openapi_text(app)


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/openapi/{DOC_PATH.name}", program="okr_checkins.openapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
