"""Polling Jira Cloud's ``GET /rest/api/3/search/jql``: issues updated since the checkpoint, oldest first.

The JQL is ``(<scope>) AND updated >= "yyyy-MM-dd HH:mm" ORDER BY updated ASC``. JQL
dates have minute precision and are read in the API user's time zone, so the bound
is the checkpoint less the overlap, rendered in ``jira_timezone`` and rounded down to
the minute. Pages follow ``nextPageToken`` until it is missing or null, or ``isLast``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from okr_connectors.mapping import MappingSource
from okr_connectors.polling import Http, Page, Poller, PollerConfigError, PollFailed, json_object, parse_since
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore
from okr_connectors.vendors.jira import parse_search_issue

SEARCH_PATH = "/rest/api/3/search/jql"
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class JiraPoller(Poller):
    """Polls the issues of the configured JQL scope."""

    source = "jira"
    oldest_first = True  # ORDER BY updated ASC

    def __init__(
        self,
        store: ConnectorStore,
        mapping: MappingSource,
        http: Http,
        *,
        url: str,
        email: str,
        api_token: str,
        scope: str = "",
        timezone: str = "UTC",
        **options: Any,
    ) -> None:
        super().__init__(store, mapping, http, parse_search_issue, **options)
        if _ORDER_BY.search(scope):
            raise PollerConfigError("OKR_CONNECTORS_JIRA_JQL must not have an ORDER BY: the poller orders by `updated`")
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PollerConfigError(f"OKR_CONNECTORS_JIRA_TIMEZONE {timezone!r} is not a known time zone") from exc
        self.url = url.rstrip("/") + SEARCH_PATH
        self.auth = httpx.BasicAuth(email, api_token)
        self.scope = scope.strip()

    @classmethod
    def from_settings(
        cls, settings: ConnectorsSettings, store: ConnectorStore, mapping: MappingSource, http: Http, **options: Any
    ) -> JiraPoller:
        """A poller from the connectors' settings; `PollerConfigError` names what is missing."""
        missing = [
            name
            for name, value in (
                ("OKR_CONNECTORS_JIRA_URL", settings.jira_url),
                ("OKR_CONNECTORS_JIRA_EMAIL", settings.jira_email),
                ("OKR_CONNECTORS_JIRA_API_TOKEN", settings.jira_api_token),
            )
            if not value
        ]
        if missing or settings.jira_url is None or settings.jira_email is None or settings.jira_api_token is None:
            raise PollerConfigError(f"Jira polling needs {', '.join(missing)}")
        if settings.poll_since and "since" not in options:
            options["since"] = parse_since(settings.poll_since)
        return cls(
            store,
            mapping,
            http,
            url=settings.jira_url,
            email=settings.jira_email,
            api_token=settings.jira_api_token.get_secret_value(),
            scope=settings.jira_jql,
            timezone=settings.jira_timezone,
            **options,
        )

    def jql(self, since: datetime) -> str:
        """The search: the scope, bounded below by `since` in the Jira user's time zone (minute precision), oldest first."""
        window = f'updated >= "{since.astimezone(self.zone):%Y-%m-%d %H:%M}" ORDER BY updated ASC'
        return f"({self.scope}) AND {window}" if self.scope else window

    async def pages(self, since: datetime) -> AsyncIterator[Page]:
        """Search pages, following `nextPageToken`."""
        params: dict[str, str | int] = {"jql": self.jql(since), "fields": "*navigable", "maxResults": self.page_size}
        token: str | None = None
        while True:
            query = {**params, "nextPageToken": token} if token else params
            response = await self.http.request("GET", self.url, params=query, auth=self.auth, headers={"Accept": "application/json"})
            body = json_object(response, "Jira search")
            issues = body.get("issues")
            if not isinstance(issues, list):
                raise PollFailed("Jira search answered without an `issues` list")
            following = body.get("nextPageToken")
            last = not following or body.get("isLast") is True
            yield Page(issues, last)
            if last:
                return
            if following == token or not isinstance(following, str):
                raise PollFailed(f"Jira search answered an unusable nextPageToken {following!r}")
            token = following
