"""The check-in API's OpenAPI document, committed at docs/openapi/checkins.json.

Usage: ``python -m okr_checkins.openapi write|check``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from okr_checkins.application import CheckinsApplication
from okr_checkins.bootstrap import DESCRIPTION
from okr_checkins.http import install_api
from okr_runtime.auth import Authenticator
from okr_runtime.docgen import write_or_check

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi" / "checkins.json"


def document() -> dict[str, Any]:
    """The OpenAPI document of the routes (built over an in-memory store, nothing connected)."""
    app = FastAPI(title="okrstream checkins", description=DESCRIPTION, version="1.0.0")
    install_api(app, CheckinsApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"}), Authenticator([]))
    spec = app.openapi()
    spec.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    spec["security"] = [{"bearer": []}]
    return spec


def render() -> str:
    """Canonical text of the committed document."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Command line: write or check the committed document."""
    return write_or_check(DOC_PATH, render, argv, label=f"docs/openapi/{DOC_PATH.name}", program="okr_checkins.openapi")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
