"""Which portfolio and key results a work item, project or Slack channel belongs to: the connector mapping.

Loaded from JSON or YAML (``Mapping.load``)::

    rules:
      - {source: jira, project: PAY, portfolio_id: payments, kr_ids: [kr-checkout]}
      - {label: okr-activation, portfolio_id: payments, product_id: billing, kr_ids: [kr-activation]}
    slack_channels:
      C06NRA6JLER: {portfolio_id: payments, kr_ids: [kr-checkout]}

A rule matches when every matcher it gives (``source``, ``project``, ``parent_key``, ``label``,
``team``) matches; it must give at least one. The first matching rule names the portfolio; the
key results are those of every matching rule of that portfolio, in rule order without repeats.
A Slack signal takes its channel's portfolio, and the channel's key results unless the message
named some. Nothing matching means unmapped (``apply`` returns None). A duplicate key anywhere
in the file (e.g. a channel id given twice) is an error, where JSON and YAML would keep the last.

The mapping in force is the file's followed by the portfolios' stored mappings (``merged``);
whoever maps items asks a :class:`MappingSource` for it each time, so a change applies at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from okr_contracts.delivery import DeliveryEvent, DeliverySource, ProjectHealthReported, SignalRaised, WorkItemChanged
from okr_contracts.types import Id

EventT = TypeVar("EventT", bound=DeliveryEvent)

_MATCHERS = ("source", "project", "parent_key", "label", "team")


class MappingConfigError(ValueError):
    """The mapping file cannot be read or is not a valid mapping; the message says where and why."""


class MappingRule(BaseModel):
    """Work items (and project health) matching all the given matchers belong to a portfolio and key results."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: DeliverySource | None = Field(default=None, description="Only items from this vendor (jira or linear).")
    project: str | None = Field(default=None, min_length=1, description="Jira project key or Linear project id.")
    parent_key: str | None = Field(default=None, min_length=1, description="Parent or epic key.")
    label: str | None = Field(default=None, min_length=1, description="A label the item carries.")
    team: str | None = Field(default=None, min_length=1, description="Linear team key.")
    portfolio_id: Id = Field(description="The portfolio the items belong to.")
    product_id: Id | None = Field(default=None, description="The product, when the items belong to one.")
    kr_ids: tuple[Id, ...] = Field(default=(), description="Key results the items deliver.")

    @field_validator("source")
    @classmethod
    def _work_item_source(cls, source: DeliverySource | None) -> DeliverySource | None:
        if source is DeliverySource.SLACK:
            raise ValueError("rules match Jira and Linear items; map Slack under slack_channels")
        return source

    @model_validator(mode="after")
    def _has_matcher(self) -> MappingRule:
        if all(getattr(self, name) is None for name in _MATCHERS):
            raise ValueError(f"a rule needs at least one matcher ({', '.join(_MATCHERS)}); this one would match everything")
        return self

    def matches(self, event: DeliveryEvent) -> bool:
        """Whether every matcher this rule gives matches the event."""
        project, parent_key, labels, team = _facts(event)
        return (
            (self.source is None or self.source is event.source)
            and (self.project is None or self.project == project)
            and (self.parent_key is None or self.parent_key == parent_key)
            and (self.label is None or self.label in labels)
            and (self.team is None or self.team == team)
        )


