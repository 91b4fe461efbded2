"""Where the ``okr`` commands write: results to stdout, errors to stderr, and how a command gives up."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)  # messages stay on one line (grep-able); tables still fit the terminal
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with a message; exit status 2 (the command could not do its work) unless told otherwise."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(status)
