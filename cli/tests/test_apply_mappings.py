"""`okr apply` and the document's `connectors:` section: validated at the line, shown as a diff, stored once, after the portfolio."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from okr_checkins.application import CheckinsApplication
from okr_cli.main import app as okr_app
from okr_cli.mappings import plan_mapping
from okr_cli.spec import SpecError, load_spec
from okr_connectors.mapping import Mapping, MappingRule, SlackChannel
from okr_connectors.store import ConnectorStore

from .conftest import DEMO, Okr, in_process

CHANNEL = "C06NRA6JLER"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return Path(shutil.copy(DEMO, tmp_path / "portfolio.yaml"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def without_connectors(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.index("# Which delivery items")])


def recorded(checkins: CheckinsApplication) -> int:
    return checkins.recorder.max_notification_id() or 0


def test_applying_the_demo_twice_stores_its_connector_mapping_once(
    okr: Okr, demo: Path, connector_store: ConnectorStore, checkins: CheckinsApplication
) -> None:
    first = okr("apply", demo)
    assert first.exit_code == 0, first.output
    assert "+ connector rule source=jira project=PAY → key results checkout-conversion, payment-failures (product checkout)" in first.output
    assert "applied: the connector mapping of demo stored (version 1)" in first.output
    stored = connector_store.portfolio_mapping("demo")
    assert [(r.source, r.project, r.label, r.portfolio_id) for r in stored.mapping.rules] == [
        ("jira", "PAY", None, "demo"),
        (None, None, "okr-search", "demo"),
    ]
    events = recorded(checkins)
    again = okr("apply", demo)
    assert again.exit_code == 0, again.output
    assert "demo is as declared: nothing to do" in again.output
    assert "connector" not in again.output
    assert (connector_store.portfolio_mapping("demo").version, recorded(checkins)) == (1, events)


def test_a_dry_run_shows_added_removed_and_changed_rules_and_channels_and_stores_nothing(
    okr: Okr, demo: Path, connector_store: ConnectorStore
) -> None:
    assert okr("apply", demo).exit_code == 0
    edit(demo, "kr_ids: [checkout-conversion, payment-failures]}", "kr_ids: [checkout-conversion]}")
    edit(demo, "    - {label: okr-search, product_id: search, kr_ids: [search-success, search-latency]}\n", "")
    edit(demo, "  rules:\n", "  rules:\n    - {parent_key: PAY-100, kr_ids: [retry-recovery]}\n")
    demo.write_text(demo.read_text() + f"  slack_channels:\n    {CHANNEL}:\n")  # a bare channel: the portfolio's, no key result
    shown = okr("apply", demo, "--dry-run")
    assert shown.exit_code == 0, shown.output
    lines = [line.strip() for line in shown.output.splitlines()]
    assert lines[:4] == [
        "+ connector rule parent_key=PAY-100 → key results retry-recovery",
        "~ connector rule source=jira project=PAY: key results checkout-conversion, payment-failures (product checkout)"
        " → key results checkout-conversion (product checkout)",
        "- connector rule label=okr-search → key results search-success, search-latency (product search)",
        f"+ slack channel {CHANNEL} → the portfolio, no key result",
    ]
    assert "dry run: the connector mapping, nothing was recorded" in shown.output
    assert connector_store.portfolio_mapping("demo").version == 1

    applied = okr("apply", demo)
    assert applied.exit_code == 0, applied.output
    stored = connector_store.portfolio_mapping("demo")
    assert (stored.version, stored.mapping) == (2, load_spec(demo).connectors)
    assert stored.mapping.slack_channels == {CHANNEL: SlackChannel(portfolio_id="demo")}


def test_rules_in_another_order_are_a_change_since_the_first_matching_rule_names_the_portfolio() -> None:
    pay = MappingRule(project="PAY", portfolio_id="demo", kr_ids=("checkout-conversion",))
    search = MappingRule(label="okr-search", portfolio_id="demo")
    plan = plan_mapping("demo", Mapping(rules=(search, pay)), Mapping(rules=(pay, search)))
    assert (plan.differs, plan.lines) == (True, ["~ connector rules in another order (the first matching rule names the portfolio)"])
    assert not plan_mapping("demo", Mapping(rules=(pay, search)), Mapping(rules=(pay, search))).differs


def test_a_document_without_connectors_leaves_the_stored_mapping_alone(okr: Okr, demo: Path, connector_store: ConnectorStore) -> None:
    assert okr("apply", demo).exit_code == 0
    without_connectors(demo)
    again = okr("apply", demo)
    assert again.exit_code == 0, again.output
    assert "connector" not in again.output
    assert connector_store.portfolio_mapping("demo").version == 1
    assert len(connector_store.portfolio_mapping("demo").mapping.rules) == 2


def apply_without_connectors_api(apps: dict[str, FastAPI], url: str, *args: str | Path) -> Result:
    """`okr apply` with the checkins API in process and the connectors API at `url` (a port nothing listens on)."""
    env = {"COLUMNS": "250", "OKR_TOKEN": "t-cpo"}
    obj = {"checkins": in_process(apps["checkins"])}
    return CliRunner().invoke(okr_app, ["apply", *(str(a) for a in args), "--connectors", url], env=env, obj=obj)


def test_an_unreachable_connectors_api_exits_2_after_the_portfolio_is_applied_and_a_rerun_finishes(
    okr: Okr, apps: dict[str, FastAPI], closed_url: str, demo: Path, connector_store: ConnectorStore, checkins: CheckinsApplication
) -> None:
    stopped = apply_without_connectors_api(apps, closed_url, demo)
    assert stopped.exit_code == 2, stopped.output
    assert "applied: 27 steps recorded for demo" in stopped.output
    assert "the connector mapping of demo was not stored: reading the stored connector mapping: cannot reach the connectors API" in (
        stopped.output
    )
    assert "The portfolio is applied (27 steps recorded). Apply the document again once the connectors API answers" in stopped.output
    assert (recorded(checkins), connector_store.portfolio_mapping("demo").version) == (27, 0)

    finished = okr("apply", demo)
    assert finished.exit_code == 0, finished.output
    assert "applied: the connector mapping of demo stored (version 1)" in finished.output
    assert recorded(checkins) == 27


def test_a_dry_run_that_cannot_read_the_stored_mapping_exits_2_and_records_nothing(
    apps: dict[str, FastAPI], closed_url: str, demo: Path, checkins: CheckinsApplication
) -> None:
    stopped = apply_without_connectors_api(apps, closed_url, demo, "--dry-run")
    assert stopped.exit_code == 2, stopped.output
    assert "cannot reach the connectors API" in stopped.output
    assert "dry run: nothing was recorded" in stopped.output
    assert recorded(checkins) == 0


def test_a_document_without_connectors_does_not_need_the_connectors_api(apps: dict[str, FastAPI], closed_url: str, demo: Path) -> None:
    without_connectors(demo)
    applied = apply_without_connectors_api(apps, closed_url, demo)
    assert applied.exit_code == 0, applied.output


def test_a_channel_another_portfolio_has_is_refused_with_exit_1_after_the_portfolio_is_applied(
    okr: Okr, demo: Path, connector_store: ConnectorStore, checkins: CheckinsApplication
) -> None:
    connector_store.put_portfolio_mapping("other", Mapping(slack_channels={CHANNEL: SlackChannel(portfolio_id="other")}), "ops")
    edit(demo, "  rules:\n", f"  slack_channels:\n    {CHANNEL}: {{kr_ids: [checkout-conversion]}}\n  rules:\n")
    refused = okr("apply", demo)
    assert refused.exit_code == 1, refused.output
    assert f"409 Channel claimed: Slack channel {CHANNEL} is already mapped to portfolio other" in refused.output
    assert "The portfolio is applied (27 steps recorded)." in refused.output
    assert recorded(checkins) == 27
    assert connector_store.portfolio_mapping("demo").version == 0


def test_a_rule_without_a_portfolio_id_belongs_to_the_documents_portfolio(demo: Path) -> None:
    edit(demo, "{label: okr-search,", "{label: okr-search, portfolio_id: demo,")
    connectors = load_spec(demo).connectors
    assert connectors is not None
    assert connectors.rules[0] == MappingRule(
        source="jira", project="PAY", portfolio_id="demo", product_id="checkout", kr_ids=("checkout-conversion", "payment-failures")
    )


TWICE = f"  slack_channels:\n    {CHANNEL}: {{}}\n    {CHANNEL}: {{}}\n  rules:\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{label: okr-search,",
            "{label: okr-search, portfolio_id: other,",
            ":82:27: connectors.rules[1].portfolio_id: names portfolio 'other'",
        ),
        ("{label: okr-search, ", "{", ":82:7: connectors.rules[1]: Value error, a rule needs at least one matcher"),
        ("search-latency]}", "search-latncy]}", ":82:72: connectors.rules[1].kr_ids[1]: 'search-latncy' is not a key result"),
        ("source: jira", "source: slack", ":81:8: connectors.rules[0].source: Value error, rules match Jira and Linear items"),
        ("  rules:\n", TWICE, f":82:5: connectors.slack_channels.{CHANNEL}: '{CHANNEL}' is given again (first on line 81)"),
        ("  rules:\n", "  rulez:\n", ":80:3: connectors.rulez: Extra inputs are not permitted"),
    ],
)
def test_a_connectors_error_names_its_line(demo: Path, old: str, new: str, expected: str) -> None:
    edit(demo, old, new)
    with pytest.raises(SpecError) as error:
        load_spec(demo)
    assert expected in str(error.value), str(error.value)
