"""The demo that `make run` loads: Acme Commerce, ten weeks into its quarter (docs/demo.md).

``python deploy/local/demo/load.py prepare STATE``
    Development tokens for the demo's people (``STATE/dev-tokens.txt``, hashes in
    ``STATE/checkins-tokens.json``) and webhook secrets (``STATE/demo/webhook-secrets.env``),
    each made once per checkout. Run it before the services start: they read the tokens at start-up.
``python deploy/local/demo/load.py load STATE --checkins URL --connectors URL --drift URL``
    Applies ``acme.yaml`` with ``okr apply``, records ``history.yaml``'s ten weeks of check-ins
    through the check-in API (each with its past ``occurred_at``), files the recovery plans, sends
    the Jira, Linear and Slack traffic to the connectors' webhooks signed as the vendors sign it,
    and waits until drift shows the delivery signal and its alerts.
``python deploy/local/demo/load.py captures STATE``
    Waits (up to 20 s) until the notifier's first e-mail and Slack post were captured.

Everything is idempotent: the cycle's dates are read back from the recorded portfolio, a
check-in already in a key result's history is not sent again, every request carries a fixed
``Idempotency-Key``, and the webhooks' delivery ids are fixed (the connectors drop repeats).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from string import Template
from typing import Any

import httpx
import yaml

from okr_runtime.tokens import issue

HERE = Path(__file__).resolve().parent
CYCLE = "demo-quarter"
WEEKS_BEFORE_FIRST_RUN = 10
CYCLE_DAYS = 91
PEOPLE: dict[str, list[str]] = {
    "cpo@example.com": ["portfolio_lead"],
    "auditor@example.com": ["auditor"],
    "notifier@example.com": ["auditor"],  # the notifier's read-only token for digests and the readout
    **{f"{name}@example.com": [] for name in ("lena", "omar", "priya", "tomas", "mei", "sam")},
}
SECRETS = ("OKR_CONNECTORS_JIRA_WEBHOOK_SECRET", "OKR_CONNECTORS_LINEAR_WEBHOOK_SECRET", "OKR_CONNECTORS_SLACK_SIGNING_SECRET")
NAMESPACE = uuid.UUID("6f1c3a52-5d0e-4c59-9a5f-0d3c6c2b7e11")
"""For the demo's fixed vendor ids and delivery ids (uuid5)."""


def say(text: str) -> None:
    """One progress line, at once."""
    print(text, flush=True)


# --- prepare ------------------------------------------------------------------------------------------------


def prepare(state: Path) -> None:
    """Tokens for every demo person that has none yet, and the webhook secrets."""
    state.mkdir(parents=True, exist_ok=True)
    listing = state / "dev-tokens.txt"
    known = dev_tokens(state)
    os.umask(0o077)
    with listing.open("a") as out:
        for person, roles in PEOPLE.items():
            if person not in known:
                out.write(f"{person} {issue(state / 'checkins-tokens.json', person, roles, [])}\n")
    env = state / "demo" / "webhook-secrets.env"
    if not env.exists():
        env.parent.mkdir(parents=True, exist_ok=True)
        env.write_text("".join(f"{name}={secrets.token_hex(24)}\n" for name in SECRETS))


def dev_tokens(state: Path) -> dict[str, str]:
    """Principal → token, from ``dev-tokens.txt``."""
    listing = state / "dev-tokens.txt"
    lines = listing.read_text().splitlines() if listing.exists() else []
    return {parts[0]: parts[1] for parts in (line.split() for line in lines) if len(parts) == 2}


# --- load ---------------------------------------------------------------------------------------------------


