"""The HTTP entrypoints: bearer authentication, routes, and problem+json for domain errors."""

from __future__ import annotations

from fastapi import FastAPI

from okr_checkins.application import CheckinsApplication
from okr_checkins.http.errors import install_domain_errors
from okr_checkins.http.reads import read_router
from okr_checkins.http.writes import write_router
from okr_runtime.auth import Authenticator


def install_api(app: FastAPI, checkins: CheckinsApplication, auth: Authenticator) -> None:
    """Add the check-in API's routes and its domain-error answers to `app`."""
    install_domain_errors(app)
    app.include_router(write_router(checkins, auth))
    app.include_router(read_router(checkins, auth))
