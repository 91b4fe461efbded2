"""The weekly check-in form's rules: what a person types, read as numbers and checked row by row before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from okr_web.checkin import MAX_TEXT, Row, number, validate

KR: dict[str, Any] = {"kr_id": "activated", "title": "Activated accounts", "unit": "%"}


def row(**typed: str) -> Row:
    """A row of the form as posted: every field present, empty unless typed."""
    return Row(KR, {"confidence": "", "value": "", "what_changed": "", "blocker": ""} | typed)


@pytest.mark.parametrize(("typed", "read"), [("0.6", 0.6), ("0,6", 0.6), (" 42 ", 42.0), ("-3", -3.0), ("1e3", 1000.0)])
def test_a_typed_decimal_reads_as_a_number_with_a_point_or_a_comma(typed: str, read: float) -> None:
    assert number(typed) == read


@pytest.mark.parametrize("typed", ["", "  ", "abc", "1.2.3", "nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_anything_but_a_finite_number_is_refused(typed: str) -> None:
    assert number(typed) is None


def test_a_blank_row_is_skipped_without_errors() -> None:
    assert row().blank
    assert row(confidence="  ", what_changed="\n").blank
    assert validate(row(confidence="  ")) == {}


@pytest.mark.parametrize("confidence", ["0", "1", "0.0", "1.0", "-0", "0,5", "0.35"])
def test_a_confidence_from_zero_to_one_inclusive_is_accepted(confidence: str) -> None:
    assert validate(row(confidence=confidence, what_changed="Shipped.")) == {}


@pytest.mark.parametrize("confidence", ["1.01", "-0.01", "70", "high", "", "nan"])
def test_a_confidence_outside_zero_to_one_or_not_a_number_is_refused(confidence: str) -> None:
    errors = validate(row(confidence=confidence, what_changed="Shipped."))
    assert errors == {"confidence": "Confidence is your forecast from 0.0 (will not happen) to 1.0 (certain), e.g. 0.6."}


def test_a_value_that_is_not_a_number_is_refused_naming_the_unit() -> None:
    errors = validate(row(confidence="0.6", value="about 30", what_changed="Shipped."))
    assert errors == {"value": "The value must be a number in %, e.g. 42.5."}
    unitless = Row({**KR, "unit": ""}, row(confidence="0.6", value="x", what_changed="Shipped.").typed)
    assert validate(unitless)["value"] == "The value must be a number, e.g. 42.5."


def test_what_changed_is_required_once_anything_is_typed() -> None:
    assert validate(row(confidence="0.6")) == {"what_changed": "Say what changed since the last check-in (one or two sentences)."}
    assert set(validate(row(blocker="Legal review."))) == {"confidence", "what_changed"}


def test_text_longer_than_the_limit_is_refused_field_by_field() -> None:
    long = "x" * (MAX_TEXT + 1)
    assert validate(row(confidence="0.6", what_changed="x" * MAX_TEXT)) == {}
    assert validate(row(confidence="0.6", what_changed=long)) == {"what_changed": f"Keep it under {MAX_TEXT} characters."}
    assert validate(row(confidence="0.6", what_changed="Shipped.", blocker=long)) == {"blocker": f"Keep it under {MAX_TEXT} characters."}


def test_the_check_in_sent_has_numbers_and_trimmed_text_and_leaves_out_what_is_empty() -> None:
    assert row(confidence="0,35", what_changed="  Exit survey live. ").body() == {"confidence": 0.35, "what_changed": "Exit survey live."}
    full = row(confidence="0.8", value=" 31,5 ", what_changed="Guided setup.", blocker=" Legal. ")
    assert full.body() == {"confidence": 0.8, "value": 31.5, "what_changed": "Guided setup.", "blocker": "Legal."}
