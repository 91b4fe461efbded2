"""Group commit of webhook intake: concurrent requests' rows written in one transaction, each answered once its rows are durable.

A webhook used to cost two hops to a worker thread (read the mapping in force, then one
transaction) for a few dozen microseconds of SQL each; under load the hops and the commits,
not the SQL, were the cost. Here a request hands its plan to :class:`GroupCommit` and waits.
One drain at a time takes everything waiting (up to ``max_batch``) to the worker thread,
reads the mapping in force once, lets each plan say what to write under it, and writes all
of it in one transaction (:meth:`ConnectorStore.accept_all`). While a batch commits, the next
requests gather, so the batches grow with the load and nothing waits for a timer: a lone
request is written at once, as before.

Each request gets its own answer. A plan that raises fails only its request. If the shared
transaction fails, nothing of it was stored, and its writes are tried again one transaction
each, so that one bad write cannot fail the requests that merely shared its batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from okr_connectors.mapping import Mapping, MappingSource
from okr_connectors.store import ConnectorStore, Item

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Write:
    """What one request stores: its source's items (a delivery key, then the change)."""

    source: str
    items: Sequence[Item]


@dataclass(frozen=True)
class Written:
    """A request's write once committed, and how many of its items were new (the rest were seen before)."""

    write: Write
    new: int


Plan = Callable[[Mapping], Write | T]
"""What a request stores under the mapping in force, or its answer when it stores nothing."""


class GroupCommit:
    """Runs the requests' plans in batches: one hop to a worker thread, one mapping read and one transaction per batch."""

    def __init__(self, store: ConnectorStore, mappings: MappingSource, *, max_batch: int = 256) -> None:
        self.store = store
        self.mappings = mappings
        self.max_batch = max_batch
        self._waiting: list[tuple[Plan[Any], asyncio.Future[Any]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def run(self, plan: Plan[T]) -> Written | T:
        """The plan's write once committed with its batch, or what the plan answered instead of writing."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Written | T] = loop.create_future()
        self._waiting.append((plan, answer))
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(self._drain_all(), name="connectors-group-commit")
        return await answer

    async def _drain_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            try:
                results = await asyncio.to_thread(self._commit, [plan for plan, _ in batch])
            except Exception as exc:  # the mapping could not be read: every request of the batch fails with it
                results = [exc] * len(batch)
            except BaseException:  # cancelled (the loop is closing): nobody is left waiting forever
                for _, answer in [*batch, *self._waiting]:
                    answer.cancel()
                raise
            for (_, answer), result in zip(batch, results, strict=True):
                if answer.done():  # the request went away (the client disconnected); its write stands
                    continue
                if isinstance(result, Exception):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)

    def _commit(self, plans: Sequence[Plan[Any]]) -> list[Any]:
        """In the worker thread: the mapping in force, each plan under it, then every write in one transaction."""
        mapping = self.mappings.current()
        results: list[Any] = []
        for plan in plans:
            try:
                results.append(plan(mapping))
            except Exception as exc:  # a plan's failure is its request's alone
                results.append(exc)
        writes = [(index, result) for index, result in enumerate(results) if isinstance(result, Write)]
        for (index, write), new in zip(writes, self._accept([w for _, w in writes]), strict=True):
            results[index] = Written(write, new) if isinstance(new, int) else new
        return results

    def _accept(self, writes: Sequence[Write]) -> list[int | Exception]:
        if not writes:
            return []
        try:
            return list(self.store.accept_all([(w.source, w.items) for w in writes]))
        except Exception as exc:
            if len(writes) == 1:
                return [exc]
            log.warning("a group commit of %d webhook writes failed; writing them one by one", len(writes), exc_info=True)
        return [self._accept_one(w) for w in writes]

    def _accept_one(self, write: Write) -> int | Exception:
        try:
            return self.store.accept(write.source, write.items)
        except Exception as exc:
            return exc
