"""KPI pulls: numbers from HTTP JSON endpoints and PostgreSQL queries, sampled for ``okr.metrics.v1``.

Sources come from a JSON or YAML file (:meth:`KpiConfig.load`) that holds no secrets: header values
name environment variables as ``${NAME}``, and a SQL source names the variable holding its DSN. A
sample observed outside its source's cycle window is skipped and counted. :class:`KpiScheduler`
pulls each source when it is due and backs a failing one off without holding up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import httpx
import psycopg
import yaml
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as parse_jsonpath
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator, model_validator

from okr_contracts.metrics import KpiSampled
from okr_contracts.types import Id

log = logging.getLogger(__name__)

SourceName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

CONNECT_TIMEOUT_S = 10
"""Seconds a SQL source may take to connect."""

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)
_RETRYABLE_4XX = frozenset({408, 429})

T = TypeVar("T")


class KpiConfigInvalid(ValueError):
    """The KPI file cannot be used; the message says where and why."""


class KpiPullFailed(Exception):
    """A source could not be sampled; ``retryable`` when trying again soon may help (5xx, transport, timeouts)."""

    def __init__(self, source: str, reason: str, *, retryable: bool = False) -> None:
        super().__init__(f"KPI source {source}: {reason}")
        self.source = source
        self.reason = reason
        self.retryable = retryable


class Window(BaseModel):
    """The cycle window, whole days in UTC: from ``starts_on`` 00:00 up to, not including, the day after ``ends_on``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    starts_on: date = Field(description="First day of the cycle.")
    ends_on: date = Field(description="Last day of the cycle (included).")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.ends_on < self.starts_on:
            raise ValueError(f"ends_on {self.ends_on} is before starts_on {self.starts_on}")
        return self

    @property
    def start(self) -> datetime:
        """The first instant of the window."""
        return datetime.combine(self.starts_on, time(), UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the window."""
        return datetime.combine(self.ends_on + timedelta(days=1), time(), UTC)

    def contains(self, at: datetime) -> bool:
        """Whether a sample observed at ``at`` belongs to the cycle."""
        return self.start <= at < self.end


class _Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: SourceName = Field(description="Source name; samples carry `http:<name>` or `sql:<name>`.")
    metric: Id = Field(description="Metric key the samples are for.")
    portfolio_id: Id | None = Field(default=None, description="Portfolio the metric belongs to, when known; the Kafka key.")
    unit: str = Field(default="", max_length=40, description="Unit of the values.")
    interval_s: float = Field(default=300, gt=0, allow_inf_nan=False, description="Seconds between pulls.")
    window: Window = Field(description="The cycle window; samples observed outside it are skipped.")


class HttpKpiSource(_Source):
    """A number selected by JSONPath from the JSON an HTTP GET returns."""

    kind: Literal["http"]
    url: str = Field(description="http(s) URL to GET; published in `source_ref`, so no secrets in it.")
    selector: str = Field(description="JSONPath (jsonpath-ng ext) selecting exactly one number, or a string holding one.")
    observed_at_selector: str | None = Field(default=None, description="JSONPath of an ISO 8601 timestamp; default: the pull moment.")
    headers: dict[str, str] = Field(default_factory=dict, repr=False, description="Request headers; `${NAME}` is read from the env.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parsed.userinfo:
            raise ValueError("must not carry credentials (it is published with every sample); send them in headers with ${NAME}")
        return url

    @field_validator("selector", "observed_at_selector")
    @classmethod
    def _jsonpath(cls, selector: str | None) -> str | None:
        if selector is not None:
            _compiled(selector)
        return selector

    @field_validator("headers")
    @classmethod
    def _resolve_headers(cls, headers: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        env: Mapping[str, str] = (info.context or {}).get("env", {})
        return {name: _resolve_header(name, value, env) for name, value in headers.items()}


class SqlKpiSource(_Source):
    """Rows of ``(value)`` or ``(value, observed_at)`` from a read-only query against PostgreSQL."""

    kind: Literal["sql"]
    dsn_env: EnvName = Field(description="Environment variable holding the DSN; DSNs never go in the file.")
    query: str = Field(min_length=1, description="One SELECT returning `(value)` or `(value, observed_at)` rows.")
    statement_timeout_s: float = Field(default=10, gt=0, le=3600, allow_inf_nan=False, description="Statement timeout of the query.")

    @model_validator(mode="before")
    @classmethod
    def _no_dsn(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "dsn" in data:
            raise ValueError("a DSN does not belong in the file: put it in an environment variable and name that in dsn_env")
        return data

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("must not be blank")
        return query


KpiSource = Annotated[HttpKpiSource | SqlKpiSource, Field(discriminator="kind")]


class KpiConfig(BaseModel):
    """The KPI sources to pull."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: list[KpiSource] = Field(min_length=1, description="The sources, each with a unique name.")

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[HttpKpiSource | SqlKpiSource]) -> list[HttpKpiSource | SqlKpiSource]:
        names = [source.name for source in sources]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"source names must be unique; repeated: {', '.join(repeated)}")
        return sources

    @classmethod
    def load(cls, path: Path | str, env: Mapping[str, str] | None = None) -> KpiConfig:
        """Read a ``.json``, ``.yaml`` or ``.yml`` file; ``${NAME}`` in header values is looked up in ``env``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KpiConfigInvalid(f"cannot read KPI config {path}: {exc.strerror or exc}") from None
        return cls.from_data(_parse_file(path, text), env=env, origin=f"KPI config {path}")

    @classmethod
    def from_data(cls, data: object, *, env: Mapping[str, str] | None = None, origin: str = "KPI config") -> KpiConfig:
        """Validate parsed data; the error lists every problem by location, never the values (they may be secrets)."""
        if not isinstance(data, Mapping):
            raise KpiConfigInvalid(f"{origin} must hold a mapping with a `sources` list, not {type(data).__name__}")
        try:
            return cls.model_validate(data, context={"env": env or {}})
        except ValidationError as exc:
            problems = "\n".join(f"  {_where(error['loc'], data)}: {_message(error['msg'])}" for error in exc.errors())
            raise KpiConfigInvalid(f"{origin} is invalid:\n{problems}") from None


@dataclass(frozen=True)
class PullResult:
    """The samples of one pull, and how many readings fell outside the cycle window."""

    samples: list[KpiSampled]
    skipped_outside_window: int


async def pull_http(client: httpx.AsyncClient, source: HttpKpiSource, *, now: datetime) -> PullResult:
    """GET the source's URL and sample the number its selector picks, observed now or at its timestamp selector."""
    body = await _fetch_json(client, source)
    value = _pick(source, body, source.selector, _as_number)
    observed_at = now if source.observed_at_selector is None else _pick(source, body, source.observed_at_selector, _as_timestamp)
    return _collect(source, [(value, observed_at)], source_ref=f"{source.url} {source.selector}")


