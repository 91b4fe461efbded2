"""Works the send log off: delivers what is due, retries with backoff, dead-letters what cannot be delivered.

Delivery is at least once, and exactly once except for a narrow window. A send
is marked ``sent`` only after ``deliver`` returned, so a crash before that
leaves it pending and a restarted dispatcher (over the same log) sends it again.
A crash or a lost database write *between* a successful ``deliver`` and the
``record`` that marks it sent — or a timeout after Slack or the SMTP server
already accepted the message — therefore repeats that one notification; nothing
else is ever sent twice, because every other send of the batch is either
recorded sent or was never attempted.

A failure that ``deliver`` marks retryable waits ``max(Retry-After, full-jitter
backoff)`` (backoff ``uniform(0, min(max_delay, base · 2^(attempt-1)))``). A
permanent failure, or the last of ``max_attempts``, goes to ``dead_letter`` with
its reason, then the send is recorded dead: if the dead-letter publish fails the
send stays pending and is tried again, rather than dying unannounced.

Every attempt's outcome is also told to an :class:`Outcomes` (the service's metrics):
sent, or failed with a short reason class (``transient``, ``permanent``, or the
class name of an unexpected error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from okr_notifier.senders import SendFailed
from okr_notifier.sendlog import Send, SendLog

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Outcomes(Protocol):
    """Told the outcome of every delivery attempt."""

    def sent(self, send: Send) -> None:
        """The send was delivered."""

    def failed(self, send: Send, reason: str) -> None:
        """The attempt failed: `reason` is ``transient``, ``permanent`` or an unexpected error's class name."""


class Untold:
    """Outcomes that go nowhere."""

    def sent(self, send: Send) -> None:
        return None

    def failed(self, send: Send, reason: str) -> None:
        return None


class Dispatcher:
    """Delivers due sends one at a time and records every attempt's outcome in the send log."""

    def __init__(
        self,
        log: SendLog,
        deliver: Callable[[Send], Awaitable[None]],
        *,
        dead_letter: Callable[[Send, str], Awaitable[None]],
        max_attempts: int = 5,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        batch_size: int = 100,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
        outcomes: Outcomes | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._log = log
        self._deliver = deliver
        self._dead_letter = dead_letter
        self._max_attempts = max_attempts
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._batch_size = batch_size
        self._clock = clock
        self._rng = rng or random.Random()
        self._outcomes = outcomes or Untold()

    async def run_once(self) -> int:
        """Attempt every send due now (up to a batch); how many were attempted."""
        sends = await asyncio.to_thread(self._log.due, self._clock(), self._batch_size)
        for send in sends:
            await self._attempt(send)
        return len(sends)

    async def run(self, stop: asyncio.Event, idle_s: float = 1.0) -> None:
        """Attempt due sends until ``stop`` is set, waiting ``idle_s`` whenever nothing was due."""
        while not stop.is_set():
            try:
                attempted = await self.run_once()
            except Exception:
                # The log or the dead-letter topic is unreachable: what was not recorded is still pending, so try again later.
                logger.exception("notifier dispatch round failed")
                attempted = 0
            if attempted == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)

    async def _attempt(self, send: Send) -> None:
        try:
            await self._deliver(send)
        except SendFailed as exc:
            self._outcomes.failed(send, "transient" if exc.retryable else "permanent")
            await self._failed(send, exc.reason, retryable=exc.retryable, retry_after_s=exc.retry_after_s)
        except Exception as exc:
            # A bug in rendering or a sender, not an answer from the far side: retried, so it dead-letters if it persists.
            logger.exception("delivering %s failed unexpectedly", send.key)
            self._outcomes.failed(send, type(exc).__name__)
            await self._failed(send, f"{type(exc).__name__}: {exc}", retryable=True, retry_after_s=None)
        else:
            self._outcomes.sent(send)
            await asyncio.to_thread(self._log.record, send, "ok", at=self._clock(), detail="delivered")

    async def _failed(self, send: Send, reason: str, *, retryable: bool, retry_after_s: float | None) -> None:
        now = self._clock()
        attempt = send.attempts + 1
        if retryable and attempt < self._max_attempts:
            delay = max(retry_after_s or 0.0, self.backoff_s(attempt))
            next_at = now + timedelta(seconds=delay)
            await asyncio.to_thread(self._log.record, send, "retry", at=now, detail=reason, next_attempt_at=next_at)
            return
        final = reason if not retryable else f"{reason} (gave up after {attempt} attempts)"
        await self._dead_letter(send, final)
        await asyncio.to_thread(self._log.record, send, "permanent", at=now, detail=final)

    def backoff_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff after the ``attempt``-th failure."""
        ceiling = min(self._max_delay_s, self._base_delay_s * 2 ** min(attempt - 1, 60))
        return self._rng.uniform(0, ceiling)