class Demo:
    """The running APIs, the people's tokens, and the quarter's calendar."""

    def __init__(self, state: Path, urls: dict[str, str], portfolio: str = "acme") -> None:
        self.state = state
        self.portfolio = portfolio
        self.urls = urls
        self.tokens = dev_tokens(state)
        self.starts_on = date.today()

    def api(self, service: str, person: str) -> httpx.Client:
        """A client of one API as one person."""
        return httpx.Client(base_url=self.urls[service], headers={"Authorization": f"Bearer {self.tokens[person]}"}, timeout=30)

    def day(self, n: float, hour: int = 9) -> datetime:
        """Day `n` of the quarter (day 0 is its first) at `hour` UTC."""
        return datetime.combine(self.starts_on, clock_time(hour), UTC) + timedelta(days=n)

    def recorded_cycle_start(self) -> date | None:
        """The demo cycle's first day as recorded, or None before the first run."""
        with self.api("checkins", "cpo@example.com") as api:
            answer = api.get(f"/v1/portfolios/{self.portfolio}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        cycles = [c for c in answer.json().get("cycles", []) if c.get("cycle_id") == CYCLE]
        return date.fromisoformat(cycles[0]["starts_on"]) if cycles else None

    def apply(self) -> None:
        """``okr apply`` the document, its cycle dated ten weeks back on the first run."""
        recorded = self.recorded_cycle_start()
        self.starts_on = recorded or datetime.now(UTC).date() - timedelta(weeks=WEEKS_BEFORE_FIRST_RUN)
        ends_on = self.starts_on + timedelta(days=CYCLE_DAYS - 1)
        text = Template((HERE / "acme.yaml").read_text()).substitute(
            PORTFOLIO_ID=self.portfolio, CYCLE_STARTS_ON=self.starts_on, CYCLE_ENDS_ON=ends_on
        )
        rendered = self.state / "demo" / f"{self.portfolio}.yaml"
        rendered.parent.mkdir(parents=True, exist_ok=True)
        rendered.write_text(text)
        say(f"  applying {rendered} (quarter {self.starts_on} to {ends_on}) with okr apply")
        command = [str(Path(sys.executable).with_name("okr")), "apply", str(rendered)]
        command += ["--checkins", self.urls["checkins"], "--connectors", self.urls["connectors"]]
        result = subprocess.run(command, env={**os.environ, "OKR_TOKEN": self.tokens["cpo@example.com"]}, capture_output=True, text=True)
        summary = [line for line in result.stdout.splitlines() if line.strip()]
        say("  " + (summary[-1].strip() if summary else "applied"))
        if result.returncode != 0:
            raise SystemExit(f"okr apply failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def history(self, story: dict[str, Any]) -> None:
        """Each key result's weekly check-ins, by its owner, with the week's date as `occurred_at`."""
        owners = self.owners()
        sent = kept = 0
        for kr_id, entry in story["check_ins"].items():
            with self.api("checkins", owners[kr_id]) as api:
                done = self.recorded_check_ins(api, kr_id)
                for week, (confidence, value, what_changed) in enumerate(entry["rows"], start=1):
                    at = self.day(7 * week - 1)
                    if at in done:
                        kept += 1
                        continue
                    body = {"confidence": confidence, "what_changed": what_changed, "occurred_at": at.isoformat()}
                    if value is not None:
                        body["value"] = value
                    if blocker := entry.get("blockers", {}).get(week):
                        body["blocker"] = blocker
                    post(api, f"/v1/portfolios/{self.portfolio}/key-results/{kr_id}/check-ins", body, f"demo-{kr_id}-week-{week}")
                    sent += 1
        say(f"  check-ins: {sent} recorded, {kept} already there ({len(story['check_ins'])} key results, 10 weeks each)")
        for kr_id, plan in story.get("recovery_plans", {}).items():
            with self.api("checkins", owners[kr_id]) as api:
                current = api.get(f"/v1/portfolios/{self.portfolio}/key-results/{kr_id}").json()
                if current.get("recovery_plan"):
                    continue
                post(api, f"/v1/portfolios/{self.portfolio}/key-results/{kr_id}/recovery-plans", plan, f"demo-{kr_id}-plan")
                say(f"  recovery plan filed for {kr_id} ({plan['option']})")

    def owners(self) -> dict[str, str]:
        """Key result id → owner, as recorded."""
        with self.api("checkins", "cpo@example.com") as api:
            return {kr["kr_id"]: kr["owner"] for kr in api.get(f"/v1/portfolios/{self.portfolio}").json()["key_results"]}

    def recorded_check_ins(self, api: httpx.Client, kr_id: str) -> set[datetime]:
        """When the key result's recorded check-ins happened."""
        found: set[datetime] = set()
        after: int | None = 0
        while after is not None:
            page = api.get(f"/v1/portfolios/{self.portfolio}/key-results/{kr_id}/history", params={"after": after, "limit": 500}).json()
            found.update(datetime.fromisoformat(r["occurred_at"]) for r in page["items"] if r["type"] == "CheckInRecorded")
            after = page.get("next")
        return found

    def traffic(self, story: dict[str, Any], secret: Callable[[str], bytes]) -> None:
        """Jira, Linear and Slack webhooks, each signed with its vendor's scheme."""
        outcomes: dict[str, int] = {}
        with httpx.Client(base_url=self.urls["connectors"], timeout=30) as hooks:
            for item in story["jira"]:
                body = raw(jira_issue(self, item))
                headers = {
                    "X-Hub-Signature": "sha256=" + hmac.new(secret("OKR_CONNECTORS_JIRA_WEBHOOK_SECRET"), body, hashlib.sha256).hexdigest(),
                    "X-Atlassian-Webhook-Identifier": fixed_id("jira-delivery", item["key"]),
                }
                count(outcomes, send(hooks, "/webhooks/jira", body, headers))
            for item in story["linear"]:
                body = raw(linear_issue(self, item))
                headers = {
                    "Linear-Signature": hmac.new(secret("OKR_CONNECTORS_LINEAR_WEBHOOK_SECRET"), body, hashlib.sha256).hexdigest(),
                    "Linear-Delivery": fixed_id("linear-delivery", item["identifier"]),
                    "Linear-Event": "Issue",
                }
                count(outcomes, send(hooks, "/webhooks/linear", body, headers))
            for number, item in enumerate(story["slack"]):
                body = raw(slack_message(self, item, number))
                stamp = str(int(time.time()))
                signed = hmac.new(secret("OKR_CONNECTORS_SLACK_SIGNING_SECRET"), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
                headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + signed.hexdigest()}
                count(outcomes, send(hooks, "/webhooks/slack", body, headers))
        told = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
        say(f"  webhooks: {len(story['jira'])} Jira, {len(story['linear'])} Linear, {len(story['slack'])} Slack ({told})")

    def wait_for_drift(self, timeout_s: float = 90) -> None:
        """Until drift shows delivery on payment-failures and at least one warning alert."""
        deadline = time.monotonic() + timeout_s
        with self.api("drift", "cpo@example.com") as api:
            while True:
                delivery = api.get(f"/v1/portfolios/{self.portfolio}/key-results/payment-failures/delivery")
                alerts = api.get(f"/v1/portfolios/{self.portfolio}/alerts")
                items = alerts.json().get("items", []) if alerts.status_code == 200 else []
                rules = sorted({a["rule"] for a in items})
                if delivery.status_code == 200 and delivery.json().get("items") and "busy_but_flat" in rules:
                    say(f"  drift: {len(items)} open alerts ({', '.join(rules)})")
                    return
                if time.monotonic() > deadline:
                    say(f"  drift has not caught up after {timeout_s:.0f} s (alerts so far: {', '.join(rules) or 'none'}); going on")
                    return
                time.sleep(1)


def post(api: httpx.Client, path: str, body: dict[str, Any], key: str) -> None:
    """One command with a fixed idempotency key; anything but 201 stops the load."""
    answer = api.post(path, json=body, headers={"Idempotency-Key": key})
    if answer.status_code != 201:
        raise SystemExit(f"POST {path} answered {answer.status_code}: {answer.text}")


def send(hooks: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> str:
    """Deliver one webhook; the connectors' answer (accepted, duplicate, ignored)."""
    answer = hooks.post(path, content=body, headers={"Content-Type": "application/json", **headers})
    if answer.status_code != 200:
        raise SystemExit(f"POST {path} answered {answer.status_code}: {answer.text}")
    return str(answer.json().get("status", "accepted"))


def count(outcomes: dict[str, int], outcome: str) -> None:
    """Tally one webhook's outcome."""
    outcomes[outcome] = outcomes.get(outcome, 0) + 1


def raw(document: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(document, separators=(",", ":")).encode()


def fixed_id(kind: str, name: str) -> str:
    """A stable id for the demo's vendor objects and deliveries."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def jira_stamp(moment: datetime) -> str:
    """Jira's time format (``2026-10-14T09:00:00.000+0000``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def jira_issue(demo: Demo, item: dict[str, Any]) -> dict[str, Any]:
    """A ``jira:issue_updated`` admin webhook (v2 representation) for an issue's latest change."""
    site = "https://acme.atlassian.net"
    done = "done_day" in item
    changed = demo.day(item.get("done_day", item["day"]), hour=15)
    number = item["key"].split("-")[1]
    status = (
        {"id": "10002", "name": "Done", "statusCategory": {"id": 3, "key": "done", "name": "Done"}}
        if done
        else {
            "id": "3",
            "name": item.get("status", "In Progress"),
            "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"},
        }
    )
    fields: dict[str, Any] = {
        "summary": item["summary"],
        "issuetype": {"id": "10001", "name": item["type"], "subtask": False},
        "project": {"id": "10000", "key": "PAY", "name": "Payments", "projectTypeKey": "software"},
        "status": status,
        "labels": [],
        "assignee": {"accountId": "5c5f880629be9642ba5293" + number[-2:], "displayName": "Payments squad"},
        "created": jira_stamp(demo.day(item["day"], hour=10)),
        "updated": jira_stamp(changed),
        "resolution": {"id": "10000", "name": "Done"} if done else None,
        "resolutiondate": jira_stamp(changed) if done else None,
        "statuscategorychangedate": jira_stamp(changed),
    }
    if "parent" in item:
        fields["parent"] = {"id": "1" + item["parent"].split("-")[1], "key": item["parent"], "fields": {"summary": "Smart retries"}}
    transition = [
        {
            "field": "resolution",
            "fieldtype": "jira",
            "fieldId": "resolution",
            "from": None,
            "fromString": None,
            "to": "10000",
            "toString": "Done",
        },
        {
            "field": "status",
            "fieldtype": "jira",
            "fieldId": "status",
            "from": "3",
            "fromString": "In Progress",
            "to": "10002",
            "toString": "Done",
        },
    ]
    return {
        "timestamp": ms(changed),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "5c5f880629be9642ba529340", "displayName": "Lena", "active": True, "timeZone": "Europe/Berlin"},
        "issue": {"id": "1" + number, "self": f"{site}/rest/api/2/issue/1{number}", "key": item["key"], "fields": fields},
        "changelog": {"id": str(ms(changed)), "items": transition if done else []},
    }


def linear_issue(demo: Demo, item: dict[str, Any]) -> dict[str, Any]:
    """A Linear ``Issue`` webhook (``update`` when it changed state, ``create`` otherwise), timestamped now as Linear signs it."""
    created = demo.day(item["day"], hour=11)
    done = "done_day" in item
    updated = demo.day(item["done_day"], hour=16) if done else created
    state = (
        {"id": fixed_id("linear-state", "done"), "name": "Done", "type": "completed", "color": "#5e6ad2"}
        if done
        else {
            "id": fixed_id("linear-state", "started"),
            "name": "In Progress",
            "type": item.get("state", "started"),
            "color": "#f2c94c",
        }
    )
    team, number = item["identifier"].split("-")
    data: dict[str, Any] = {
        "id": fixed_id("linear-issue", item["identifier"]),
        "createdAt": created.isoformat().replace("+00:00", "Z"),
        "updatedAt": updated.isoformat().replace("+00:00", "Z"),
        "completedAt": updated.isoformat().replace("+00:00", "Z") if done else None,
        "number": int(number),
        "identifier": item["identifier"],
        "title": item["title"],
        "priority": 2,
        "priorityLabel": "High",
        "stateId": state["id"],
        "state": state,
        "teamId": fixed_id("linear-team", team),
        "team": {"id": fixed_id("linear-team", team), "key": team, "name": team.title()},
        "labelIds": [fixed_id("linear-label", name) for name in item["labels"]],
        "labels": [{"id": fixed_id("linear-label", name), "name": name, "color": "#26b5ce"} for name in item["labels"]],
        "url": f"https://linear.app/acme/issue/{item['identifier'].lower()}",
    }
    body: dict[str, Any] = {
        "action": "update" if done else "create",
        "actor": {"id": fixed_id("linear-user", team), "name": f"{team} squad", "type": "user"},
        "createdAt": updated.isoformat().replace("+00:00", "Z"),
        "data": data,
        "url": data["url"],
        "type": "Issue",
        "organizationId": fixed_id("linear-org", "acme"),
        "webhookTimestamp": ms(datetime.now(UTC)),
        "webhookId": fixed_id("linear-webhook", "acme"),
    }
    if done:
        body["updatedFrom"] = {"updatedAt": created.isoformat().replace("+00:00", "Z"), "stateId": fixed_id("linear-state", "started")}
    return body


def slack_message(demo: Demo, item: dict[str, Any], number: int) -> dict[str, Any]:
    """A Slack Events API ``event_callback`` for a person's message in a channel."""
    ts = f"{demo.day(item['day'], hour=14).timestamp():.0f}.{number:06d}"
    event = {
        "user": item["user"],
        "type": "message",
        "ts": ts,
        "client_msg_id": fixed_id("slack-message", ts),
        "text": item["text"],
        "team": "T0ACME0001",
        "channel": item["channel"],
        "event_ts": ts,
        "channel_type": "channel",
    }
    return {
        "token": "demo-verification-token-unused",
        "team_id": "T0ACME0001",
        "api_app_id": "A0ACMEOKR1",
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + fixed_id("slack-event", ts).replace("-", "")[:10].upper(),
        "event_time": int(float(ts)),
        "authorizations": [{"team_id": "T0ACME0001", "user_id": "U0ACMEBOT1", "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }


# --- captures -----------------------------------------------------------------------------------------------


def wait_for_captures(state: Path, timeout_s: float) -> None:
    """Until one e-mail and one Slack post were captured, or the timeout (a rerun has nothing new to send)."""
    deadline = time.monotonic() + timeout_s
    while True:
        mails, posts = len(list((state / "mail").glob("*.eml"))), len(list((state / "slack").glob("*.json")))
        if (mails and posts) or time.monotonic() > deadline:
            say(f"  notifier: {mails} e-mails in {state / 'mail'}/, {posts} Slack posts in {state / 'slack'}/ so far")
            if not (mails or posts):
                say("  (the notifier sends each message once: on a rerun, what it sent before is in its send log, not sent again)")
            return
        time.sleep(1)


def main(argv: list[str]) -> int:
    """Command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="load.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("prepare").add_argument("state", type=Path)
    load = steps.add_parser("load")
    load.add_argument("state", type=Path)
    for service in ("checkins", "connectors", "drift"):
        load.add_argument(f"--{service}", required=True)
    load.add_argument("--drift-timeout", type=float, default=90)
    load.add_argument("--portfolio", default="acme", help="the demo portfolio's id (tests load it under ids of their own)")
    captures = steps.add_parser("captures")
    captures.add_argument("state", type=Path)
    captures.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.state)
    elif args.step == "captures":
        wait_for_captures(args.state, args.timeout)
    else:
        demo = Demo(args.state, {"checkins": args.checkins, "connectors": args.connectors, "drift": args.drift}, args.portfolio)
        story = yaml.safe_load((HERE / "history.yaml").read_text())
        demo.apply()
        demo.history(story)
        demo.traffic(story, lambda name: os.environ[name].encode())
        demo.wait_for_drift(args.drift_timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
