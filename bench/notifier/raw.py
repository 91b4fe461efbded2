"""The raw baselines: the same messages sent again to the same servers by bare clients, and the same rows by bare sqlite3.

Every baseline is built from the sends a notifier round stored, before its clock starts: the
``chat.postMessage`` bodies as ``SlackSender`` posts them (the message with its channel, JSON
as httpx encodes it, the bearer token) and each e-mail as ``EmailSender`` builds it, flattened
as aiosmtplib flattens it for a server that offers 8BITMIME.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiosmtplib
import httpx
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message
from servers import TOKEN

from okr_notifier.senders import EmailSender
from okr_notifier.sendlog import SCHEMA, Send

T = TypeVar("T")
SENDER = "okrstream@localhost"  # the envelope sender aiosmtplib takes from the From header


@dataclass(frozen=True)
class Messages:
    """What the baselines send: Slack bodies (bytes), e-mails (recipient, bytes), and both in the order the dispatcher sent them."""

    slack: list[bytes]
    mails: list[tuple[str, bytes]]
    order: list[tuple[str, int]]  # (channel, index into slack or mails)
    flatten_ns: float  # mean time of flattening one EmailMessage to bytes, as aiosmtplib does before sending
    addresses_ns: float  # mean time of taking the sender and recipients from its headers, as aiosmtplib does when given none

    @property
    def slack_bytes(self) -> float:
        return sum(map(len, self.slack)) / max(1, len(self.slack))

    @property
    def mail_bytes(self) -> float:
        return sum(len(m) for _, m in self.mails) / max(1, len(self.mails))


def messages(sends: Sequence[Send], slack_url: str, email: EmailSender) -> Messages:
    """The very requests and messages the senders produce for these sends, in their order."""
    slack: list[bytes] = []
    mails: list[tuple[str, bytes]] = []
    order: list[tuple[str, int]] = []
    flatten_ns = addresses_ns = 0
    with httpx.Client() as client:
        for send in sends:
            p = send.payload
            if send.channel == "slack":
                request = client.build_request("POST", slack_url, json={**p["message"], "channel": p["channel"]})
                order.append(("slack", len(slack)))
                slack.append(request.read())
            else:
                message = email.build(p["to"], p["subject"], p["text"], p["html"])
                start = time.perf_counter_ns()
                extract_sender(message), extract_recipients(message)
                addresses_ns += time.perf_counter_ns() - start
                start = time.perf_counter_ns()
                data = flatten_message(message, utf8=False, cte_type="8bit")
                flatten_ns += time.perf_counter_ns() - start
                order.append(("email", len(mails)))
                mails.append((p["to"], data))
    return Messages(slack, mails, order, flatten_ns / max(1, len(mails)), addresses_ns / max(1, len(mails)))


async def _workers(items: Sequence[T], workers: int, each: Callable[[T], Awaitable[None]]) -> float:
    """Seconds for ``workers`` tasks to take the items in turn, each awaiting ``each(item)``."""
    pending: Iterator[T] = iter(items)

    async def worker() -> None:
        for item in pending:
            await each(item)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - start


HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def post(client: httpx.AsyncClient, url: str, body: bytes) -> None:
    """One bare ``chat.postMessage`` POST of a prebuilt body; the answer must be HTTP 200 and ``ok``."""
    response = await client.post(url, content=body, headers=HEADERS)
    if response.status_code != 200 or response.json().get("ok") is not True:
        raise RuntimeError(f"raw post answered {response.status_code}: {response.text[:200]}")


async def mail(port: int, to: str, data: bytes) -> None:
    """One bare ``aiosmtplib.send`` of a prebuilt message: a connection, EHLO, MAIL, RCPT, DATA and QUIT, as ``EmailSender`` sends."""
    await aiosmtplib.send(
        data, sender=SENDER, recipients=[to], hostname="127.0.0.1", port=port, start_tls=False, timeout=30, mail_options=["BODY=8BITMIME"]
    )


async def slack_posts(client: httpx.AsyncClient, url: str, bodies: Sequence[bytes], workers: int) -> float:
    """Seconds for bare POSTs of the bodies by ``workers`` concurrent tasks sharing the client."""
    return await _workers(bodies, workers, lambda body: post(client, url, body))


async def smtp_sends(port: int, mails: Sequence[tuple[str, bytes]], workers: int) -> float:
    """Seconds for bare sends of the messages by ``workers`` concurrent tasks, a connection per message."""
    return await _workers(mails, workers, lambda m: mail(port, *m))


@dataclass
class InOrder:
    """The messages one at a time in the dispatcher's order: seconds in all and per channel; each send's (channel, previous channel, ns)."""

    seconds: float
    spent: dict[str, float]
    each: list[tuple[str, str, int]]

    def median_us(self, channel: str, after: str) -> float:
        """Median µs of a send on ``channel`` that followed one on ``after``."""
        found = sorted(took for ch, before, took in self.each if ch == channel and before == after)
        return found[len(found) // 2] / 1e3 if found else float("nan")


async def in_order(client: httpx.AsyncClient, url: str, port: int, m: Messages) -> InOrder:
    """Every message one at a time in the order the dispatcher sent them."""
    spent = {"slack": 0.0, "email": 0.0}
    each: list[tuple[str, str, int]] = []
    previous, clock = "", time.perf_counter_ns
    start = time.perf_counter()
    for channel, i in m.order:
        began = clock()
        if channel == "slack":
            await post(client, url, m.slack[i])
        else:
            await mail(port, *m.mails[i])
        took = clock() - began
        spent[channel] += took / 1e9
        each.append((channel, previous, took))
        previous = channel
    return InOrder(time.perf_counter() - start, spent, each)


async def both_concurrent(client: httpx.AsyncClient, url: str, port: int, m: Messages, workers: int) -> float:
    """Seconds for all the messages with ``workers`` Slack and ``workers`` SMTP senders at once."""
    start = time.perf_counter()
    await asyncio.gather(slack_posts(client, url, m.slack, workers), smtp_sends(port, m.mails, workers))
    return time.perf_counter() - start


async def smtp_one_connection(port: int, mails: Sequence[tuple[str, bytes]]) -> float:
    """Every prebuilt message over one SMTP connection (MAIL, RCPT, DATA each): what reusing the connection would give."""
    start = time.perf_counter()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30) as smtp:
        for to, data in mails:
            await smtp.sendmail(SENDER, [to], data, mail_options=["BODY=8BITMIME"])
    return time.perf_counter() - start


@dataclass(frozen=True)
class Rows:
    """An alert's rows as the service stored them: the raised event, and its sends."""

    raised: tuple[str, str]
    sends: list[tuple[str, ...]]


