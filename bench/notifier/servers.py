"""The far sides, each in a process of its own: a Slack-compatible ``chat.postMessage`` and an aiosmtpd SMTP server.

Run as a script (``python servers.py slack|smtp``) it binds a free port on 127.0.0.1, prints
``{"port": …}``, then answers ``stats`` on stdin with its counters as one JSON line and stops
when stdin closes. The benchmark starts it with :func:`started`.

The Slack server is a bare asyncio protocol (HTTP/1.1 keep-alive, ``Content-Length`` bodies),
as light as a Python server gets, so it costs the benchmark little of the machine. It answers
as Slack's Web API does: HTTP 200 with ``{"ok": false, "error": …}`` for a missing or malformed
bearer token (``not_authed``, ``invalid_auth``), an unknown method, a missing channel
(``channel_not_found``), no ``text`` and no ``blocks`` (``no_text``) or more than 50 blocks
(``invalid_blocks``); else ``{"ok": true, "channel", "ts", "message"}`` with the message's
text (Slack also echoes the blocks; left out). The SMTP server is ``aiosmtpd.smtp.SMTP`` (8BITMIME, no
TLS, no AUTH) whose handler counts each message and its bytes and accepts it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN = "xoxb-bench-notifier"  # noqa: S105 - a made-up token the local server checks, not a secret
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the parent's side ----------------------------------------------------------------------------------------


@dataclass
class Server:
    """A running server process: its port and counters."""

    kind: str
    port: int
    process: subprocess.Popen[str]

    def stats(self) -> dict[str, int]:
        """The server's counters now (messages, bytes, errors)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        counters: dict[str, int] = json.loads(self.process.stdout.readline())
        return counters

    def cpu_seconds(self) -> float:
        """User and system CPU time the server process has used so far."""
        return process_cpu_seconds(self.process.pid)


@contextmanager
def started(kind: str) -> Iterator[Server]:
    """The ``slack`` or ``smtp`` server in a child process, until the block ends."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {kind} server did not start (exit code {process.wait()})")
        yield Server(kind, json.loads(line)["port"], process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat(5)


def machine_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy and in total so far (every core), from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


# --- the Slack-compatible server ------------------------------------------------------------------------------


class SlackState:
    """What the Slack server answered so far."""

    def __init__(self) -> None:
        self.counters = {"messages": 0, "body_bytes": 0, "errors": 0, "requests": 0, "connections": 0}

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """The Web API's answer to one request (always HTTP 200, as Slack answers API errors)."""
        self.counters["requests"] += 1
        answer = self._answer(method, target, headers, body)
        if answer["ok"]:
            self.counters["messages"] += 1
            self.counters["body_bytes"] += len(body)
        else:
            self.counters["errors"] += 1
        return answer

    @staticmethod
    def _answer(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if method != "POST" or not target.endswith("/chat.postMessage"):
            return {"ok": False, "error": "unknown_method"}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return {"ok": False, "error": "not_authed"}
        if token != TOKEN:
            return {"ok": False, "error": "invalid_auth"}
        try:
            message = json.loads(body)
        except ValueError:
            return {"ok": False, "error": "invalid_json"}
        channel = message.get("channel") if isinstance(message, dict) else None
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        blocks = message.get("blocks")
        if not message.get("text") and not blocks:
            return {"ok": False, "error": "no_text"}
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > 50):
            return {"ok": False, "error": "invalid_blocks"}
        ts = f"{time.time():.6f}"
        return {"ok": True, "channel": channel, "ts": ts, "message": {"type": "message", "text": message.get("text", ""), "ts": ts}}


class SlackProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: requests with ``Content-Length`` bodies, answered in order."""

    def __init__(self, state: SlackState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.counters["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            payload = json.dumps(self.state.answer(method, target, headers, body)).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(payload)
            self.transport.write(head + payload)
            if headers.get("connection", "").lower() == "close":
                self.transport.close()
                self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


# --- the SMTP server ------------------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that counts what it accepts (and the multipart ones among them) and keeps nothing."""

    def __init__(self) -> None:
        self.counters = {"messages": 0, "message_bytes": 0, "multipart": 0, "recipients": 0}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        content: bytes = envelope.original_content or b""
        self.counters["messages"] += 1
        self.counters["message_bytes"] += len(content)
        self.counters["recipients"] += len(envelope.rcpt_tos)
        self.counters["multipart"] += b"multipart/alternative" in content[:4096]
        return "250 Message accepted for delivery"


# --- the child's side -----------------------------------------------------------------------------------------


async def _serve(kind: str) -> None:
    loop = asyncio.get_running_loop()
    factory: Callable[[], asyncio.BaseProtocol]
    counters: dict[str, int]
    if kind == "slack":
        state = SlackState()
        counters = state.counters
        factory = lambda: SlackProtocol(state)  # noqa: E731
    elif kind == "smtp":
        from aiosmtpd.smtp import SMTP

        mailbox = Mailbox()
        counters = mailbox.counters
        factory = lambda: SMTP(mailbox, hostname="bench.localhost")  # noqa: E731
    else:
        raise SystemExit(f"unknown server {kind!r}: slack or smtp")
    server = await loop.create_server(factory, "127.0.0.1", 0, backlog=1024)
    stopped = asyncio.Event()

    def control() -> None:
        """Answer ``stats`` lines on stdin; stop when it closes."""
        for line in sys.stdin:
            if line.strip() == "stats":
                sys.stdout.write(json.dumps(dict(counters)) + "\n")
                sys.stdout.flush()
        loop.call_soon_threadsafe(stopped.set)

    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    threading.Thread(target=control, daemon=True).start()
    async with server:
        await stopped.wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1] if len(sys.argv) > 1 else ""))
