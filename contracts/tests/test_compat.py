import json
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel

from okr_contracts.compat import incompatibilities
from okr_contracts.examples import EXAMPLES
from okr_contracts.schemas import envelope_schema


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Inner(BaseModel):
    score: float
    note: str | None = None


class Published(BaseModel):
    kr_id: str
    confidence: float
    color: Color
    due: date
    inner: Inner
    tags: list[str] = []
    comment: str | None = None


def schema(model: type[BaseModel]) -> dict[str, object]:
    return model.model_json_schema()


def test_an_identical_schema_is_compatible() -> None:
    assert incompatibilities(schema(Published), schema(Published)) == []


def test_adding_an_optional_field_is_compatible() -> None:
    class Added(Published):
        extra: int | None = None

    assert incompatibilities(schema(Published), schema(Added)) == []


def test_removing_a_required_field_is_reported() -> None:
    class Removed(BaseModel):
        confidence: float
        color: Color
        due: date
        inner: Inner

    assert incompatibilities(schema(Published), schema(Removed)) == ["$.kr_id: required field removed or renamed"]


def test_renaming_a_required_field_is_reported_twice_over() -> None:
    class Renamed(BaseModel):
        key_result_id: str
        confidence: float
        color: Color
        due: date
        inner: Inner

    assert incompatibilities(schema(Published), schema(Renamed)) == [
        "$.kr_id: required field removed or renamed",
        "$.key_result_id: field is required now but was not before",
    ]


def test_changing_a_type_is_reported() -> None:
    class Changed(BaseModel):
        kr_id: int
        confidence: float
        color: Color
        due: datetime
        inner: Inner

    assert incompatibilities(schema(Published), schema(Changed)) == [
        "$.kr_id: type changed from string to integer",
        "$.due: format changed from date to date-time",
    ]


def test_a_nested_type_change_names_its_path() -> None:
    class Inner2(BaseModel):
        score: str
        note: str | None = None

    class Nested(Published):
        inner: Inner2  # type: ignore[assignment]

    assert incompatibilities(schema(Published), schema(Nested)) == ["$.inner.score: type changed from number to string"]


def test_making_an_optional_field_required_or_nullable_changes_are_reported() -> None:
    class Required(Published):
        comment: str

    assert incompatibilities(schema(Published), schema(Required)) == [
        "$.comment: type changed from null|string to string",
        "$.comment: field is required now but was not before",
    ]


def test_removing_an_enum_value_is_reported_and_adding_one_is_not() -> None:
    class Fewer(StrEnum):
        RED = "red"

    class More(StrEnum):
        RED = "red"
        GREEN = "green"
        BLUE = "blue"

    class WithFewer(Published):
        color: Fewer  # type: ignore[assignment]

    class WithMore(Published):
        color: More  # type: ignore[assignment]

    assert incompatibilities(schema(Published), schema(WithFewer)) == ["$.color: enum values removed: ['green']"]
    assert incompatibilities(schema(Published), schema(WithMore)) == []


def test_tightened_bounds_are_reported() -> None:
    from pydantic import Field

    class Bounded(Published):
        confidence: float = Field(ge=0, le=1)

    problems = incompatibilities(schema(Published), schema(Bounded))
    assert problems == ["$.confidence: minimum tightened from None to 0", "$.confidence: maximum tightened from None to 1"]


def test_every_published_event_schema_is_compatible_with_itself() -> None:
    for payload in EXAMPLES:
        current = envelope_schema(type(payload))
        assert incompatibilities(json.loads(json.dumps(current)), current) == []