def stored_rows(path: Path) -> list[Rows]:
    """The rows a notifier round wrote, alert by alert in the order they were enqueued."""
    conn = sqlite3.connect(path)
    try:
        raised = conn.execute("SELECT alert_id, event FROM notifier_raised ORDER BY rowid").fetchall()
        sends: dict[str, list[tuple[str, ...]]] = {}
        query = (
            "SELECT alert_id, state, recipient, channel, address, payload, next_attempt_at, created_at FROM notifier_sends ORDER BY rowid"
        )
        for row in conn.execute(query):
            sends.setdefault(row[0], []).append(tuple(row))
    finally:
        conn.close()
    return [Rows((alert_id, event), sends[alert_id]) for alert_id, event in raised]


def sqlite_inserts(path: Path, alerts: Sequence[Rows]) -> float:
    """Bare sqlite3 (same file settings and schema): per alert one transaction inserting its raised event, one inserting its sends."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    raised_sql = "INSERT INTO notifier_raised (alert_id, event) VALUES (?, ?) ON CONFLICT DO NOTHING"
    sends_sql = (
        "INSERT INTO notifier_sends (alert_id, state, recipient, channel, address, payload, next_attempt_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    try:
        start = time.perf_counter()
        for alert in alerts:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(raised_sql, alert.raised)
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sends_sql, alert.sends)
            conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()
