"""The ``okr`` command and its groups."""

from __future__ import annotations

import typer

from okr_cli.alerts import alerts_command
from okr_cli.apply import apply_command
from okr_cli.audit import audit
from okr_cli.capacity import capacity_command
from okr_cli.checkin import checkin_command
from okr_cli.scorecard import scorecard_command

app = typer.Typer(name="okr", help="okrstream from the terminal.", no_args_is_help=True, add_completion=False)
app.command("apply")(apply_command)
app.command("scorecard")(scorecard_command)
app.command("capacity")(capacity_command)
app.command("alerts")(alerts_command)
app.command("checkin")(checkin_command)
app.add_typer(audit, name="audit")
