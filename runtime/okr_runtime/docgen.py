"""The write/check command line shared by the committed generated documents (AsyncAPI, OpenAPI)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_or_check(path: Path, render: Callable[[], str], argv: list[str], *, label: str, program: str) -> int:
    """`write` the document rendered by `render` to `path`, or `check` that the committed one is current."""
    command = argv[0] if argv else "check"
    if command not in {"write", "check"}:
        print(f"usage: python -m {program} write|check", file=sys.stderr)
        return 2
    text = render()
    if command == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {label}")
        return 0
    if not path.exists() or path.read_text() != text:
        print(f"out of date: {label} (run `make schemas`)")
        return 1
    return 0


def openapi_text(app: Any) -> str:
    """Canonical text of a FastAPI app's OpenAPI document, with bearer authentication declared."""
    spec = app.openapi()
    spec.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    spec["security"] = [{"bearer": []}]
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"