async def pull_sql(source: SqlKpiSource, dsn: str, *, now: datetime) -> PullResult:
    """Run the source's query in a read-only transaction and sample each row."""
    rows = await _query(source, dsn)
    return _collect(source, _readings(source, rows, now), source_ref=source.name)


Clock = Callable[[], datetime]
Sink = Callable[[list[KpiSampled]], Awaitable[None]]


@dataclass
class _Schedule:
    next_due: datetime | None = None
    failures: int = 0


class KpiScheduler:
    """Pulls every source when it is due; a failing source backs off without holding up the others.

    A retryable failure is tried again after ``backoff_base_s``, doubling with each failure in a row,
    never later than the source's interval; any other failure waits the interval. A failing sink is
    not a source's failure: it propagates, and the sources of that round are pulled again next time.
    """

    def __init__(
        self,
        config: KpiConfig,
        client: httpx.AsyncClient,
        env: Mapping[str, str],
        clock: Clock,
        sink: Sink,
        *,
        backoff_base_s: float = 5.0,
    ) -> None:
        self.config = config
        self.client = client
        self.env = env
        self.clock = clock
        self.sink = sink
        self.backoff_base_s = backoff_base_s
        self._schedules = {source.name: _Schedule() for source in config.sources}

    async def run(self, stop: asyncio.Event) -> None:
        """Pull due sources until ``stop`` is set, sleeping until the next one is due."""
        while not stop.is_set():
            await self.run_once(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._seconds_to_next(self.clock()))

    async def run_once(self, now: datetime) -> dict[str, str]:
        """Pull the sources due at ``now`` concurrently and sink their samples; returns each source's status."""
        due = [source for source in self.config.sources if self._is_due(source.name, now)]
        outcomes = await asyncio.gather(*(self._attempt(source, now) for source in due))
        status = {name: f"not due until {s.next_due.isoformat()}" for name, s in self._schedules.items() if s.next_due}
        for source, outcome in zip(due, outcomes, strict=True):
            status[source.name] = await self._settle(source, outcome, now)
        return {source.name: status[source.name] for source in self.config.sources}

    def _is_due(self, name: str, now: datetime) -> bool:
        next_due = self._schedules[name].next_due
        return next_due is None or now >= next_due

    def _seconds_to_next(self, now: datetime) -> float:
        return max(0.0, min((s.next_due - now).total_seconds() if s.next_due else 0.0 for s in self._schedules.values()))

    async def _attempt(self, source: HttpKpiSource | SqlKpiSource, now: datetime) -> PullResult | KpiPullFailed:
        try:
            if isinstance(source, HttpKpiSource):
                return await pull_http(self.client, source, now=now)
            if not (dsn := self.env.get(source.dsn_env)):
                raise KpiPullFailed(source.name, f"environment variable {source.dsn_env} (its dsn_env) is not set")
            return await pull_sql(source, dsn, now=now)
        except KpiPullFailed as exc:
            return exc

    async def _settle(self, source: HttpKpiSource | SqlKpiSource, outcome: PullResult | KpiPullFailed, now: datetime) -> str:
        schedule = self._schedules[source.name]
        if isinstance(outcome, KpiPullFailed):
            schedule.failures += 1
            delay = source.interval_s
            if outcome.retryable:
                # The exponent is capped so that days of failures cannot overflow the float.
                delay = min(delay, self.backoff_base_s * 2 ** min(schedule.failures - 1, 32))
            schedule.next_due = now + timedelta(seconds=delay)
            log.warning("KPI source %s failed (%s); next try in %gs", source.name, outcome.reason, delay)
            return f"failed: {outcome.reason}; next try in {delay:g}s"
        if outcome.samples:
            await self.sink(outcome.samples)
        schedule.failures = 0
        schedule.next_due = now + timedelta(seconds=source.interval_s)
        log.info("KPI source %s: %d sampled, %d outside the window", source.name, len(outcome.samples), outcome.skipped_outside_window)
        return f"ok: {len(outcome.samples)} sampled, {outcome.skipped_outside_window} outside the window"


