"""Polling Linear's GraphQL ``issues`` connection: issues updated since the checkpoint.

``issues(first, after, orderBy: updatedAt, filter: {updatedAt: {gte: $since}})`` pages
by cursor until ``pageInfo.hasNextPage`` is false. Linear does not document which way
``orderBy: updatedAt`` runs, so the checkpoint moves with each page only once the items
are seen to come oldest first, and otherwise when the poll completes (see
:class:`~okr_connectors.polling.Watermark`). A rate limit is an HTTP 429 or a GraphQL
error of type ``ratelimited``; both wait for ``Retry-After`` or the ``x-ratelimit-*-reset`` time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from okr_connectors.mapping import MappingSource
from okr_connectors.polling import Http, Page, Poller, PollerConfigError, PollFailed, json_object, parse_since
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore
from okr_connectors.vendors.linear import ISSUE_SELECTION, parse_graphql_issue

QUERY = f"""query OkrPollIssues($first: Int!, $after: String, $since: DateTimeOrDuration!) {{
  issues(first: $first, after: $after, orderBy: updatedAt, filter: {{updatedAt: {{gte: $since}}}}) {{
    nodes {{ {ISSUE_SELECTION} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


def is_rate_limited(response: httpx.Response) -> bool:
    """Whether a GraphQL answer is Linear's rate-limit error (sent with a 400 or a 200, not only as a 429)."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    return any(_error_type(error) == "ratelimited" for error in errors) if isinstance(errors, list) else False


def _error_type(error: object) -> str:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    if not isinstance(extensions, dict):
        return ""
    return str(extensions.get("type") or extensions.get("code") or "").lower()


class LinearPoller(Poller):
    """Polls every issue the API key can see."""

    source = "linear"

    def __init__(self, store: ConnectorStore, mapping: MappingSource, http: Http, *, url: str, api_key: str, **options: Any) -> None:
        super().__init__(store, mapping, http, parse_graphql_issue, **options)
        self.url = url
        self.api_key = api_key

    @classmethod
    def from_settings(
        cls, settings: ConnectorsSettings, store: ConnectorStore, mapping: MappingSource, http: Http, **options: Any
    ) -> LinearPoller:
        """A poller from the connectors' settings; `PollerConfigError` when there is no API key."""
        if settings.linear_api_key is None:
            raise PollerConfigError("Linear polling needs OKR_CONNECTORS_LINEAR_API_KEY")
        if settings.poll_since and "since" not in options:
            options["since"] = parse_since(settings.poll_since)
        return cls(store, mapping, http, url=settings.linear_url, api_key=settings.linear_api_key.get_secret_value(), **options)

    async def pages(self, since: datetime) -> AsyncIterator[Page]:
        """Connection pages, following `endCursor`."""
        cursor: str | None = None
        since_text = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        while True:
            variables = {"first": self.page_size, "after": cursor, "since": since_text}
            response = await self.http.request(
                "POST",
                self.url,
                json={"query": QUERY, "variables": variables},
                headers={"Authorization": self.api_key, "Accept": "application/json"},
                rate_limited=is_rate_limited,
            )
            nodes, following = _connection(json_object(response, "Linear GraphQL"))
            yield Page(nodes, following is None)
            if following is None:
                return
            if following == cursor:
                raise PollFailed(f"Linear answered the same endCursor twice ({following!r})")
            cursor = following


def _connection(body: dict[str, Any]) -> tuple[list[Any], str | None]:
    """The nodes of an `issues` answer and the cursor of the next page (None on the last)."""
    errors = body.get("errors")
    if errors:
        messages = (
            "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors) if isinstance(errors, list) else errors
        )
        raise PollFailed(f"Linear GraphQL answered errors: {messages}")
    data = body.get("data")
    issues = data.get("issues") if isinstance(data, dict) else None
    nodes = issues.get("nodes") if isinstance(issues, dict) else None
    info = issues.get("pageInfo") if isinstance(issues, dict) else None
    if not isinstance(nodes, list) or not isinstance(info, dict):
        raise PollFailed("Linear GraphQL answered without data.issues.nodes and pageInfo")
    if info.get("hasNextPage") is not True:
        return nodes, None
    cursor = info.get("endCursor")
    if not isinstance(cursor, str) or not cursor:
        raise PollFailed("Linear GraphQL answered hasNextPage without an endCursor")
    return nodes, cursor
