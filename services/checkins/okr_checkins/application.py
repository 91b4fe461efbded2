"""The check-in application: runs commands against the event store with idempotency and optimistic concurrency.

A command loads the portfolio (from the aggregate cache, fast-forwarded with
any events other processes stored), runs, and saves all its events in one
transaction. Another writer having appended in between makes the insert fail
on the stream's unique (id, version); the command is then run again against
the new state, so no event is ever lost, and a client that named the version
it expected (If-Match) gets a `VersionConflict` instead.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from okr_checkins.domain.bindings import MetricBinding, binding_uuid
from okr_checkins.domain.commands import known
from okr_checkins.domain.errors import AlreadyDefined, DomainError, IdempotencyKeyReused, UnknownId
from okr_checkins.domain.portfolio import Context, Portfolio, Request, portfolio_uuid
from okr_checkins.domain.state import KeyResult, PortfolioState, RecordedEvent

log = logging.getLogger(__name__)

Command = Callable[[Portfolio, Context], None]
Clock = Callable[[], datetime]


class Contention(DomainError):
    """Writers kept appending to the portfolio faster than this command could; the client may retry."""

    code = "contention"


@dataclass(frozen=True)
class CommandResult:
    """What a command appended (or, for a retried request, what its first run appended)."""

    portfolio_id: str
    events: tuple[RecordedEvent, ...]
    replayed: bool = False


class CheckinsApplication(Application[Any]):
    """The event store of every portfolio's history, and the commands that append to it."""

    name = "checkins"
    env = {"AGGREGATE_CACHE_MAXSIZE": "500", "AGGREGATE_CACHE_FASTFORWARD": "y"}  # noqa: RUF012 (the library reads it from the class)
    MAX_ATTEMPTS = 20

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.saved = threading.Event()

    def define_portfolio(self, request: Request, settings: dict[str, Any]) -> CommandResult:
        """Create a portfolio (its id must be new)."""
        pid = settings["portfolio_id"]
        with self._lock(pid):
            existing = self._existing(pid)
            if existing is not None:
                replay = self._replay(existing.state, request)
                if replay is not None:
                    return replay
                raise _already(pid)
            portfolio = Portfolio.define(self._context(request), settings)
            try:
                return self._save(portfolio)
            except IntegrityError as exc:
                raise _already(pid) from exc

    def execute(self, portfolio_id: str, request: Request, command: Command) -> CommandResult:
        """Run `command` on a portfolio and store what it records, retrying on concurrent appends."""

        def run(portfolio: Portfolio) -> CommandResult | None:
            replay = self._replay(portfolio.state, request)
            if replay is None:
                command(portfolio, self._context(request))
            return replay

        return self._retrying(portfolio_id, run)

    def execute_many(self, portfolio_id: str, steps: Sequence[tuple[Request, Command]]) -> CommandResult:
        """Run several commands, each with its own request, on one load of the portfolio, and store all they record at once.

        For a consumer applying a batch: one aggregate copy and one transaction instead of one
        per command. The requests carry no idempotency key (a consumer's duplicates are the
        commands' own business). Retried on concurrent appends as :meth:`execute` is.
        """
        if any(request.idempotency is not None for request, _ in steps):
            raise ValueError("execute_many takes requests without idempotency keys")

        def run(portfolio: Portfolio) -> None:
            for request, command in steps:
                command(portfolio, self._context(request))

        return self._retrying(portfolio_id, run)

    def _retrying(self, portfolio_id: str, run: Callable[[Portfolio], CommandResult | None]) -> CommandResult:
        """Load the portfolio, `run` on it (a result it returns is the answer, nothing stored), save; again on a concurrent append."""
        with self._lock(portfolio_id):
            for _ in range(self.MAX_ATTEMPTS):
                portfolio = self.portfolio(portfolio_id)
                answered = run(portfolio)
                if answered is not None:
                    return answered
                try:
                    return self._save(portfolio)
                except IntegrityError:
                    log.info("portfolio %s changed while a command ran; running it again", portfolio_id)
        raise Contention(f"portfolio {portfolio_id} kept changing during {self.MAX_ATTEMPTS} attempts; retry the request")

    def portfolio(self, portfolio_id: str) -> Portfolio:
        """The portfolio's current aggregate (a private copy)."""
        found = self._existing(portfolio_id)
        if found is None:
            raise UnknownId(f"no portfolio {portfolio_id!r}", id=portfolio_id, kind="portfolio")
        return found

    def portfolio_at(self, portfolio_id: str, position: int) -> Portfolio:
        """The portfolio as it was right after the event at `position`."""
        found: Portfolio = self.repository.get(portfolio_uuid(portfolio_id), version=position)
        return found

    def records(self, portfolio_id: str, *, after: int = 0, upto: int | None = None, batch: int = 500) -> Iterator[dict[str, Any]]:
        """The portfolio's stored records in order, from position `after` + 1."""
        aggregate_id = portfolio_uuid(portfolio_id)
        while True:
            stored = self.recorder.select_events(aggregate_id, gt=after, lte=upto, limit=batch)
            for item in stored:
                yield self.mapper.to_domain_event(item).record  # type: ignore[attr-defined]
            if len(stored) < batch:
                return
            after = stored[-1].originator_version

    def key_result_history(self, portfolio_id: str, kr_id: str, *, after: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a key result's records after position `after`, and the cursor of the next page."""
        kr = known(self.portfolio(portfolio_id).state.key_results, kr_id, "key result")
        start = bisect.bisect_right(kr.positions, after)
        page = kr.positions[start : start + limit]
        if not page:
            return [], None
        wanted = set(page)
        found = [r for r in self.records(portfolio_id, after=page[0] - 1, upto=page[-1]) if r["position"] in wanted]
        return found, page[-1] if start + limit < len(kr.positions) else None

    def key_result_as_of(self, portfolio_id: str, kr_id: str, moment: datetime) -> tuple[KeyResult, int]:
        """A key result as the history recorded it at `moment`, and the position that state follows from."""
        kr = known(self.portfolio(portfolio_id).state.key_results, kr_id, "key result")
        index = bisect.bisect_right(kr.recorded, moment.astimezone(UTC).isoformat(timespec="microseconds"))
        if index == 0:
            raise UnknownId(f"key result {kr_id} was not defined yet at {moment.isoformat()}", id=kr_id, kind="key result")
        position = kr.positions[index - 1]
        return self.portfolio_at(portfolio_id, position).state.key_results[kr_id], position

    def bound_key_results(self, metric: str) -> list[tuple[str, str]]:
        """(portfolio, key result) pairs bound to a metric, or UnknownId when nothing ever bound it."""
        try:
            binding: MetricBinding = self.repository.get(binding_uuid(metric))
        except AggregateNotFoundError as exc:
            raise UnknownId(f"no key result is bound to metric {metric!r}", id=metric, kind="metric") from exc
        return list(binding.key_results)

    def _save(self, portfolio: Portfolio) -> CommandResult:
        pending = list(portfolio.pending_events)
        bindings = self._bindings_for(portfolio.state, pending)
        self.save(portfolio, *bindings)
        self.saved.set()
        events = tuple(RecordedEvent.of(event.record) for event in pending)  # type: ignore[attr-defined]
        return CommandResult(portfolio.state.portfolio_id, events)

    def _bindings_for(self, state: PortfolioState, pending: list[Any]) -> list[MetricBinding]:
        found: dict[str, MetricBinding] = {}
        for event in pending:
            data = event.record["data"]
            metric = data.get("kpi_binding") if event.record["type"] == "KeyResultDefined" else None
            if metric:
                binding = found.get(metric) or self._binding(metric)
                binding.bind(state.portfolio_id, data["kr_id"])
                found[metric] = binding
        return list(found.values())

    def _binding(self, metric: str) -> MetricBinding:
        try:
            binding: MetricBinding = self.repository.get(binding_uuid(metric))
        except AggregateNotFoundError:
            return MetricBinding.open(metric)
        return binding

    def _existing(self, portfolio_id: str) -> Portfolio | None:
        try:
            found: Portfolio = self.repository.get(portfolio_uuid(portfolio_id))
        except AggregateNotFoundError:
            return None
        return found

    def _replay(self, state: PortfolioState, request: Request) -> CommandResult | None:
        if request.idempotency is None:
            return None
        memo = state.requests.get(request.idempotency.key)
        if memo is None:
            return None
        if memo.fingerprint != request.idempotency.fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was already used for a different request; send a new key")
        return CommandResult(state.portfolio_id, tuple(memo.events), replayed=True)

    def _context(self, request: Request) -> Context:
        return Context(now=self.clock(), **{f.name: getattr(request, f.name) for f in dataclasses.fields(request)})

    def _lock(self, portfolio_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(portfolio_id, threading.Lock())


def _already(portfolio_id: str) -> DomainError:
    return AlreadyDefined(f"portfolio {portfolio_id!r} already exists", id=portfolio_id)
