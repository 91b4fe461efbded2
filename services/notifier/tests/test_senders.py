"""The senders against real servers on 127.0.0.1: an HTTP server answering like Slack, and an aiosmtpd SMTP server.

The HTTP server answers ``chat.postMessage`` by channel (``C_OK`` succeeds,
``C_MISSING`` is ``ok: false channel_not_found``, ``C_BUSY`` is a 429 with
``Retry-After``, ``C_BROKEN`` a 500, ``C_FLAKY`` an ``ok: false internal_error``)
and webhooks by path, recording every request it got.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from okr_notifier.senders import EmailSender, SendFailed, SlackSender
from okr_runtime.readiness import free_port

TOKEN = "xoxb-test-token"
OK_BODY = {"ok": True, "channel": "C_OK", "ts": "1503435956.000247", "message": {"text": "hi", "type": "message"}}


@dataclass
class SlackLike:
    """A fake Slack on a real socket: what it was asked, and where it listens."""

    base: str = ""
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


def _handler(slack: SlackLike) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            slack.requests.append((self.path, dict(self.headers.items()), body))
            if self.path == "/api/chat.postMessage":
                self._post_message(json.loads(body))
            elif self.path == "/hooks/T1/B1/ok":
                self._answer(200, "text/plain", b"ok")
            elif self.path == "/hooks/T1/B1/missing":
                self._answer(404, "text/plain", b"channel_not_found")
            elif self.path == "/hooks/T1/B1/moved":
                self._answer(302, "text/plain", b"", {"Location": f"{slack.base}/hooks/T1/B1/ok"})
            else:
                self._answer(404, "text/plain", b"no_service")

        def _post_message(self, body: dict[str, Any]) -> None:
            channel = body["channel"]
            if channel == "C_OK":
                self._json(200, OK_BODY)
            elif channel == "C_MISSING":
                self._json(200, {"ok": False, "error": "channel_not_found"})
            elif channel == "C_FLAKY":
                self._json(200, {"ok": False, "error": "internal_error"})
            elif channel == "C_BUSY":
                self._answer(429, "text/plain", b"", {"Retry-After": "7"})
            else:
                self._answer(500, "text/plain", b"server_error")

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._answer(status, "application/json; charset=utf-8", json.dumps(body).encode())

        def _answer(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def slack() -> Iterator[SlackLike]:
    found = SlackLike()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    found.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, follow_redirects=True) as found:  # the sender must refuse redirects all the same
        yield found


@pytest.fixture
def sender(slack: SlackLike, client: httpx.AsyncClient) -> SlackSender:
    return SlackSender(client, bot_token=TOKEN, api_base=f"{slack.base}/api", allowed_hosts=frozenset({"127.0.0.1"}), require_https=False)


async def test_a_posted_message_returns_its_ts_and_carries_the_bot_token(slack: SlackLike, sender: SlackSender) -> None:
    ts = await sender.post_message("C_OK", {"text": "Growth is at risk", "blocks": []})
    assert ts == "1503435956.000247"
    ((path, headers, body),) = slack.requests
    assert path == "/api/chat.postMessage"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(body) == {"channel": "C_OK", "text": "Growth is at risk", "blocks": []}


async def test_ok_false_is_a_permanent_failure_with_slacks_reason(sender: SlackSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.post_message("C_MISSING", {"text": "hi"})
    assert (failed.value.reason, failed.value.retryable) == ("channel_not_found", False)


async def test_a_transient_slack_error_may_be_retried(sender: SlackSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.post_message("C_FLAKY", {"text": "hi"})
    assert (failed.value.reason, failed.value.retryable) == ("internal_error", True)


async def test_a_429_is_retryable_after_slacks_retry_after(sender: SlackSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.post_message("C_BUSY", {"text": "hi"})
    assert failed.value.retryable
    assert failed.value.retry_after_s == 7.0


async def test_a_500_is_retryable(sender: SlackSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.post_message("C_BROKEN", {"text": "hi"})
    assert failed.value.retryable
    assert failed.value.retry_after_s is None
    assert "500" in failed.value.reason


async def test_an_unreachable_slack_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = SlackSender(
        client, bot_token=TOKEN, api_base=f"http://127.0.0.1:{port}/api", allowed_hosts=frozenset({"127.0.0.1"}), require_https=False
    )
    with pytest.raises(SendFailed) as failed:
        await sender.post_message("C_OK", {"text": "hi"})
    assert failed.value.retryable
    assert TOKEN not in failed.value.reason


async def test_without_a_bot_token_nothing_is_posted(slack: SlackLike, client: httpx.AsyncClient) -> None:
    sender = SlackSender(client, bot_token=None, api_base=f"{slack.base}/api", allowed_hosts=frozenset({"127.0.0.1"}), require_https=False)
    with pytest.raises(SendFailed) as failed:
        await sender.post_message("C_OK", {"text": "hi"})
    assert not failed.value.retryable
    assert slack.requests == []


async def test_a_webhook_answering_ok_succeeds(slack: SlackLike, sender: SlackSender) -> None:
    await sender.post_webhook(f"{slack.base}/hooks/T1/B1/ok", {"text": "hi"})
    ((path, headers, body),) = slack.requests
    assert path == "/hooks/T1/B1/ok"
    assert "Authorization" not in headers  # the bot token is for the Web API only
    assert json.loads(body) == {"text": "hi"}


async def test_a_webhook_error_is_permanent_with_its_reason(slack: SlackLike, sender: SlackSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.post_webhook(f"{slack.base}/hooks/T1/B1/missing", {"text": "hi"})
    assert not failed.value.retryable
    assert failed.value.reason == "HTTP 404: channel_not_found"


async def test_a_redirect_is_not_followed(slack: SlackLike, sender: SlackSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.post_webhook(f"{slack.base}/hooks/T1/B1/moved", {"text": "hi"})
    assert not failed.value.retryable
    assert [path for path, _, _ in slack.requests] == ["/hooks/T1/B1/moved"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/hooks/T1/B1/ok",  # the same server under a name nobody configured
        "http://127.0.0.1.evil.example:{port}/hooks/T1/B1/ok",
        "file:///etc/passwd",
    ],
)
async def test_a_webhook_on_a_host_not_configured_is_refused_without_a_request(slack: SlackLike, sender: SlackSender, url: str) -> None:
    port = slack.base.rsplit(":", 1)[1]
    with pytest.raises(SendFailed) as failed:
        await sender.post_webhook(url.format(port=port), {"text": "hi"})
    assert not failed.value.retryable
    assert "refused" in failed.value.reason
    assert slack.requests == []


async def test_plain_http_is_refused_unless_allowed(slack: SlackLike, client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="https"):
        SlackSender(client, bot_token=TOKEN, api_base=f"{slack.base}/api", allowed_hosts=frozenset({"127.0.0.1"}))
    strict = SlackSender(client, bot_token=TOKEN, allowed_hosts=frozenset({"slack.com", "hooks.slack.com", "127.0.0.1"}))
    with pytest.raises(SendFailed, match="https"):
        await strict.post_webhook(f"{slack.base}/hooks/T1/B1/ok", {"text": "hi"})
    assert slack.requests == []


class Mailbox:
    """An aiosmtpd handler: keeps what it accepts, refuses ``nobody@…`` for good and greylists ``later@…``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, _class=EmailMessage, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


