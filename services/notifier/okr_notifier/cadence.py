"""The cadence: weekly check-in reminders, the bi-weekly sync digest and the monthly executive readout.

Each occurrence has a key (``reminder:<portfolio>:<ISO week>``, ``digest:<portfolio>:<sync day>``,
``readout:<portfolio>:<month>``) under which its messages go into the send log, so a
restart or a second tick in the same period sends nothing again; the dispatcher delivers
them like alert notifications, with the same retries and dead letters. The content comes
from drift's and rollup's read APIs at the moment the occurrence is due.
"""

from __future__ import annotations

import asyncio
import html as html_lib
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from jinja2 import Environment, select_autoescape

from okr_notifier.messages import EmailContent, escape_mrkdwn, kr_link, node_link, truncate
from okr_notifier.readout import ReadoutInput, decisions, render_readout
from okr_notifier.routing import Cadence, Person, PortfolioRouting, RoutingConfig
from okr_notifier.sendlog import Send, SendLog

log = logging.getLogger(__name__)
_TEMPLATES = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

DIGEST_HTML = _TEMPLATES.from_string(
    """<h2>{{ name }}: exceptions for the portfolio sync</h2>
<p>{{ counts.key_results_with_exceptions }} of {{ counts.live_key_results }} live key results need attention;
{{ counts.skipped_green }} on track are not listed.</p>
{% for product in products %}<h3>{{ product.product_id or "Portfolio" }}</h3><ul>
{% for node in product.nodes %}<li><a href="{{ link(node) }}">{{ node.title or node.node_id }}</a> ({{ node.owner or "no owner" }},
confidence {{ "%.2f"|format(node.confidence) if node.confidence is not none else "unknown" }}):
{% for alert in node.alerts %}<br>{{ alert.severity }} · {{ alert.summary }} — {{ alert.asked }}{% endfor %}
{% if node.recovery_plan %}<br>Recovery: {{ node.recovery_plan.option }}, owner {{ node.recovery_plan.owner }},
decision needed: {{ node.recovery_plan.decision_needed }}{% endif %}</li>
{% endfor %}</ul>{% endfor %}"""
)


class CadenceFailed(Exception):
    """A read API did not answer as expected; the occurrence is tried again at the next tick."""


