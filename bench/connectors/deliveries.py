"""The workload: signed Jira `jira:issue_updated` deliveries, each a different issue, shaped like the recorded test payload."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[2] / "services" / "connectors" / "tests" / "payloads" / "jira_issue_updated_status_to_done.json"
FIRST_ISSUE_ID = 500_000


@dataclass(frozen=True)
class Workload:
    """Which deliveries to send: `count` issues from `first` on, of a run (`tag`) whose changes start at `base`."""

    tag: str
    project: str
    secret: str
    base: datetime
    first: int
    count: int

    def issue_ids(self) -> list[str]:
        """The Jira issue ids of these deliveries (what the published events carry as `external_id`)."""
        return [str(FIRST_ISSUE_ID + i) for i in range(self.first, self.first + self.count)]


@dataclass(frozen=True)
class Delivery:
    """One webhook request: the issue it is about, its body as sent, and its headers (signature, delivery id)."""

    issue_id: str
    body: bytes
    headers: dict[str, str]


def build(workload: Workload) -> list[Delivery]:
    """The signed requests, body compact as Jira sends it; none repeats another's delivery id, issue or update time."""
    template = json.loads(TEMPLATE.read_text())
    found = []
    for n, issue_id in zip(range(workload.first, workload.first + workload.count), workload.issue_ids(), strict=True):
        body = _body(template, workload, n, issue_id)
        signature = "sha256=" + hmac.new(workload.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature": signature,
            "X-Atlassian-Webhook-Identifier": f"bench-{workload.tag}-{n}",
        }
        found.append(Delivery(issue_id, body, headers))
    return found


def _body(template: dict[str, Any], workload: Workload, n: int, issue_id: str) -> bytes:
    """The recorded issue, renamed into the benchmark's project, with its own id, key, summary and update time."""
    body = copy.deepcopy(template)
    updated = workload.base + timedelta(milliseconds=n)
    key = f"{workload.project}-{n + 1}"
    issue = body["issue"]
    issue.update(id=issue_id, key=key, self=f"https://bench.atlassian.net/rest/api/2/issue/{issue_id}")
    fields = issue["fields"]
    fields["project"]["key"] = workload.project
    fields["summary"] = f"Benchmark issue {n + 1} of run {workload.tag}"
    fields["updated"] = fields["resolutiondate"] = _jira_time(updated)
    body["timestamp"] = int(updated.timestamp() * 1000)
    return json.dumps(body, separators=(",", ":")).encode()


def _jira_time(at: datetime) -> str:
    """A time as Jira's v2 webhooks write it: `2019-02-15T19:15:40.477+0000`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"
