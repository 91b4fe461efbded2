"""`python -m okr_web`: run the web service until SIGTERM."""

from __future__ import annotations

from okr_runtime.logs import configure_logging
from okr_runtime.service import serve
from okr_web.bootstrap import create_app
from okr_web.settings import WebSettings


def main() -> None:
    """Read settings from the environment, build the service and serve it."""
    settings = WebSettings()
    configure_logging(settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