class SlackChannel(BaseModel):
    """Signals raised in a Slack channel belong to a portfolio and, unless a message names others, these key results."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portfolio_id: Id = Field(description="The portfolio the channel discusses.")
    kr_ids: tuple[Id, ...] = Field(default=(), description="Key results a signal names when its message names none.")


class Mapping(BaseModel):
    """The connector mapping: rules for Jira and Linear items, and Slack channels by channel id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[MappingRule, ...] = Field(default=(), description="Rules in precedence order.")
    slack_channels: dict[str, SlackChannel] = Field(default_factory=dict, description="Slack channel id to its portfolio and KRs.")

    @classmethod
    def load(cls, path: Path | str) -> Mapping:
        """Read a mapping from a ``.json``, ``.yaml`` or ``.yml`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise MappingConfigError(f"{path}: cannot read the mapping file: {error.strerror}") from error
        suffix = path.suffix.lower()
        if suffix == ".json":
            raw = _json_without_duplicates(text, path)
        elif suffix in (".yaml", ".yml"):
            raw = _yaml_without_duplicates(text, path)
        else:
            raise MappingConfigError(f"{path}: a mapping file must end in .json, .yaml or .yml")
        try:
            return cls.model_validate(raw if raw is not None else {})
        except ValidationError as error:
            problems = "; ".join(f"{_location(e['loc'])}: {e['msg']}" for e in error.errors())
            raise MappingConfigError(f"{path}: {problems}") from error

    def apply(self, event: EventT) -> EventT | None:
        """The event with its portfolio and key results filled in; None when nothing maps it."""
        if isinstance(event, SignalRaised):
            channel = self.slack_channels.get(event.channel)
            if channel is None:
                return None
            return event.model_copy(update={"portfolio_id": channel.portfolio_id, "kr_ids": event.kr_ids or channel.kr_ids})
        matching = [rule for rule in self.rules if rule.matches(event)]
        if not matching:
            return None
        portfolio = matching[0].portfolio_id
        kr_ids = dict.fromkeys(kr for rule in matching if rule.portfolio_id == portfolio for kr in rule.kr_ids)
        return event.model_copy(update={"portfolio_id": portfolio, "kr_ids": tuple(kr_ids)})

    def current(self) -> Mapping:
        """A fixed mapping is always the one in force (see :class:`MappingSource`)."""
        return self

    def merged(self, stored: Iterable[Mapping]) -> Mapping:
        """This mapping's rules first, then each stored mapping's in the order given; this mapping's Slack channels win."""
        stored = list(stored)
        rules = (*self.rules, *(rule for mapping in stored for rule in mapping.rules))
        channels: dict[str, SlackChannel] = {}
        for mapping in reversed(stored):  # the first stored mapping to claim a channel keeps it
            channels |= mapping.slack_channels
        return Mapping(rules=rules, slack_channels=channels | self.slack_channels)

    def foreign_to(self, portfolio_id: str) -> list[str]:
        """The entries naming another portfolio than `portfolio_id` (e.g. ``rules[1]``, ``slack_channels.C06NRA6JLER``)."""
        rules = [f"rules[{index}]" for index, rule in enumerate(self.rules) if rule.portfolio_id != portfolio_id]
        channels = [f"slack_channels.{channel}" for channel, target in self.slack_channels.items() if target.portfolio_id != portfolio_id]
        return rules + channels

    def known_krs(self, portfolio_id: str) -> frozenset[str]:
        """Every key result the mapping names for a portfolio, in rules or channels."""
        from_rules = (kr for rule in self.rules if rule.portfolio_id == portfolio_id for kr in rule.kr_ids)
        from_channels = (kr for channel in self.slack_channels.values() if channel.portfolio_id == portfolio_id for kr in channel.kr_ids)
        return frozenset((*from_rules, *from_channels))


class MappingSource(Protocol):
    """Where the mapping in force comes from: asked for every item mapped, so a changed mapping applies without a restart."""

    def current(self) -> Mapping:
        """The mapping in force now."""
        ...


def _facts(event: DeliveryEvent) -> tuple[str | None, str | None, tuple[str, ...], str | None]:
    """Project, parent key, labels and team of an event, as far as it has them."""
    if isinstance(event, WorkItemChanged):
        return event.project, event.parent_key, event.labels, event.team
    if isinstance(event, ProjectHealthReported):
        return event.project, None, (), None
    return None, None, (), None


def _location(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "(top level)"


def _duplicate(path: Path, key: object, where: str, line: int | None = None) -> MappingConfigError:
    what = "Slack channel id" if where == "slack_channels" else "key"
    at = f" (line {line})" if line is not None else ""
    return MappingConfigError(f"{path}: duplicate {what} {key!r} in {where or 'the top level'}{at}")


def _json_without_duplicates(text: str, path: Path) -> Any:
    def check(value: Any, where: str) -> Any:
        if isinstance(value, _Pairs):
            result: dict[str, Any] = {}
            for key, item in value:
                if key in result:
                    raise _duplicate(path, key, where)
                result[key] = check(item, f"{where}.{key}".lstrip("."))
            return result
        if isinstance(value, list):
            return [check(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return value

    try:
        return check(json.loads(text, object_pairs_hook=_Pairs), "")
    except json.JSONDecodeError as error:
        raise MappingConfigError(f"{path}: not valid JSON: {error}") from error


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key-value pairs, duplicates kept, until checked."""


def _yaml_without_duplicates(text: str, path: Path) -> Any:
    try:
        _check_yaml_node(yaml.compose(text, Loader=yaml.SafeLoader), path, "")
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MappingConfigError(f"{path}: not valid YAML: {error}") from error


def _check_yaml_node(node: yaml.Node | None, path: Path, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise _duplicate(path, key, where, key_node.start_mark.line + 1)
            seen.add(key)
            _check_yaml_node(value_node, path, f"{where}.{key}".lstrip("."))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_yaml_node(item, path, f"{where}[{index}]")
