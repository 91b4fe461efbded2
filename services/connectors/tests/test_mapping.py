"""The connector mapping: loading JSON and YAML, rule precedence, Slack channels, unmapped items and config errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from okr_connectors.mapping import Mapping, MappingConfigError, MappingRule, SlackChannel
from okr_connectors.vendors import jira, linear
from okr_contracts.delivery import (
    DeliverySource,
    ProjectHealth,
    ProjectHealthReported,
    SignalKind,
    SignalRaised,
    StatusCategory,
    WorkItemChanged,
)

PAYLOADS = Path(__file__).parent / "payloads"
AT = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)

YAML = """\
rules:
  - source: jira
    project: TES
    label: test-label
    portfolio_id: payments
    product_id: billing
    kr_ids: [kr-checkout]
  - parent_key: KT-17
    portfolio_id: growth
    kr_ids: [kr-activation]
  - project: TES
    portfolio_id: payments
    kr_ids: [kr-refunds, kr-checkout]
  - project: TES
    portfolio_id: growth
    kr_ids: [kr-signups]
  - team: WEB
    portfolio_id: platform
slack_channels:
  C06NRA6JLER:
    portfolio_id: payments
    kr_ids: [kr-checkout]
"""


def load(name: str) -> dict[str, Any]:
    """A payload file, as the HTTP layer hands it over (``json.loads`` of the body)."""
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A mapping file with this text."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def item(**changes: Any) -> WorkItemChanged:
    """A Jira work item in project TES, with these fields changed."""
    fields: dict[str, Any] = {
        "source": DeliverySource.JIRA,
        "external_id": "10040",
        "key": "TES-41",
        "title": "Unit test summary",
        "status": "To Do",
        "status_category": StatusCategory.TODO,
        "project": "TES",
        "changed_at": AT,
    }
    return WorkItemChanged(**{**fields, **changes})


def signal(channel: str = "C06NRA6JLER", kr_ids: tuple[str, ...] = ()) -> SignalRaised:
    """A blocker raised in a channel."""
    return SignalRaised(
        source=DeliverySource.SLACK,
        external_id=f"{channel}:1719209506.817929",
        kr_ids=kr_ids,
        kind=SignalKind.BLOCKER,
        channel=channel,
        author="U06NU4E26M9",
        text=":blocker:",
        posted_at=AT,
    )


@pytest.fixture
def mapping(tmp_path: Path) -> Mapping:
    """The example mapping, loaded from YAML."""
    return Mapping.load(write(tmp_path, "mapping.yaml", YAML))


def test_yaml_and_json_files_load_the_same_mapping(tmp_path: Path, mapping: Mapping) -> None:
    as_json = write(tmp_path, "mapping.json", json.dumps(yaml.safe_load(YAML)))
    assert Mapping.load(as_json) == mapping
    assert Mapping.load(write(tmp_path, "mapping.yml", YAML)) == mapping
    assert mapping.rules[0] == MappingRule(
        source=DeliverySource.JIRA,
        project="TES",
        label="test-label",
        portfolio_id="payments",
        product_id="billing",
        kr_ids=("kr-checkout",),
    )
    assert mapping.slack_channels == {"C06NRA6JLER": SlackChannel(portfolio_id="payments", kr_ids=("kr-checkout",))}


def test_an_empty_file_is_an_empty_mapping_that_maps_nothing(tmp_path: Path) -> None:
    empty = Mapping.load(write(tmp_path, "mapping.yaml", ""))
    assert empty == Mapping()
    assert empty.apply(item()) is None


def test_the_first_matching_rule_names_the_portfolio_and_its_krs_join_those_of_later_rules_of_that_portfolio(mapping: Mapping) -> None:
    mapped = mapping.apply(item(labels=("test-label",)))
    assert mapped is not None
    assert mapped.portfolio_id == "payments"
    assert mapped.kr_ids == ("kr-checkout", "kr-refunds")


def test_a_rule_matches_only_when_all_its_matchers_do(mapping: Mapping) -> None:
    mapped = mapping.apply(item(labels=("other",)))
    assert mapped is not None
    assert (mapped.portfolio_id, mapped.kr_ids) == ("payments", ("kr-refunds", "kr-checkout"))


def test_a_source_matcher_keeps_other_vendors_out(mapping: Mapping) -> None:
    mapped = mapping.apply(item(source=DeliverySource.LINEAR, labels=("test-label",)))
    assert mapped is not None
    assert mapped.kr_ids == ("kr-refunds", "kr-checkout")


def test_an_earlier_rule_of_another_portfolio_takes_precedence(mapping: Mapping) -> None:
    mapped = mapping.apply(item(parent_key="KT-17", labels=("test-label",)))
    assert mapped is not None
    assert (mapped.portfolio_id, mapped.kr_ids) == ("payments", ("kr-checkout", "kr-refunds"))
    epic_only = mapping.apply(item(project="KT", parent_key="KT-17"))
    assert epic_only is not None
    assert (epic_only.portfolio_id, epic_only.kr_ids) == ("growth", ("kr-activation",))


def test_a_rule_without_krs_maps_to_the_portfolio_alone(mapping: Mapping) -> None:
    mapped = mapping.apply(item(source=DeliverySource.LINEAR, project=None, team="WEB"))
    assert mapped is not None
    assert (mapped.portfolio_id, mapped.kr_ids) == ("platform", ())


def test_an_item_no_rule_matches_is_unmapped(mapping: Mapping) -> None:
    assert mapping.apply(item(project="OPS")) is None


def test_mapping_keeps_everything_else_of_the_event(mapping: Mapping) -> None:
    original = item(labels=("test-label",), delivery_id="d-1")
    mapped = mapping.apply(original)
    assert mapped is not None
    assert mapped.model_dump(exclude={"portfolio_id", "kr_ids"}) == original.model_dump(exclude={"portfolio_id", "kr_ids"})
    assert original.portfolio_id is None


def test_captured_payloads_map_through_their_project_label_epic_and_team(mapping: Mapping) -> None:
    created = jira.parse_webhook(load("jira_issue_created.json"))
    epic = jira.parse_webhook(load("jira_issue_created_cloud_with_epic_link_customfield.json"))
    issue = linear.parse_webhook(load("linear_issue_create.json"))
    assert created is not None
    assert epic is not None
    assert issue is not None
    assert [(e.portfolio_id, e.kr_ids) for e in (mapping.apply(created), mapping.apply(epic), mapping.apply(issue)) if e is not None] == [
        ("payments", ("kr-checkout", "kr-refunds")),
        ("growth", ("kr-activation",)),
        ("platform", ()),
    ]


def test_project_health_maps_by_project(mapping: Mapping) -> None:
    report = ProjectHealthReported(
        source=DeliverySource.LINEAR, external_id="u-1", project="TES", health=ProjectHealth.AT_RISK, reported_at=AT
    )
    mapped = mapping.apply(report)
    assert mapped is not None
    assert (mapped.portfolio_id, mapped.kr_ids) == ("payments", ("kr-refunds", "kr-checkout"))


def test_a_signal_takes_its_channels_portfolio_and_krs(mapping: Mapping) -> None:
    mapped = mapping.apply(signal())
    assert mapped is not None
    assert (mapped.portfolio_id, mapped.kr_ids) == ("payments", ("kr-checkout",))


def test_a_signal_naming_krs_keeps_them(mapping: Mapping) -> None:
    mapped = mapping.apply(signal(kr_ids=("kr-refunds",)))
    assert mapped is not None
    assert (mapped.portfolio_id, mapped.kr_ids) == ("payments", ("kr-refunds",))


def test_a_signal_from_an_unconfigured_channel_is_unmapped(mapping: Mapping) -> None:
    assert mapping.apply(signal(channel="C0OTHER")) is None


def test_known_krs_are_those_of_a_portfolios_rules_and_channels(mapping: Mapping) -> None:
    assert mapping.known_krs("payments") == {"kr-checkout", "kr-refunds"}
    assert mapping.known_krs("growth") == {"kr-activation", "kr-signups"}
    assert mapping.known_krs("platform") == frozenset()
    assert mapping.known_krs("nobody") == frozenset()


def test_a_rule_without_a_matcher_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "mapping.yaml", "rules:\n  - {project: TES, portfolio_id: p}\n  - {portfolio_id: payments, kr_ids: [kr-1]}\n")
    with pytest.raises(MappingConfigError, match=r"rules\[1\]: Value error, a rule needs at least one matcher"):
        Mapping.load(path)


def test_a_duplicate_channel_id_in_yaml_is_a_config_error_naming_its_line(tmp_path: Path) -> None:
    text = "slack_channels:\n  C06NRA6JLER: {portfolio_id: payments}\n  C06NRA6JLER: {portfolio_id: growth}\n"
    with pytest.raises(MappingConfigError, match=r"duplicate Slack channel id 'C06NRA6JLER' in slack_channels \(line 3\)"):
        Mapping.load(write(tmp_path, "mapping.yaml", text))


def test_a_duplicate_channel_id_in_json_is_a_config_error(tmp_path: Path) -> None:
    text = '{"slack_channels": {"C06NRA6JLER": {"portfolio_id": "payments"}, "C06NRA6JLER": {"portfolio_id": "growth"}}}'
    with pytest.raises(MappingConfigError, match="duplicate Slack channel id 'C06NRA6JLER' in slack_channels"):
        Mapping.load(write(tmp_path, "mapping.json", text))


def test_any_other_duplicate_key_is_a_config_error_too(tmp_path: Path) -> None:
    text = "rules:\n  - project: TES\n    project: OPS\n    portfolio_id: payments\n"
    with pytest.raises(MappingConfigError, match=r"duplicate key 'project' in rules\[0\] \(line 3\)"):
        Mapping.load(write(tmp_path, "mapping.yaml", text))


def test_a_slack_rule_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "mapping.json", '{"rules": [{"source": "slack", "portfolio_id": "payments"}]}')
    with pytest.raises(MappingConfigError, match="map Slack under slack_channels"):
        Mapping.load(path)


def test_a_misspelt_field_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "mapping.yaml", "rules:\n  - {lable: okr, portfolio_id: payments}\n")
    with pytest.raises(MappingConfigError, match=r"rules\[0\]\.lable: Extra inputs are not permitted"):
        Mapping.load(path)


def test_an_invalid_kr_id_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "mapping.yaml", "slack_channels:\n  C1: {portfolio_id: payments, kr_ids: ['kr checkout']}\n")
    with pytest.raises(MappingConfigError, match=r"slack_channels\.C1\.kr_ids\[0\]"):
        Mapping.load(path)


@pytest.mark.parametrize(("name", "text", "message"), [("m.yaml", "rules: [", "not valid YAML"), ("m.json", "{", "not valid JSON")])
def test_a_file_that_does_not_parse_is_a_config_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(MappingConfigError, match=message):
        Mapping.load(write(tmp_path, name, text))


def test_an_unknown_file_type_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(MappingConfigError, match=r"must end in \.json, \.yaml or \.yml"):
        Mapping.load(write(tmp_path, "mapping.toml", "rules = []"))


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(MappingConfigError, match="cannot read the mapping file"):
        Mapping.load(tmp_path / "absent.yaml")


def test_a_file_that_is_not_an_object_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(MappingConfigError, match=r"mapping\.yaml: \(top level\): Input should be a valid dictionary"):
        Mapping.load(write(tmp_path, "mapping.yaml", "- just\n- a list\n"))
