"""Resumable polling of Jira and Linear, shared by both pollers and the backfill command.

A poll reads the items changed since the stored checkpoint, less an overlap (Jira's
time filter has minute precision; searches are eventually consistent), page by page.
Each page's items and the checkpoint it reached are stored in one transaction, so a poll
that fails half-way resumes where its last stored page left off, and an item read twice
(the overlap, a page read again) is dropped by the inbox on its dedup key. Items become
store items through :mod:`okr_connectors.intake`, as webhooks do, so a change that came
by webhook is not stored again when polled.

HTTP calls are retried: a rate limit waits as long as the vendor asks (``Retry-After``,
Linear's ``x-ratelimit-*-reset``), server and transport errors back off exponentially,
and after the last attempt the poll raises :class:`PollFailed`, its checkpoint unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from okr_connectors import intake
from okr_connectors.mapping import Mapping, MappingSource
from okr_connectors.store import ConnectorStore, Item
from okr_connectors.vendors.errors import PayloadRejected
from okr_contracts.delivery import WorkItemChanged

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]
DEFAULT_LOOKBACK = timedelta(days=30)
DEFAULT_OVERLAP = timedelta(minutes=2)
MAX_FAILURE_WAIT_S = 3600.0


class PollFailed(Exception):
    """A poll stopped before its last page (the vendor kept failing, or refused); its checkpoint is where the last stored page put it."""


class PollerConfigError(ValueError):
    """A poller is not configured well enough to run; the message names the setting."""


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def parse_since(text: str) -> datetime:
    """An ISO 8601 time to poll from; without an offset it is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PollerConfigError(f"{text!r} is not an ISO 8601 time, e.g. 2026-01-31 or 2026-01-31T09:00:00+01:00") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a vendor call."""

    attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_wait_s: float = 900.0
    """The longest rate-limit wait honoured within a poll; a longer one fails the poll, and the poll loop tries again later."""

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based), doubling up to the maximum."""
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))


def retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """Seconds a rate-limited answer asks to wait: `Retry-After` (seconds or HTTP date), else the exhausted `x-ratelimit-*-reset`."""
    value = (headers.get("retry-after") or "").strip()
    if value:
        with contextlib.suppress(ValueError):
            return max(0.0, float(value))
        with contextlib.suppress(TypeError, ValueError, IndexError):
            when = parsedate_to_datetime(value)
            return max(0.0, ((when if when.tzinfo else when.replace(tzinfo=UTC)) - now).total_seconds())
    waits = []
    for budget in ("requests", "complexity"):
        reset, remaining = headers.get(f"x-ratelimit-{budget}-reset"), headers.get(f"x-ratelimit-{budget}-remaining")
        if reset and remaining in (None, "0"):
            with contextlib.suppress(ValueError):
                waits.append(_until(float(reset), now))
    return max(waits) if waits else None


def _until(reset: float, now: datetime) -> float:
    """Seconds until a reset given as epoch milliseconds (Linear), epoch seconds, or seconds from now."""
    if reset > 1e11:
        reset /= 1000
    elif reset < 1e9:
        return max(0.0, reset)
    return max(0.0, reset - now.timestamp())


