"""Where an auditor's files come from: the checkins export endpoint or its event store, okr.scores.v1, and the rollup's capacity.

Every function writes or returns exactly what the source holds; nothing is
recomputed here. Failures raise :class:`SourceError` with a message a person can act on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from okr_audit.verify import Head
from okr_contracts.export import canonical_json
from okr_contracts.topics import SCORES_TOPIC
from okr_runtime.problems import problem_reason

HEAD_SUFFIX = ".head.json"


class SourceError(RuntimeError):
    """A source that could not give what was asked (unreachable, refused, unknown portfolio)."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the portfolio, the number of records, the chain's head, where it came from and when."""

    portfolio_id: str
    length: int
    head: str
    source: str
    exported_at: str

    def save_beside(self, path: Path) -> Path:
        """Write this description next to the history file (``<file>.head.json``), for ``verify``."""
        target = head_file_for(path)
        target.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return target


def head_file_for(path: Path) -> Path:
    """Where the export's description of `path` is kept."""
    return path.with_name(path.name + HEAD_SUFFIX)


def read_head(path: Path) -> Head:
    """The trusted head saved beside an export (or any file in that format)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return Head(hash=str(saved["head"]), length=int(saved["length"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"{path} does not hold an export's head (head, length): {exc}") from exc


def checkins_client(base_url: str, token: str, *, timeout_s: float = 60.0) -> httpx.Client:
    """An HTTP client of the checkins API, authenticated by a bearer token."""
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)


def export_from_checkins(client: httpx.Client, portfolio_id: str, out: Path) -> Exported:
    """Stream ``GET /v1/portfolios/{p}/export`` into `out`; the head comes from the response headers."""
    path = f"/v1/portfolios/{portfolio_id}/export"
    url = f"{client.base_url}{path}"
    try:
        with client.stream("GET", path) as response:
            if response.status_code != 200:
                response.read()
                raise SourceError(f"{url} answered {response.status_code}: {problem_reason(response)}")
            with out.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
            head, length = response.headers.get("OKR-Chain-Head"), response.headers.get("OKR-Chain-Length")
    except httpx.HTTPError as exc:
        raise SourceError(f"could not read {url}: {exc}") from exc
    if head is None or length is None:
        raise SourceError(f"{url} answered without the OKR-Chain-Head and OKR-Chain-Length headers (is it okrstream checkins?)")
    return Exported(portfolio_id, int(length), head, url, _now())


def export_from_store(application: Any, portfolio_id: str, out: Path) -> Exported:
    """Write a portfolio's records straight from the checkins event store (an open ``CheckinsApplication``)."""
    length, head = 0, ""
    with out.open("wb") as handle:
        for record in application.records(portfolio_id):
            handle.write(canonical_json(record) + b"\n")
            length, head = int(record["position"]), str(record["hash"])
    if length == 0:
        out.unlink()
        raise SourceError(f"the event store holds no history of portfolio {portfolio_id!r}")
    return Exported(portfolio_id, length, head, "event store", _now())


async def read_scores(bootstrap: str, portfolio_id: str, *, topic: str = SCORES_TOPIC.name, timeout_s: float = 60.0) -> list[bytes]:
    """Every record of the portfolio on the scores topic now, oldest first per partition (read from the beginning, no group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,  # no group: every partition is ours, nothing is committed
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout_s * 1000),
    )
    prefix = f"{portfolio_id}/".encode()
    try:
        await consumer.start()
        if not consumer.partitions_for_topic(topic):
            raise SourceError(f"topic {topic} does not exist on {bootstrap}")
        assigned = await _assignment(consumer, timeout_s)
        ends = await consumer.end_offsets(assigned)
        await consumer.seek_to_beginning(*assigned)
        values: list[bytes] = []
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(*assigned, timeout_ms=1000)
            values += [r.value for batch in batches.values() for r in batch if r.key and r.key.startswith(prefix) and r.value is not None]
        return values
    except KafkaError as exc:
        raise SourceError(f"could not read {topic} from {bootstrap}: {exc!r}") from exc
    finally:
        await consumer.stop()


async def _assignment(consumer: AIOKafkaConsumer, timeout_s: float) -> list[TopicPartition]:
    """The partitions the consumer was given (without a group it gets all of them, once it has the topic's metadata)."""
    async with asyncio.timeout(timeout_s):
        while not consumer.assignment():  # noqa: ASYNC110 (aiokafka offers no event to wait on for its assignment)
            await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


def read_capacity(client: httpx.Client, portfolio_id: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """The cycles of the rollup's ``GET /v1/portfolios/{p}/capacity`` answer, as of a moment (now without one)."""
    path = f"/v1/portfolios/{portfolio_id}/capacity"
    url = f"{client.base_url}{path}"
    try:
        response = client.get(path, params={"as_of": as_of.isoformat()} if as_of else {})
    except httpx.HTTPError as exc:
        raise SourceError(f"could not read {url}: {exc}") from exc
    if response.status_code != 200:
        raise SourceError(f"{url} answered {response.status_code}: {problem_reason(response)}")
    try:
        cycles = response.json()["cycles"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"{url} answered without a list of cycles (is it okrstream rollup?): {exc!r}") from exc
    if not isinstance(cycles, list) or not all(isinstance(c, dict) and isinstance(c.get("cycle_id"), str) for c in cycles):
        raise SourceError(f"{url} answered cycles that are not capacity views (objects with a cycle_id)")
    return cycles


def read_scores_file(path: Path) -> list[bytes]:
    """Score records saved one per line (what ``okr audit scores`` writes)."""
    if not path.is_file():
        raise SourceError(f"{path} is not a file")
    with path.open("rb") as handle:
        return [line.rstrip(b"\r\n") for line in handle if line.strip()]


def write_lines(values: Iterable[bytes], out: Path) -> int:
    """Save message values one per line; returns how many."""
    count = 0
    with out.open("wb") as handle:
        for value in values:
            handle.write(value + b"\n")
            count += 1
    return count


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
