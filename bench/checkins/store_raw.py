"""The raw store baseline: the eventsourcing recorder appending ready-made stored events, no domain logic at all."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment, get_topic

from okr_checkins.application import CheckinsApplication
from okr_checkins.domain.portfolio import Portfolio

RECORDED_TOPIC = get_topic(Portfolio.Recorded)


@dataclass(frozen=True)
class Payloads:
    """Stored states of real check-in events, to append again as raw events of the very same size."""

    check_ins: list[bytes]
    values: list[bytes]

    @property
    def mean_bytes(self) -> float:
        """Mean size of a stored check-in event (what the raw baseline appends)."""
        sizes = [len(s) for s in self.check_ins + self.values]
        return sum(sizes) / len(sizes) if sizes else 0.0


def sample_payloads(checkins: CheckinsApplication, after: int, limit: int = 2000) -> Payloads:
    """States of the check-in events the API stored after notification `after`."""
    found = checkins.recorder.select_notifications(after + 1, limit, topics=(RECORDED_TOPIC,))
    check_ins = [n.state for n in found if b'"CheckInRecorded"' in n.state]
    values = [n.state for n in found if b'"ValueObserved"' in n.state]
    if not check_ins:
        raise RuntimeError("no stored check-in events to copy for the raw baseline")
    return Payloads(check_ins, values or check_ins)


def raw_appends(env: dict[str, str], name: str, shape: Sequence[int], payloads: Payloads, writers: int) -> float:
    """Append one transaction per entry of `shape` (that many events each) from `writers` threads; returns seconds taken."""
    factory = InfrastructureFactory.construct(Environment(name, env))
    try:
        recorder = factory.application_recorder()
        barrier = threading.Barrier(writers + 1)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_writer, args=(recorder, shape[w::writers], payloads, barrier, errors), name=f"raw-{w}")
            for w in range(writers)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"raw append failed: {errors[0]!r}") from errors[0]
        return elapsed
    finally:
        factory.close()


def _writer(
    recorder: ApplicationRecorder, shape: Sequence[int], payloads: Payloads, barrier: threading.Barrier, errors: list[BaseException]
) -> None:
    """One writer: its own stream, one insert (one transaction) per check-in, versions counting up like a portfolio's."""
    stream, version = uuid.uuid4(), 0
    barrier.wait()
    try:
        for n, events in enumerate(shape):
            states = [payloads.check_ins[n % len(payloads.check_ins)], payloads.values[n % len(payloads.values)]][:events]
            batch = [StoredEvent(stream, version + i + 1, RECORDED_TOPIC, state) for i, state in enumerate(states)]
            recorder.insert_events(batch)
            version += len(batch)
    except BaseException as exc:
        errors.append(exc)