class Http:
    """A vendor's HTTP client with the retry policy; `sleep` and `clock` are injected so tests do not wait."""

    def __init__(
        self, client: httpx.AsyncClient, policy: RetryPolicy | None = None, *, sleep: Sleep = asyncio.sleep, clock: Clock = utc_now
    ):
        self.client = client
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.clock = clock

    async def request(
        self, method: str, url: str, *, rate_limited: Callable[[httpx.Response], bool] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The first successful answer; `PollFailed` after the last attempt, or at once for a refusal (4xx other than 429)."""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                failure, wait = f"{exc!r}", self.policy.backoff(attempt)
            else:
                retry = self._retry(response, attempt, rate_limited)
                if retry is None:
                    return response
                failure, wait = retry
            if attempt == self.policy.attempts:
                raise PollFailed(f"{method} {url}: {failure} after {attempt} attempts")
            if wait > self.policy.max_wait_s:
                raise PollFailed(f"{method} {url}: {failure}, asked to wait {wait:.0f}s (more than {self.policy.max_wait_s:.0f}s)")
            log.warning("%s %s: %s; attempt %d of %d in %.1fs", method, url, failure, attempt + 1, self.policy.attempts, wait)
            await self.sleep(wait)
        raise PollFailed(f"{method} {url}: the retry policy allows no attempts")

    def _retry(
        self, response: httpx.Response, attempt: int, rate_limited: Callable[[httpx.Response], bool] | None
    ) -> tuple[str, float] | None:
        """Why to try again and after how long; None for a success; `PollFailed` for a refusal."""
        if response.status_code == 429 or (rate_limited is not None and rate_limited(response)):
            failure = f"rate limited ({response.status_code})"
        elif response.status_code >= 500:
            failure = f"server error {response.status_code}"
        elif response.is_error:
            raise PollFailed(f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text[:500]}")
        else:
            return None
        asked = retry_after(response.headers, self.clock())
        return failure, self.policy.backoff(attempt) if asked is None else asked


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """A response body that must be a JSON object."""
    try:
        body = response.json()
    except ValueError as exc:
        raise PollFailed(f"{what} answered with a body that is not JSON: {response.text[:200]!r}") from exc
    if not isinstance(body, dict):
        raise PollFailed(f"{what} answered with JSON that is not an object")
    return body


@dataclass(frozen=True)
class PageStats:
    """One stored page: what it held, and the checkpoint stored with it (None when it did not move)."""

    source: str
    page: int
    items: int
    new: int
    duplicates: int
    unmapped: int
    rejected: int
    checkpoint: str | None


@dataclass
class PollStats:
    """A whole poll: `new` events stored, `duplicates` already in the inbox, `unmapped` items no rule claims, `rejected` unparseable."""

    source: str
    pages: int = 0
    items: int = 0
    new: int = 0
    duplicates: int = 0
    unmapped: int = 0
    rejected: int = 0
    seconds: float = 0.0
    checkpoint: str | None = None

    def add(self, page: PageStats) -> None:
        """Count a stored page in."""
        self.pages += 1
        self.items += page.items
        self.new += page.new
        self.duplicates += page.duplicates
        self.unmapped += page.unmapped
        self.rejected += page.rejected
        self.checkpoint = page.checkpoint or self.checkpoint

    def summary(self) -> str:
        """One line for logs and the backfill command."""
        return (
            f"{self.source}: {self.pages} pages, {self.items} items: {self.new} new, {self.duplicates} duplicates, "
            f"{self.unmapped} unmapped, {self.rejected} rejected in {self.seconds:.1f}s; checkpoint {self.checkpoint or 'none'}"
        )


@dataclass(frozen=True)
class Page:
    """One page of vendor items, and whether it is the last."""

    nodes: list[Any]
    last: bool


@dataclass
class IngestedPage:
    """A page as store items, with the change times of those parsed."""

    items: list[Item] = field(default_factory=list)
    changed: list[datetime] = field(default_factory=list)
    unmapped: int = 0
    rejected: int = 0


class Ingest:
    """Vendor items as store items: mapped → an event on okr.delivery.v1, else an unmapped record (see `intake.item_for`)."""

    def __init__(self, source: str, mappings: MappingSource, parse: Callable[[dict[str, Any]], WorkItemChanged]) -> None:
        self.source = source
        self.mappings = mappings
        self.parse = parse

    def page(self, nodes: Sequence[Any], mapping: Mapping) -> IngestedPage:
        """The page's items under `mapping` (the one in force); an item the parser rejects is logged and counted, the poll goes on."""
        page = IngestedPage()
        for node in nodes:
            try:
                event = self.parse(node)
            except PayloadRejected as exc:
                log.warning("%s poll: skipped an item the parser rejected: %s", self.source, exc)
                page.rejected += 1
                continue
            item = intake.item_for(mapping.apply(event), event)
            page.unmapped += item.unmapped is not None
            page.changed.append(event.changed_at)
            page.items.append(item)
        return page


@dataclass
class Watermark:
    """The checkpoint a poll may store: the newest change seen, once its pages are known to come oldest first, else at the end."""

    stored: datetime | None
    ascending: bool | None = None
    newest: datetime | None = None
    _previous: datetime | None = None

    def see(self, at: datetime) -> None:
        """Note an item's change time, in page order."""
        if self._previous is not None and at < self._previous:
            if self.ascending is not False:
                log.warning("poll pages are not oldest first: the checkpoint moves only when the poll completes")
            self.ascending = False
        elif self._previous is not None and at > self._previous and self.ascending is None:
            self.ascending = True
        self._previous = at
        self.newest = at if self.newest is None else max(self.newest, at)

    def move(self, *, last_page: bool) -> datetime | None:
        """The position to store with this page, or None to leave it; never earlier than the stored one."""
        if self.newest is None or not (last_page or self.ascending):
            return None
        if self.stored is not None and self.newest <= self.stored:
            return None
        self.stored = self.newest
        return self.newest


class Poller(ABC):
    """Polls one vendor into the store; subclasses fetch pages and parse items."""

    source: ClassVar[str]
    oldest_first: ClassVar[bool] = False
    """Whether the vendor's query guarantees pages oldest first; otherwise it is checked as items arrive."""

    def __init__(
        self,
        store: ConnectorStore,
        mappings: MappingSource,
        http: Http,
        parse: Callable[[dict[str, Any]], WorkItemChanged],
        *,
        page_size: int = 50,
        overlap: timedelta = DEFAULT_OVERLAP,
        since: datetime | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if page_size < 1:
            raise PollerConfigError(f"page size must be at least 1, not {page_size}")
        self.store = store
        self.http = http
        self.ingest = Ingest(self.source, mappings, parse)
        self.page_size = page_size
        self.overlap = overlap
        self.since = since
        self.clock = clock

    @abstractmethod
    def pages(self, since: datetime) -> AsyncIterator[Page]:
        """The pages of items changed at or after `since`."""

    async def run_once(self, progress: Callable[[PageStats], None] | None = None, *, since: datetime | None = None) -> PollStats:
        """Poll to the last page, storing each page with its checkpoint; `since` re-reads from that time instead of the checkpoint."""
        started = time.monotonic()
        position = await asyncio.to_thread(self.store.checkpoint, self.source)
        stored = datetime.fromisoformat(position["updated"]) if position and position.get("updated") else None
        mark = Watermark(stored, ascending=True if self.oldest_first else None)
        stats = PollStats(self.source, checkpoint=stored.isoformat() if stored else None)
        async for page in self.pages(self._bound(stored, since)):
            done = await self._store(stats.pages + 1, page, mark)
            stats.add(done)
            if progress is not None:
                progress(done)
        stats.seconds = time.monotonic() - started
        return stats

    def _bound(self, stored: datetime | None, since: datetime | None) -> datetime:
        if since is not None:
            return since
        if stored is not None:
            return stored - self.overlap
        return self.since or self.clock() - DEFAULT_LOOKBACK

    async def _store(self, number: int, page: Page, mark: Watermark) -> PageStats:
        mapping = await asyncio.to_thread(self.ingest.mappings.current)  # read per page: a changed mapping applies to the next one
        ingested = self.ingest.page(page.nodes, mapping)
        for at in ingested.changed:
            mark.see(at)
        moved = mark.move(last_page=page.last)
        checkpoint = (self.source, {"updated": moved.astimezone(UTC).isoformat()}) if moved else None
        accepted = await asyncio.to_thread(self.store.accept, self.source, ingested.items, checkpoint)
        new = accepted - ingested.unmapped  # unmapped items have no dedup key: the store counts each as new
        done = PageStats(
            self.source,
            number,
            items=len(page.nodes),
            new=new,
            duplicates=len(ingested.items) - ingested.unmapped - new,
            unmapped=ingested.unmapped,
            rejected=ingested.rejected,
            checkpoint=checkpoint[1]["updated"] if checkpoint else None,
        )
        log.debug("%s poll page %d: %s", self.source, number, done)
        return done

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """Poll every `interval_s` until `stop` is set; after failures wait longer (doubling, at most an hour) and try again."""
        if interval_s <= 0:
            raise PollerConfigError(f"{self.source} poll interval must be positive, not {interval_s} (0 turns polling off: do not run it)")
        failures = 0
        while not stop.is_set():
            try:
                stats = await self.run_once()
            except PollFailed as exc:
                failures += 1
                log.warning("%s poll failed (%d in a row): %s", self.source, failures, exc)
            except Exception:  # the store is down, or a bug: logged with its traceback; the poller keeps its schedule
                failures += 1
                log.exception("%s poll crashed (%d in a row)", self.source, failures)
            else:
                failures = 0
                log.info("poll done: %s", stats.summary())
            wait = min(interval_s * 2**failures, max(interval_s, MAX_FAILURE_WAIT_S))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
