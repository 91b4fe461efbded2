"""The Portfolio aggregate: commands check the rules and record contract events into one hash-chained stream.

Each stored event carries one *record*: the contract payload (what is published
on ``okr.kr-events.v1``) with its event id, times, producer, position in the
portfolio's stream and the chain hashes. A command either records all its
events or raises a `DomainError` and records nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate
from pydantic import ValidationError

from okr_checkins.domain.access import Actor, TokenRole
from okr_checkins.domain.errors import InvalidCommand, NotPermitted, VersionConflict
from okr_checkins.domain.state import Entity, PortfolioState, RecordedEvent, evolve, new_state, remember_request
from okr_contracts.export import GENESIS, payload_of, record_hash
from okr_contracts.kr_events import KrEvent, PortfolioDefined

NAMESPACE = uuid.UUID("5b0c1f2e-8c1d-4c8e-9a49-6f1f4f0d7a11")


def portfolio_uuid(portfolio_id: str) -> uuid.UUID:
    """The aggregate id of a portfolio: a name-based UUID of its id, so lookups need no index."""
    return uuid.uuid5(NAMESPACE, portfolio_id)


@dataclass(frozen=True)
class RequestRef:
    """An idempotent request: the key the client sent (scoped to its principal) and a fingerprint of the request."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class Request:
    """Who sends a command and how: the actor, an optional idempotency key and expected version, and provenance."""

    actor: Actor
    idempotency: RequestRef | None = None
    expected_version: int | None = None
    occurred_at: datetime | None = None
    causation_id: str | None = None
    producer: str = "checkins"
    trace: dict[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class Context(Request):
    """A request at the moment it runs."""

    now: datetime


class Portfolio(Aggregate):
    """One portfolio's whole history: settings, products, teams, cycles, objectives and key results."""

    class Started(Aggregate.Created):
        record: dict[str, Any]
        meta: dict[str, Any] | None

    class Recorded(Aggregate.Event):
        record: dict[str, Any]
        meta: dict[str, Any] | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Portfolio)
            aggregate.fold(self.record, self.meta)

    def __init__(self, record: dict[str, Any], meta: dict[str, Any] | None) -> None:
        first = payload_of(record)
        assert isinstance(first, PortfolioDefined)
        self.state: PortfolioState = new_state(first)
        self.chain_head = GENESIS
        self.last_recorded_at = ""
        self.fold(record, meta)

    @classmethod
    def define(cls, ctx: Context, settings: dict[str, Any]) -> Portfolio:
        """Create a portfolio; only a token with the portfolio-lead role may."""
        if ctx.actor.read_only or TokenRole.PORTFOLIO_LEAD not in ctx.actor.roles:
            raise NotPermitted("only a principal whose token grants portfolio_lead may create a portfolio", action="create a portfolio")
        pid = settings["portfolio_id"]
        payload = _payload(PortfolioDefined, {**settings, "aggregate_id": pid, "aggregate_version": 1, "actor": ctx.actor.principal})
        record = _record(ctx, payload, position=1, prev_hash=GENESIS, last_recorded_at="")
        return cls._create(cls.Started, id=portfolio_uuid(pid), record=record, meta=_meta(ctx))

    def fold(self, record: dict[str, Any], meta: dict[str, Any] | None) -> None:
        """Apply one stored record (used when recording and when replaying)."""
        evolve(self.state, payload_of(record), record["position"], record["recorded_at"])
        self.chain_head, self.last_recorded_at = record["hash"], record["recorded_at"]
        if meta and meta.get("causation_id") and record["type"] == "ValueObserved":
            self.state.key_results[record["data"]["kr_id"]].sample_ids.add(meta["causation_id"])
        if meta and meta.get("request_key"):
            recorded_at = datetime.fromisoformat(record["recorded_at"])
            remember_request(self.state, meta["request_key"], meta["request_fingerprint"], recorded_at, RecordedEvent.of(record))

    def emit(self, ctx: Context, event_class: type[KrEvent], entity: Entity | None, **fields: Any) -> KrEvent:
        """Record one contract event about `entity` (None when the event defines it)."""
        version = entity.version + 1 if entity is not None else 1
        fields.update(portfolio_id=self.state.portfolio_id, aggregate_version=version, actor=ctx.actor.principal)
        payload = _payload(event_class, fields)
        record = _record(ctx, payload, position=self.version + 1, prev_hash=self.chain_head, last_recorded_at=self.last_recorded_at)
        self.trigger_event(self.Recorded, record=record, meta=_meta(ctx))
        return payload

    def expect(self, ctx: Context, entity: Entity) -> None:
        """Refuse a command whose client expected another version of `entity` (If-Match)."""
        if ctx.expected_version is not None and ctx.expected_version != entity.version:
            raise VersionConflict(
                f"{entity.id} is at version {entity.version}, not {ctx.expected_version}; reload it and try again",
                current_version=entity.version,
            )


def _payload(event_class: type[KrEvent], fields: dict[str, Any]) -> KrEvent:
    try:
        return event_class.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidCommand(f"the {event_class.event_type()} it would record is invalid: {problems}") from exc


def _record(ctx: Context, payload: KrEvent, *, position: int, prev_hash: str, last_recorded_at: str) -> dict[str, Any]:
    recorded = max(_iso(ctx.now), last_recorded_at)  # the stream's clock never runs back
    record: dict[str, Any] = {
        "position": position,
        "event_id": str(uuid.uuid4()),
        "type": payload.event_type(),
        "schema_version": payload.schema_version,
        "occurred_at": _iso(ctx.occurred_at or ctx.now),
        "recorded_at": recorded,
        "producer": ctx.producer,
        "data": payload.model_dump(mode="json"),
        "prev_hash": prev_hash,
    }
    record["hash"] = record_hash(record)
    return record


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _meta(ctx: Context) -> dict[str, Any] | None:
    meta: dict[str, Any] = {}
    if ctx.idempotency is not None:
        meta.update(request_key=ctx.idempotency.key, request_fingerprint=ctx.idempotency.fingerprint)
    if ctx.causation_id is not None:
        meta["causation_id"] = ctx.causation_id
    if ctx.trace:
        meta["trace"] = ctx.trace
    return meta or None
