"""The notifier's path in this process: ``NotifierService.on_alert`` into a SQLite send log, ``Dispatcher.run_once`` with the real senders.

Nothing of the service is changed. The send log and the e-mail sender are subclasses that only
add up the time spent in their methods (``due``, ``record``, ``enqueue``, ``remember_raised`` in
the worker thread that runs them; ``EmailSender.build``), and the dispatcher's ``deliver`` is
wrapped to time each delivery by channel. The cost of that bookkeeping is a few microseconds per call.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
from servers import TOKEN

from okr_contracts.alerts import AlertRaised
from okr_contracts.envelope import Envelope, EventPayload
from okr_notifier.application import NotifierService, deliverer
from okr_notifier.dispatch import Dispatcher
from okr_notifier.messages import email_message, kr_link, slack_message
from okr_notifier.routing import RoutingConfig, plan
from okr_notifier.senders import EmailSender, SlackSender
from okr_notifier.sendlog import Outcome, Send, SqliteSendLog

MAIL_FROM = "okrstream <okrstream@localhost>"  # the service's default OKR_NOTIFIER_MAIL_FROM


def now() -> datetime:
    return datetime.now(UTC)


class TimedSendLog(SqliteSendLog):
    """The SQLite send log, adding up the time of each method in the thread that ran it, and counting outcomes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.ns: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.due_calls: list[tuple[int, int]] = []  # (ns, rows) of each due()
        self.on_record: Callable[[], None] | None = None  # called in the recording thread after each record
        self._books = threading.Lock()

    def _book(self, name: str, ns: int) -> None:
        with self._books:
            self.ns[name] += ns
            self.calls[name] += 1

    def due(self, now: datetime, limit: int = 100) -> list[Send]:
        start = time.perf_counter_ns()
        found = super().due(now, limit)
        took = time.perf_counter_ns() - start
        self._book("due", took)
        with self._books:
            self.due_calls.append((took, len(found)))
        return found

    def record(self, send: Send, outcome: Outcome, *, at: datetime, detail: str, next_attempt_at: datetime | None = None) -> int:
        start = time.perf_counter_ns()
        attempt = super().record(send, outcome, at=at, detail=detail, next_attempt_at=next_attempt_at)
        self._book("record", time.perf_counter_ns() - start)
        with self._books:
            self.outcomes[outcome] += 1
        if self.on_record is not None:
            self.on_record()
        return attempt

    def enqueue(self, sends: Sequence[Send], *, now: datetime | None = None) -> int:
        start = time.perf_counter_ns()
        new = super().enqueue(sends, now=now)
        self._book("enqueue", time.perf_counter_ns() - start)
        return new

    def remember_raised(self, alert_id: str, event_json: str) -> None:
        start = time.perf_counter_ns()
        super().remember_raised(alert_id, event_json)
        self._book("remember_raised", time.perf_counter_ns() - start)