@dataclass(frozen=True)
class ReadApis:
    """Drift's and rollup's read APIs, with the notifier's bearer token."""

    client: httpx.AsyncClient
    drift_url: str
    rollup_url: str
    token: str

    async def get(self, base: str, path: str, **params: Any) -> dict[str, Any]:
        """One JSON document; `CadenceFailed` with the reason otherwise."""
        url = f"{base.rstrip('/')}{path}"
        try:
            response = await self.client.get(url, params={k: v for k, v in params.items() if v is not None}, headers=self._auth())
        except httpx.TransportError as exc:
            raise CadenceFailed(f"GET {url}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise CadenceFailed(f"GET {url} answered {response.status_code}: {response.text[:300]}")
        found: dict[str, Any] = response.json()
        return found

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class CadenceRunner:
    """Queues each due occurrence's messages once; `run` ticks every few minutes."""

    def __init__(self, routing: RoutingConfig, apis: ReadApis, sends: SendLog, clock: Callable[[], datetime]) -> None:
        self.routing = routing
        self.apis = apis
        self.sends = sends
        self.clock = clock

    async def run(self, interval_s: float = 300) -> None:
        """Tick until cancelled; a failing portfolio is logged and tried again next tick."""
        while True:
            await self.run_once()
            await asyncio.sleep(interval_s)

    async def run_once(self) -> int:
        """Queue what is due now for every portfolio with a cadence; how many messages were queued."""
        queued = 0
        now = self.clock()
        for pid, portfolio in self.routing.portfolios.items():
            if portfolio.cadence is None:
                continue
            for step in (self._reminders, self._digest, self._readout):
                try:
                    queued += await step(pid, portfolio, portfolio.cadence, now)
                except CadenceFailed as exc:
                    log.warning("cadence of %s: %s; trying again at the next tick", pid, exc)
        return queued

    async def _once(self, key: str, build: Callable[[], Awaitable[list[Send]]]) -> int:
        if await asyncio.to_thread(self.sends.known, key):
            return 0
        sends = await build()
        return await asyncio.to_thread(self.sends.enqueue, sends, now=self.clock()) if sends else 0

    async def _reminders(self, pid: str, portfolio: PortfolioRouting, cadence: Cadence, now: datetime) -> int:
        week_start = datetime.combine(now.date() - timedelta(days=now.weekday()), time(0), UTC)
        due = week_start + timedelta(days=cadence.reminder_weekday, hours=cadence.reminder_hour)
        if not cadence.reminders or now < due:
            return 0
        year, week, _ = now.isocalendar()
        key = f"reminder:{pid}:{year}-W{week:02d}"

        async def build() -> list[Send]:
            rows = (await self.apis.get(self.apis.drift_url, f"/v1/portfolios/{pid}/check-ins", before=week_start.isoformat()))[
                "key_results"
            ]
            owed: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                owed[row["owner"]].append(row)
            return [s for owner, krs in sorted(owed.items()) if (s := self._reminder(key, pid, portfolio.people.get(owner), owner, krs))]

        return await self._once(key, build)

    def _reminder(self, key: str, pid: str, person: Person | None, owner: str, krs: list[dict[str, Any]]) -> Send | None:
        titles = [f"{kr['title']} ({kr['kr_id']})" for kr in krs]
        if person is not None and person.slack_user:
            lines = "\n".join(
                f"• <{self._link(pid, kr['kr_id'])}|{escape_mrkdwn(truncate(t, 200))}>" for kr, t in zip(krs, titles, strict=True)
            )
            text = f"Weekly check-in: {len(krs)} key result(s) have no check-in this week.\n{lines}"
            payload: dict[str, Any] = {"channel": person.slack_user, "message": {"text": truncate(text, 3000)}}
            return Send(alert_id=key, state="reminder", recipient=owner, channel="slack", address=person.slack_user, payload=payload)
        if person is not None and person.email:
            body = "\n".join(f"- {t}: {self._link(pid, kr['kr_id'])}" for kr, t in zip(krs, titles, strict=True))
            text = f"These key results have no check-in this week (15 minutes each: confidence, what changed, one blocker):\n{body}\n"
            subject = f"[okrstream] Weekly check-in due: {len(krs)} key result(s)"
            mail = EmailContent(subject=subject, text=text, html=f"<pre>{html_lib.escape(text)}</pre>")
            return Send(
                alert_id=key, state="reminder", recipient=owner, channel="email", address=person.email, payload=_mail(person.email, mail)
            )
        log.warning("reminder %s: %s has no Slack id or e-mail in the routing; skipped", key, owner)
        return None

    async def _digest(self, pid: str, portfolio: PortfolioRouting, cadence: Cadence, now: datetime) -> int:
        elapsed = (now.date() - cadence.digest_anchor).days
        if not cadence.digest_to or elapsed < 0:
            return 0
        sync_day = cadence.digest_anchor + timedelta(days=elapsed - elapsed % cadence.digest_every_days)
        key = f"digest:{pid}:{sync_day.isoformat()}"

        async def build() -> list[Send]:
            exceptions = await self.apis.get(self.apis.drift_url, f"/v1/portfolios/{pid}/exceptions")
            name = cadence.name or pid
            base = self.routing.link_base
            html = DIGEST_HTML.render(
                name=name,
                counts=exceptions["counts"],
                products=exceptions["products"],
                link=lambda node: node_link(base, pid, node["node_id"], node["node_kind"]),
            )
            mail = EmailContent(subject=f"[okrstream] {name}: sync exceptions for {sync_day:%d %b %Y}", text=_plain(html), html=html)
            return self._mails(key, "digest", portfolio, cadence.digest_to, mail)

        return await self._once(key, build)

    async def _readout(self, pid: str, portfolio: PortfolioRouting, cadence: Cadence, now: datetime) -> int:
        if not cadence.readout_to or now.day < cadence.readout_day:
            return 0
        key = f"readout:{pid}:{now:%Y-%m}"
        month = (now.replace(day=1) - timedelta(days=1)).strftime("%B %Y")

        async def build() -> list[Send]:
            scorecard = await self.apis.get(self.apis.rollup_url, f"/v1/portfolios/{pid}/scorecard")
            exceptions = await self.apis.get(self.apis.drift_url, f"/v1/portfolios/{pid}/exceptions", minimum_severity="info")
            reallocations, questions = decisions(exceptions)
            readout = ReadoutInput.from_apis(cadence.name or pid, month, scorecard, exceptions, reallocations, questions)
            return self._mails(key, "readout", portfolio, cadence.readout_to, render_readout(readout))

        return await self._once(key, build)

    def _mails(self, key: str, state: str, portfolio: PortfolioRouting, to: tuple[str, ...], mail: EmailContent) -> list[Send]:
        sends = []
        for principal in to:
            person = portfolio.people.get(principal)
            if person is None or not person.email:
                log.warning("%s: %s has no e-mail in the routing; skipped", key, principal)
                continue
            sends.append(
                Send(
                    alert_id=key, state=state, recipient=principal, channel="email", address=person.email, payload=_mail(person.email, mail)
                )
            )
        return sends

    def _link(self, pid: str, node_id: str) -> str:
        return kr_link(self.routing.link_base, pid, node_id)


def _mail(to: str, mail: EmailContent) -> dict[str, Any]:
    return {"to": to, "subject": mail.subject, "text": mail.text, "html": mail.html}


def _plain(html: str) -> str:
    """A plain-text part from the digest's HTML: tags dropped, entities kept readable."""
    text = re.sub(r"<br>", "\n  ", html)
    text = re.sub(r"<li>", "\n- ", text)
    text = re.sub(r"<h[23]>", "\n\n", text)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", text)).strip() + "\n"
