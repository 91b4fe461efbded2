"""The two ways out: Slack (``chat.postMessage`` with a bot token, or an incoming webhook) and email over SMTP.

Each sender either returns or raises :class:`SendFailed`, saying whether trying
again may help (rate limits, 5xx, connection trouble) and how long the server
asked to wait. Slack answers API errors as HTTP 200 ``{"ok": false, "error": …}``
and webhook errors as status codes with a plain-text reason; both become a
``SendFailed`` with that reason. Secrets (the bot token, webhook URLs, SMTP
password) come from configuration and never appear in a failure's reason; a
Slack URL whose host is not configured is refused before any request is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import httpx

RETRYABLE_SLACK_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""``ok: false`` errors that may pass on their own; every other Slack error needs a person (channel, scope, token, content)."""


class SendFailed(Exception):
    """A notification was not delivered: why, whether to try again, and after how long the server asked."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class SlackSender:
    """Posts to Slack's Web API with a bot token, or to incoming webhooks, only on the configured hosts."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        bot_token: str | None,
        api_base: str = "https://slack.com/api",
        allowed_hosts: frozenset[str],
        require_https: bool = True,
    ) -> None:
        self._client = client
        self._token = bot_token
        self._allowed = frozenset(host.lower() for host in allowed_hosts)
        self._require_https = require_https
        if reason := self._refusal(api_base):
            raise ValueError(f"Slack API base refused: {reason}")
        self._api_base = api_base.rstrip("/")

    async def post_message(self, channel: str, message: dict[str, Any]) -> str:
        """Post ``message`` (text, blocks, …) to a channel with ``chat.postMessage``; the message's ``ts``."""
        if not self._token:
            raise SendFailed("no Slack bot token configured", retryable=False)
        headers = {"Authorization": f"Bearer {self._token}"}
        response = await self._post(f"{self._api_base}/chat.postMessage", {**message, "channel": channel}, headers)
        self._raise_for_status(response)
        try:
            body = response.json()
        except ValueError:
            raise SendFailed("invalid_response: chat.postMessage answered without JSON", retryable=False) from None
        if not isinstance(body, dict) or body.get("ok") is not True:
            error = str(body.get("error", "unknown_error")) if isinstance(body, dict) else "invalid_response"
            raise SendFailed(error, retryable=error in RETRYABLE_SLACK_ERRORS, retry_after_s=_retry_after(response))
        return str(body.get("ts", ""))

    async def post_webhook(self, url: str, message: dict[str, Any]) -> None:
        """Post ``message`` to an incoming webhook; Slack answers a plain-text ``ok``."""
        if reason := self._refusal(url):
            raise SendFailed(f"webhook refused: {reason}", retryable=False)
        response = await self._post(url, message, {})
        self._raise_for_status(response)
        if response.text.strip() != "ok":
            raise SendFailed(f"unexpected webhook answer: {response.text.strip()[:200]}", retryable=False)

    def _refusal(self, url: str) -> str | None:
        parts = urlsplit(url)
        if self._require_https and parts.scheme != "https":
            return f"scheme {parts.scheme or 'missing'} is not https"
        if parts.scheme not in ("https", "http"):
            return f"scheme {parts.scheme or 'missing'} is not http(s)"
        host = (parts.hostname or "").lower()
        if host not in self._allowed:
            return f"host {host or 'missing'} is not an allowed Slack host"
        return None

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            # Never follow a redirect: it could carry the token or the message to a host nobody configured.
            return await self._client.post(url, json=body, headers=headers, follow_redirects=False)
        except httpx.TransportError as exc:
            host = urlsplit(url).hostname or "?"
            raise SendFailed(f"{type(exc).__name__} talking to {host}", retryable=True) from None

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        reason = f"HTTP {status}: {response.text.strip()[:200] or response.reason_phrase}"
        if status == 429:
            raise SendFailed(reason, retryable=True, retry_after_s=_retry_after(response))
        raise SendFailed(reason, retryable=status >= 500)


class EmailSender:
    """Sends multipart (text and HTML) email through one SMTP server, with STARTTLS and authentication when configured."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        sender: str,
        timeout: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._sender = sender
        self._timeout = timeout

    def build(self, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
        """The message: plain text, with an HTML alternative when given."""
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """Send one email to one address."""
        try:
            message = self.build(to, subject, text, html)
        except ValueError as exc:  # a header with a line break in it, say
            raise SendFailed(f"invalid email: {exc}", retryable=False) from None
        credentials: dict[str, Any] = {"username": self._username, "password": self._password} if self._username else {}
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                start_tls=self._starttls,
                timeout=self._timeout,
                **credentials,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _smtp_failure(exc.recipients) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _smtp_failure([exc]) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise SendFailed(f"SMTP {type(exc).__name__}: {exc}", retryable=True) from None
        except aiosmtplib.SMTPException as exc:  # STARTTLS or AUTH not offered: the configuration needs a person
            raise SendFailed(f"SMTP {type(exc).__name__}: {exc}", retryable=False) from None


def _smtp_failure(responses: Sequence[aiosmtplib.SMTPResponseException]) -> SendFailed:
    """4xx is transient (greylisting, a full mailbox queue), 5xx is final."""
    if not responses:
        return SendFailed("SMTP recipients refused", retryable=False)
    first = responses[0]
    return SendFailed(f"SMTP {first.code}: {first.message}", retryable=400 <= first.code < 500)


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