async def test_an_email_is_multipart_with_text_and_html(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    sender = EmailSender("127.0.0.1", port, starttls=False, sender="okr@example.com", timeout=5)
    await sender.send("ops@example.com", "Growth is at risk", "Growth: 40% (at risk)", "<p><b>Growth</b>: 40% (at risk)</p>")
    (message,) = box.messages
    assert box.envelopes[0].rcpt_tos == ["ops@example.com"]
    assert (message["From"], message["To"], message["Subject"]) == ("okr@example.com", "ops@example.com", "Growth is at risk")
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert text.get_content().strip() == "Growth: 40% (at risk)"
    assert html.get_content().strip() == "<p><b>Growth</b>: 40% (at risk)</p>"


async def test_a_refused_recipient_is_a_permanent_failure(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    sender = EmailSender("127.0.0.1", port, starttls=False, sender="okr@example.com", timeout=5)
    with pytest.raises(SendFailed) as failed:
        await sender.send("nobody@example.com", "s", "t", "<p>t</p>")
    assert not failed.value.retryable
    assert failed.value.reason.startswith("SMTP 550")
    assert box.messages == []


async def test_a_greylisted_recipient_may_be_retried(mailbox: tuple[Mailbox, int]) -> None:
    _, port = mailbox
    sender = EmailSender("127.0.0.1", port, starttls=False, sender="okr@example.com", timeout=5)
    with pytest.raises(SendFailed) as failed:
        await sender.send("later@example.com", "s", "t", "<p>t</p>")
    assert failed.value.retryable
    assert failed.value.reason.startswith("SMTP 451")


async def test_an_unreachable_smtp_server_may_be_retried() -> None:
    sender = EmailSender("127.0.0.1", free_port(), starttls=False, sender="okr@example.com", timeout=5)
    with pytest.raises(SendFailed) as failed:
        await sender.send("ops@example.com", "s", "t", "<p>t</p>")
    assert failed.value.retryable


async def test_starttls_required_but_not_offered_is_permanent(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    sender = EmailSender("127.0.0.1", port, starttls=True, sender="okr@example.com", timeout=5)
    with pytest.raises(SendFailed) as failed:
        await sender.send("ops@example.com", "s", "t", "<p>t</p>")
    assert not failed.value.retryable
    assert box.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_the_sender_authenticates_when_given_a_username() -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)  # not handled: aiosmtpd answers 535 itself

    box = Mailbox()
    port = free_port()
    # Plain SMTP for the test only: the server would otherwise insist on TLS before AUTH.
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        good = EmailSender("127.0.0.1", port, username="okr", password="s3cret", starttls=False, sender="okr@example.com", timeout=5)
        await good.send("ops@example.com", "s", "t", "<p>t</p>")
        bad = EmailSender("127.0.0.1", port, username="okr", password="wrong", starttls=False, sender="okr@example.com", timeout=5)
        with pytest.raises(SendFailed) as failed:
            await bad.send("ops@example.com", "s", "t", "<p>t</p>")
    finally:
        controller.stop()
    assert len(box.messages) == 1
    assert logins[0] == (b"okr", b"s3cret")
    assert not failed.value.retryable
    assert "wrong" not in failed.value.reason
