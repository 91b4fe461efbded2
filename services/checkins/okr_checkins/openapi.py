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
from okr_checkins.http.auth import Authenticator

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
    command = argv[0] if argv else "check"
    text = render()
    if command == "write":
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(text)
        print(f"wrote docs/openapi/{DOC_PATH.name}")
        return 0
    if command == "check":
        if not DOC_PATH.exists() or DOC_PATH.read_text() != text:
            print(f"out of date: docs/openapi/{DOC_PATH.name} (run `make schemas`)")
            return 1
        return 0
    print("usage: python -m okr_checkins.openapi write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