class TimedEmailSender(EmailSender):
    """The SMTP sender, adding up the time spent building each ``EmailMessage``."""

    build_ns = 0

    def build(self, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
        start = time.perf_counter_ns()
        message = super().build(to, subject, text, html)
        self.build_ns += time.perf_counter_ns() - start
        return message


@dataclass
class Delivered:
    """Time in ``deliver`` per channel (ns), how many, and each delivery's time with the channel of the delivery before it."""

    ns: Counter[str] = field(default_factory=Counter)
    count: Counter[str] = field(default_factory=Counter)
    each: list[tuple[str, str, int]] = field(default_factory=list)

    def wrap(self, deliver: Callable[[Send], Awaitable[None]]) -> Callable[[Send], Awaitable[None]]:
        previous = ""

        async def timed(send: Send) -> None:
            nonlocal previous
            start = time.perf_counter_ns()
            try:
                await deliver(send)
            finally:
                took = time.perf_counter_ns() - start
                self.ns[send.channel] += took
                self.count[send.channel] += 1
                self.each.append((send.channel, previous, took))
                previous = send.channel

        return timed

    def median_us(self, channel: str, after: str) -> float:
        """Median µs of a delivery on ``channel`` that followed one on ``after``."""
        found = sorted(took for ch, before, took in self.each if ch == channel and before == after)
        return found[len(found) // 2] / 1e3 if found else float("nan")


class Pauses:
    """A ``gc.callbacks`` entry adding up the garbage collector's time and runs."""

    def __init__(self) -> None:
        self.ns, self.runs, self._start = 0, 0, 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.ns += time.perf_counter_ns() - self._start
            self.runs += 1


@dataclass
class Senders:
    """The senders as the service builds them: one long-lived httpx client, the Slack API base on the local server, SMTP without TLS."""

    client: httpx.AsyncClient
    slack: SlackSender
    email: TimedEmailSender

    @classmethod
    def create(cls, slack_port: int, smtp_port: int) -> Senders:
        client = httpx.AsyncClient(timeout=30)  # as bootstrap.create_app builds it
        slack = SlackSender(
            client,
            bot_token=TOKEN,
            api_base=f"http://127.0.0.1:{slack_port}/api",
            allowed_hosts=frozenset({"127.0.0.1"}),
            require_https=False,
        )
        email = TimedEmailSender("127.0.0.1", smtp_port, starttls=False, sender=MAIL_FROM, timeout=30)
        return cls(client, slack, email)


async def refuse_dead_letter(send: Send, reason: str) -> None:
    """Nothing may fail here: a dead letter stops the benchmark."""
    raise RuntimeError(f"send {send.key} failed for good: {reason}")


def dispatcher(log: TimedSendLog, senders: Senders, delivered: Delivered) -> Dispatcher:
    """The service's dispatcher (default batch of 100, 5 attempts) over the real senders, ``deliver`` timed."""
    return Dispatcher(log, delivered.wrap(deliverer(senders.slack, senders.email, {})), dead_letter=refuse_dead_letter)


@dataclass
class Sequential:
    """One round of enqueue, then dispatch until drained."""

    notifications: int
    enqueue_s: float
    dispatch_s: float
    enqueue_ns: Counter[str]
    log_ns: Counter[str]
    log_calls: Counter[str]
    due_calls: list[tuple[int, int]]
    delivered: Delivered
    build_ns: int
    batches: int
    sends: list[Send]
    gc_ns: int
    gc_runs: int


async def sequential(
    path: Path,
    routing: RoutingConfig,
    envelopes: list[Envelope[EventPayload]],
    senders: Senders,
    expected: int,
    on_phase: Callable[[str, bool], None] | None = None,
) -> Sequential:
    """Enqueue every alert through ``on_alert`` (timed), then ``run_once`` until nothing is due (timed); every send must be sent.

    ``on_phase(name, started)`` is called just before and after each timed phase (``enqueue``, ``dispatch``).
    """
    log = TimedSendLog(path)
    try:
        service = NotifierService(log, routing, now)
        if on_phase:
            on_phase("enqueue", True)
        start = time.perf_counter()
        for envelope in envelopes:
            await service.on_alert(envelope)
        enqueue_s = time.perf_counter() - start
        if on_phase:
            on_phase("enqueue", False)
        enqueue_ns = Counter(log.ns)
        sends = log.due(now(), expected + 1)  # untimed: what the raw baselines send again
        if len(sends) != expected:
            raise RuntimeError(f"{len(sends)} sends enqueued, expected {expected}")
        log.ns.clear()
        log.calls.clear()
        log.due_calls.clear()
        senders.email.build_ns = 0
        delivered, batches = Delivered(), 0
        work = dispatcher(log, senders, delivered)
        if on_phase:
            on_phase("dispatch", True)
        pauses = Pauses()
        gc.callbacks.append(pauses)
        start = time.perf_counter()
        try:
            while await work.run_once():
                batches += 1
        finally:
            dispatch_s = time.perf_counter() - start
            gc.callbacks.remove(pauses)
        if on_phase:
            on_phase("dispatch", False)
        _check(log, expected)
        return Sequential(
            expected,
            enqueue_s,
            dispatch_s,
            enqueue_ns,
            Counter(log.ns),
            Counter(log.calls),
            list(log.due_calls),
            delivered,
            senders.email.build_ns,
            batches,
            sends,
            pauses.ns,
            pauses.runs,
        )
    finally:
        log.close()


@dataclass
class EndToEnd:
    """One round with ``on_alert`` and the dispatcher's loop running together in one event loop, as in the service."""

    notifications: int
    seconds: float
    enqueued_s: float


async def end_to_end(
    path: Path, routing: RoutingConfig, envelopes: list[Envelope[EventPayload]], senders: Senders, expected: int, idle_s: float
) -> EndToEnd:
    """From the first ``on_alert`` until the last send is recorded sent, with ``Dispatcher.run`` (idle ``idle_s``) beside the intake."""
    log = TimedSendLog(path)
    try:
        service = NotifierService(log, routing, now)
        stop, finished, loop = asyncio.Event(), asyncio.Event(), asyncio.get_running_loop()

        def on_record() -> None:
            if log.outcomes["ok"] + log.outcomes["permanent"] >= expected:
                loop.call_soon_threadsafe(finished.set)

        log.on_record = on_record
        runner = asyncio.create_task(dispatcher(log, senders, Delivered()).run(stop, idle_s))
        start = time.perf_counter()
        for envelope in envelopes:
            await service.on_alert(envelope)
        enqueued_s = time.perf_counter() - start
        await finished.wait()
        seconds = time.perf_counter() - start
        stop.set()
        await runner
        _check(log, expected)
        return EndToEnd(expected, seconds, enqueued_s)
    finally:
        log.close()


def _check(log: TimedSendLog, expected: int) -> None:
    counts = log.counts()
    if counts != {"pending": 0, "sent": expected, "dead": 0} or log.outcomes["retry"]:
        raise RuntimeError(f"send log after dispatch: {counts}, outcomes {dict(log.outcomes)}; expected {expected} sent at first attempt")


@dataclass(frozen=True)
class Rendering:
    """Per-call times (ns) of planning an alert and rendering each message, outside the service (no store)."""

    plan_ns: float
    slack_ns: float
    email_ns: float
    dump_ns: float


def rendering(routing: RoutingConfig, envelopes: list[Envelope[EventPayload]]) -> Rendering:
    """``plan`` per alert, ``slack_message`` / ``email_message`` per notification as the service calls them, the raised event's JSON."""
    plan_ns = slack_ns = email_ns = dump_ns = 0
    slack_n = email_n = 0
    clock = time.perf_counter_ns
    for envelope in envelopes:
        raised = envelope.data
        assert isinstance(raised, AlertRaised)
        start = clock()
        raised.model_dump_json()
        dump_ns += clock() - start
        start = clock()
        planned = plan(raised, raised, routing, now())
        plan_ns += clock() - start
        link = kr_link(routing.link_base, raised.portfolio_id, raised.node_id)
        for note in planned.notifications:
            start = clock()
            if note.channel == "slack":
                slack_message(raised, note.state, link=link)
                slack_ns += clock() - start
                slack_n += 1
            else:
                email_message(raised, note.state, link=link)
                email_ns += clock() - start
                email_n += 1
    n = len(envelopes)
    return Rendering(plan_ns / n, slack_ns / max(1, slack_n), email_ns / max(1, email_n), dump_ns / n)
