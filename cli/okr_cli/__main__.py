"""``python -m okr_cli`` runs the ``okr`` command."""

from okr_cli.main import app

app(prog_name="okr")
