"""`python -m okr_notifier`: run the notifier until SIGTERM."""

from __future__ import annotations

from okr_notifier.bootstrap import create_app
from okr_notifier.settings import NotifierSettings
from okr_runtime.logs import configure_logging
from okr_runtime.service import serve


def main() -> None:
    """Read settings from the environment, build the service and serve it."""
    settings = NotifierSettings()
    configure_logging(settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