@functools.lru_cache(maxsize=256)
def _compiled(selector: str) -> JSONPath:
    try:
        return parse_jsonpath(selector)
    except (JSONPathError, ValueError, TypeError) as exc:
        raise ValueError(f"{selector!r} is not a valid JSONPath: {exc}") from None


def _resolve_header(name: str, value: str, env: Mapping[str, str]) -> str:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid header name")

    def lookup(match: re.Match[str]) -> str:
        if (found := env.get(match[1])) is None:
            raise ValueError(f"header {name} refers to ${{{match[1]}}}, which is not set in the environment")
        return found

    resolved = _ENV_REF.sub(lookup, value)
    if "\r" in resolved or "\n" in resolved:
        raise ValueError(f"header {name} must be a single line")
    return resolved


def _parse_file(path: Path, text: str) -> object:
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        if suffix == ".json":
            return json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise KpiConfigInvalid(f"KPI config {path} is not valid {suffix[1:].upper()}: {exc}") from None
    raise KpiConfigInvalid(f"KPI config {path} must be .json, .yaml or .yml, not {suffix or 'without a suffix'}")


def _where(loc: tuple[int | str, ...], data: Mapping[Any, Any]) -> str:
    """``sources[0] (billing).selector`` for pydantic's ``('sources', 0, 'http', 'selector')``."""
    where = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            where += f"[{part}]"
            if loc[:1] == ("sources",) and i == 1:
                where += _named(data, part)
        elif not (i == 2 and loc[0] == "sources" and part in ("http", "sql")):
            where += f".{part}" if where else part
    return where or "the file"


def _named(data: Mapping[Any, Any], index: int) -> str:
    sources = data.get("sources")
    if isinstance(sources, list) and index < len(sources) and isinstance(sources[index], Mapping):
        name = sources[index].get("name")
        return f" ({name})" if isinstance(name, str) else ""
    return ""


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


