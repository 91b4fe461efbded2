"""`okr apply`: a portfolio declared in YAML is recorded once, changes need a reason, and errors point at the line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient

from okr_checkins.application import CheckinsApplication
from okr_cli.apply import apply_with
from okr_cli.spec import SpecError, load_spec, parse_spec

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo" / "portfolio.yaml"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return Path(shutil.copy(DEMO, tmp_path / "portfolio.yaml"))


def stored(checkins: CheckinsApplication) -> int:
    return checkins.recorder.max_notification_id() or 0


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def status(call: Any) -> int:
    with pytest.raises(typer.Exit) as exit_:
        call()
    return int(exit_.value.exit_code)


def test_applying_the_demo_twice_records_its_events_once(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path
) -> None:
    plan = apply_with(api, demo, connectors=connectors)
    # portfolio, balance, products, teams, cycle, capacities, objectives, key results, classifications, allocations
    assert len(plan.steps) == 1 + 1 + 2 + 2 + 1 + 3 + 4 + 6 + 4 + 3
    recorded = stored(checkins)
    assert recorded == len(plan.steps)
    again = apply_with(api, demo, connectors=connectors)
    assert (again.steps, again.conflicts, stored(checkins)) == ([], [], recorded)
    view = api.get("/v1/portfolios/demo").json()
    assert {kr["kr_id"]: kr["objective_id"] for kr in view["key_results"]}["retry-recovery"] == "smarter-retries"


def test_a_dry_run_shows_the_plan_and_records_nothing(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path, capsys: Any
) -> None:
    plan = apply_with(api, demo, connectors=connectors, dry_run=True)
    assert stored(checkins) == 0
    shown = capsys.readouterr().out
    assert "+ create portfolio demo" in shown
    assert "+ create key result search-latency" in shown
    assert f"dry run: {len(plan.steps)} steps and the connector mapping, nothing was recorded" in shown


def test_a_changed_target_and_weight_are_recorded_with_the_reason_given(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path
) -> None:
    apply_with(api, demo, connectors=connectors)
    edit(demo, "baseline: 3.1, target: 3.8", "baseline: 3.1, target: 4.0")
    edit(demo, "{parent_id: net-revenue-retention, weight: 1}", "{parent_id: net-revenue-retention, weight: 2}")
    before = stored(checkins)
    assert status(lambda: apply_with(api, demo, connectors=connectors)) == 1  # changes without a reason
    assert stored(checkins) == before
    plan = apply_with(api, demo, connectors=connectors, reason="Q4 planning review")
    assert [s.summary for s in plan.steps] == [
        "change the target of checkout-conversion: 3.8 → 4.0",
        "change the weight of search-finds in net-revenue-retention: 1.0 → 2.0",
    ]
    kr = api.get("/v1/portfolios/demo/key-results/checkout-conversion").json()
    assert (kr["target"], kr["target_changes"]) == (4.0, 1)
    history = api.get("/v1/portfolios/demo/key-results/checkout-conversion/history").json()["items"]
    assert history[-1]["data"]["reason"] == "Q4 planning review"
    assert apply_with(api, demo, connectors=connectors, reason="Q4 planning review").steps == []


def test_a_field_the_history_cannot_edit_is_a_conflict_and_nothing_is_recorded(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path, capsys: Any
) -> None:
    apply_with(api, demo, connectors=connectors)
    edit(demo, "title: Search finds what buyers want", "title: Search finds everything")
    edit(demo, "  - {product_id: search, name: Search", "  - {product_id: search, name: Discovery")
    edit(demo, "baseline: 0, target: 30", "baseline: 0, target: 35")
    before = stored(checkins)
    assert status(lambda: apply_with(api, demo, connectors=connectors, reason="r")) == 1
    assert stored(checkins) == before
    shown = capsys.readouterr().out
    assert "objective search-finds: title is 'Search finds what buyers want', the document says 'Search finds everything'" in shown
    assert "product search: name is 'Search', the document says 'Discovery' (products cannot be redefined)" in shown


def test_what_is_recorded_but_no_longer_declared_is_listed_and_left_alone(
    api: TestClient, connectors: TestClient, demo: Path, capsys: Any
) -> None:
    apply_with(api, demo, connectors=connectors)
    text = demo.read_text()
    demo.write_text(text[: text.index("  - objective_id: smarter-retries")])
    assert apply_with(api, demo, connectors=connectors).steps == []
    shown = capsys.readouterr().out
    assert "= objective smarter-retries is recorded but not declared: left as it is" in shown
    assert "= key result retry-recovery is recorded but not declared: left as it is" in shown


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("target: 3.8", "target: lots", ":49:105: objectives[1].key_results[0].target: Input should be a valid number"),
        ("  owner: cpo@example.com\n  rollup_method", "  rollup_method", ":3:1: portfolio.owner: this field is required here"),
        ("    title: Search", "    teir: 2\n    title: Search", ":55:5: objectives[2].teir: Extra inputs are not permitted"),
        ("{kr_id: search-latency,", "{kr_id: search-success,", ":63:9: objectives[2].key_results[1]: 'search-success' is declared again"),
        ("title: Retry failed", "title: [Retry failed", ":69:10: not valid YAML"),
    ],
)
def test_a_document_error_names_its_line(demo: Path, old: str, new: str, expected: str) -> None:
    edit(demo, old, new)
    with pytest.raises(SpecError) as error:
        load_spec(demo)
    assert expected in str(error.value), str(error.value)


def test_an_invalid_document_records_nothing(
    api: TestClient, connectors: TestClient, checkins: CheckinsApplication, demo: Path, capsys: Any
) -> None:
    edit(demo, "tier: 3", "tier: 4")
    assert status(lambda: apply_with(api, demo, connectors=connectors)) == 2
    assert stored(checkins) == 0
    assert "objectives[3].tier: Input should be less than or equal to 3" in capsys.readouterr().err


def test_a_document_needs_a_portfolio() -> None:
    with pytest.raises(SpecError, match="portfolio: this field is required here"):
        parse_spec("products: []\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_spec("- just a list\n")
