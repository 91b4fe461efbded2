"""`python -m okr_connectors`: run the connectors service until SIGTERM."""

from __future__ import annotations

from okr_connectors.bootstrap import create_app
from okr_connectors.settings import ConnectorsSettings
from okr_runtime.logs import configure_logging
from okr_runtime.service import serve


def main() -> None:
    """Read settings from the environment, build the service and serve it."""
    settings = ConnectorsSettings()
    configure_logging(settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