async def _fetch_json(client: httpx.AsyncClient, source: HttpKpiSource) -> Any:
    try:
        response = await client.get(source.url, headers=source.headers)
    except httpx.HTTPError as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise KpiPullFailed(source.name, f"request failed: {detail}", retryable=isinstance(exc, httpx.TransportError)) from exc
    if not response.is_success:
        status = response.status_code
        retryable = status >= 500 or status in _RETRYABLE_4XX
        raise KpiPullFailed(source.name, f"HTTP {status} {response.reason_phrase} from {source.url}", retryable=retryable)
    try:
        return response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "none")
        raise KpiPullFailed(source.name, f"response is not JSON (content-type {content_type})") from None


def _pick(source: HttpKpiSource, body: Any, selector: str, convert: Callable[[object], T]) -> T:
    found = [match.value for match in _compiled(selector).find(body)]
    if len(found) != 1:
        matched = "nothing" if not found else f"{len(found)} values"
        raise KpiPullFailed(source.name, f"selector {selector} matched {matched}; it must select exactly one")
    try:
        return convert(found[0])
    except ValueError as exc:
        raise KpiPullFailed(source.name, f"selector {selector}: {exc}") from None


async def _query(source: SqlKpiSource, dsn: str) -> list[tuple[Any, ...]]:
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise KpiPullFailed(source.name, f"cannot connect: {_first_line(exc)}", retryable=True) from None
    except psycopg.Error:
        # Its message quotes the DSN, which may hold a password.
        raise KpiPullFailed(source.name, f"the DSN in {source.dsn_env} is not a valid connection string") from None
    try:
        async with conn:
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{round(source.statement_timeout_s * 1000)}ms",))
            # Binary results force the extended protocol: one statement, so no COMMIT can end the read-only transaction.
            cursor = await conn.execute(source.query, binary=True)
            if cursor.description is None:
                raise KpiPullFailed(source.name, "query returned no result set; it must be a SELECT")
            rows = await cursor.fetchall()
            await conn.rollback()
    except psycopg.Error as exc:
        raise KpiPullFailed(source.name, f"query failed: {_first_line(exc)}", retryable=isinstance(exc, psycopg.OperationalError)) from None
    return rows


def _readings(source: SqlKpiSource, rows: list[tuple[Any, ...]], now: datetime) -> Iterator[tuple[float, datetime]]:
    if not rows:
        raise KpiPullFailed(source.name, "query returned no rows")
    if (width := len(rows[0])) not in (1, 2):
        raise KpiPullFailed(source.name, f"query must return (value) or (value, observed_at) columns, not {width}")
    if width == 1 and len(rows) > 1:
        raise KpiPullFailed(source.name, f"query returned {len(rows)} rows of (value) alone; return one row or add an observed_at column")
    for number, row in enumerate(rows, 1):
        try:
            yield _as_number(row[0]), (_as_timestamp(row[1]) if width == 2 else now)
        except ValueError as exc:
            raise KpiPullFailed(source.name, f"row {number}: {exc}") from None


def _collect(source: HttpKpiSource | SqlKpiSource, readings: Iterable[tuple[float, datetime]], source_ref: str) -> PullResult:
    samples: list[KpiSampled] = []
    skipped = 0
    for value, observed_at in readings:
        if not source.window.contains(observed_at):
            skipped += 1
            continue
        samples.append(
            KpiSampled(
                metric=source.metric,
                portfolio_id=source.portfolio_id,
                value=value,
                unit=source.unit,
                observed_at=observed_at,
                source=f"{source.kind}:{source.name}",
                source_ref=source_ref[:2000],
            )
        )
    return PullResult(samples, skipped)


def _as_number(value: object) -> float:
    """The value as a finite float: a JSON/SQL number or a string holding one; never a boolean."""
    if isinstance(value, str) and _NUMBER.match(value):
        number = float(value)
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        raise ValueError(f"{_show(value)} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{_show(value)} is not a finite number")
    return number


def _as_timestamp(value: object) -> datetime:
    """An aware datetime, or an ISO 8601 string with a UTC offset, in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{_show(value)} is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{_show(value)} is not a timestamp")
    if value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no UTC offset")
    return value.astimezone(UTC)


def _show(value: object) -> str:
    shown = json.dumps(value, default=str)
    return shown if len(shown) <= 80 else f"{shown[:77]}..."


def _first_line(exc: BaseException) -> str:
    return next(iter(str(exc).strip().splitlines()), type(exc).__name__)
