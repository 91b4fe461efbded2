"""`/v1/connectors/mappings/{portfolio_id}`: a portfolio's own connector mapping, read by its readers and replaced by its lead.

A PUT replaces the portfolio's mapping as a whole and is idempotent: the same content
again changes nothing (``changed: false``, same version). It is refused with 403 unless
the token has the portfolio_lead role and reaches the portfolio, 422 when a rule or
channel names another portfolio, and 409 when a Slack channel is already another
portfolio's. The mapping in force (`LiveMapping`) picks a change up with the next item;
what was accepted before keeps the mapping it was accepted under.
"""

# Without `from __future__ import annotations`: FastAPI must resolve the router-local `Who` alias when routes are defined.

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from okr_connectors.mapping import Mapping, MappingRule, SlackChannel
from okr_connectors.portfolio_mappings import ChannelClaimed, MappingTables, StoredMapping
from okr_contracts.types import Id
from okr_runtime.auth import Authenticator, Caller, TokenRole
from okr_runtime.problems import Problem

PortfolioId = Annotated[Id, Path(description="The portfolio whose mapping it is.")]


class PortfolioMapping(BaseModel):
    """A portfolio's stored connector mapping."""

    portfolio_id: str = Field(description="The portfolio; every rule and channel names it.")
    rules: tuple[MappingRule, ...] = Field(description="Rules in precedence order, after the operators' file's rules.")
    slack_channels: dict[str, SlackChannel] = Field(description="Slack channel id to its key results.")
    version: int = Field(description="0 while nothing is stored; one more with every change. Also the ETag.")
    updated_at: str | None = Field(description="When it last changed (UTC).")
    updated_by: str | None = Field(description="Who changed it last.")
    overridden_channels: list[str] = Field(description="Channels the operators' mapping file claims too: the file's entry is in force.")


class ReplacedMapping(PortfolioMapping):
    """The answer to a PUT: the stored mapping, and whether this request changed it."""

    changed: bool = Field(description="False when the mapping was already so: nothing was stored.")


def mapping_router(store: MappingTables, auth: Authenticator, file_mapping: Mapping) -> APIRouter:
    """The mapping routes over `store`; `file_mapping` (the operators' file) is named where it overrides a stored channel."""
    router = APIRouter(prefix="/v1/connectors/mappings", tags=["mappings"])
    Who = Annotated[Caller, Depends(auth)]  # noqa: N806 (a type alias over this router's authenticator)

    def lead(request: Request, caller: Who) -> Caller:  # the id is the route's parameter (declared and validated there)
        if TokenRole.PORTFOLIO_LEAD not in caller.roles:
            raise Problem(403, "Forbidden", "only a token with the portfolio_lead role may change a portfolio's connector mapping")
        caller.check_scope(request.path_params["portfolio_id"])
        return caller

    @router.get("/{portfolio_id}", summary="A portfolio's stored connector mapping, with its version (ETag)")
    async def read(portfolio_id: PortfolioId, caller: Who, response: Response) -> PortfolioMapping:
        caller.check_scope(portfolio_id)
        stored = await run_in_threadpool(store.portfolio_mapping, portfolio_id)
        response.headers["ETag"] = f'"{stored.version}"'
        return _view(stored, file_mapping)

    @router.put("/{portfolio_id}", summary="Replace a portfolio's connector mapping (portfolio lead); the same content changes nothing")
    async def replace(
        portfolio_id: PortfolioId, body: Mapping, caller: Annotated[Caller, Depends(lead)], response: Response
    ) -> ReplacedMapping:
        foreign = body.foreign_to(portfolio_id)
        if foreign:
            detail = f"every rule and channel must name portfolio {portfolio_id}; these name another: {', '.join(foreign)}"
            raise Problem(422, "Another portfolio's entry", detail, type_="urn:okrstream:problem:foreign-portfolio", entries=foreign)
        try:
            stored, changed = await run_in_threadpool(store.put_portfolio_mapping, portfolio_id, body, caller.principal)
        except ChannelClaimed as exc:
            type_ = "urn:okrstream:problem:channel-claimed"
            raise Problem(409, "Channel claimed", str(exc), type_=type_, channel=exc.channel, portfolio_id=exc.owner) from exc
        response.headers["ETag"] = f'"{stored.version}"'
        return ReplacedMapping(**dict(_view(stored, file_mapping)), changed=changed)

    return router


def _view(stored: StoredMapping, file_mapping: Mapping) -> PortfolioMapping:
    channels = stored.mapping.slack_channels
    return PortfolioMapping(
        portfolio_id=stored.portfolio_id,
        rules=stored.mapping.rules,
        slack_channels=channels,
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
        overridden_channels=sorted(channel for channel in channels if channel in file_mapping.slack_channels),
    )
