"""`python -m okr_checkins`: run the check-in service until SIGTERM."""

from __future__ import annotations

from okr_checkins.bootstrap import create_app
from okr_checkins.settings import CheckinsSettings
from okr_runtime.logs import configure_logging
from okr_runtime.service import serve


def main() -> None:
    """Read settings from the environment, build the service and serve it."""
    settings = CheckinsSettings()
    configure_logging(settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
