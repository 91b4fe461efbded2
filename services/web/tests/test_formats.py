"""How numbers and moments read on every page."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from okr_web import formats
from okr_web.render import Pages

BERLIN, NEW_YORK, TOKYO = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.42, "42%"), (0.0, "0%"), (1.0, "100%"), (1.333, "133%"), (-0.333, "−33%"), (-0.004, "0%"), (None, "unknown")],
)
def test_a_score_reads_as_a_whole_percent_and_a_ratio_beyond_the_range_as_it_is(value: float | None, shown: str) -> None:
    assert formats.percent(value) == shown


def test_a_negative_score_uses_a_true_minus_sign() -> None:
    assert formats.percent(-0.5).startswith("\N{MINUS SIGN}")


@pytest.mark.parametrize(("value", "shown"), [(0.6, "0.60"), (1, "1.00"), (0.0, "0.00"), (0.125, "0.12"), (None, "unknown")])
def test_a_confidence_has_two_decimals_and_is_unknown_before_the_first_check_in(value: float | None, shown: str) -> None:
    assert formats.confidence(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(42.0, "42"), (-2.0, "-2"), (3.14159, "3.142"), (99.95, "99.95"), (1234.5, "1234"), (12345.6, "12346"), (None, "—")],
)
def test_a_value_reads_without_noise(value: float | None, shown: str) -> None:
    assert formats.number(value) == shown


def test_a_large_value_with_a_fraction_is_never_shown_in_scientific_notation() -> None:
    assert "e" not in formats.number(1_234_567.89)


@pytest.mark.parametrize(
    ("at", "zone", "shown"),
    [
        ("2026-08-12T07:30:00+00:00", BERLIN, "Wed 12 Aug 2026, 09:30 CEST"),
        ("2026-12-01T08:00:00Z", BERLIN, "Tue 1 Dec 2026, 09:00 CET"),
        ("2026-08-12T13:30:00Z", NEW_YORK, "Wed 12 Aug 2026, 09:30 EDT"),
        ("2026-12-01T14:00:00Z", NEW_YORK, "Tue 1 Dec 2026, 09:00 EST"),
        ("2026-08-12T07:30:00+02:00", TOKYO, "Wed 12 Aug 2026, 14:30 JST"),
    ],
)
def test_a_moment_reads_in_the_viewers_zone_with_its_abbreviation(at: str, zone: ZoneInfo, shown: str) -> None:
    assert formats.moment(at, zone) == shown


def test_the_hour_repeated_when_summer_time_ends_reads_apart_by_its_abbreviation() -> None:
    first, second = formats.moment("2026-10-25T00:30:00Z", BERLIN), formats.moment("2026-10-25T01:30:00Z", BERLIN)
    assert (first, second) == ("Sun 25 Oct 2026, 02:30 CEST", "Sun 25 Oct 2026, 02:30 CET")


def test_the_hour_skipped_when_summer_time_starts_is_never_shown() -> None:
    assert formats.moment("2026-03-08T06:59:00Z", NEW_YORK) == "Sun 8 Mar 2026, 01:59 EST"
    assert formats.moment("2026-03-08T07:00:00Z", NEW_YORK) == "Sun 8 Mar 2026, 03:00 EDT"


def test_a_moment_may_be_given_as_a_datetime_and_a_missing_one_reads_never() -> None:
    assert formats.moment(datetime(2026, 8, 12, 7, 30, tzinfo=UTC), BERLIN) == "Wed 12 Aug 2026, 09:30 CEST"
    assert formats.moment(None, BERLIN) == "never"


def test_the_day_of_a_moment_is_the_viewers_calendar_day() -> None:
    late = "2026-08-12T23:30:00+00:00"
    assert formats.day(late, ZoneInfo("UTC")) == "12 Aug 2026"
    assert formats.day(late, BERLIN) == "13 Aug 2026"
    assert formats.day(late, NEW_YORK) == "12 Aug 2026"
    assert formats.day(None, BERLIN) == "—"


@pytest.mark.parametrize(
    ("name", "table", "shown"),
    [
        ("off_track", formats.RULE_WORDS, "off track"),
        ("retire_recommended", formats.RULE_WORDS, "retirement recommended"),
        ("pending", formats.STATUS_WORDS, "pending (no data yet)"),
        ("change_resources", formats.OPTION_WORDS, "change the resources"),
        ("critical", formats.SEVERITY_WORDS, "Critical"),
        ("a_rule_added_later", formats.RULE_WORDS, "a rule added later"),
        (None, formats.RULE_WORDS, "—"),
    ],
)
def test_a_machine_name_reads_as_people_say_it(name: str | None, table: dict[str, str], shown: str) -> None:
    assert formats.words(name, table) == shown


@pytest.mark.parametrize("name", [None, "", "Mars/Olympus_Mons", "../../etc/passwd"])
def test_a_missing_or_unknown_zone_falls_back_to_the_default(name: str | None) -> None:
    assert formats.zone_or(name, "Europe/Berlin") == BERLIN


def test_a_known_zone_is_used() -> None:
    assert formats.zone_or("Asia/Tokyo", "Europe/Berlin") == TOKYO


@pytest.mark.parametrize(
    ("kind", "href"),
    [
        ("key_result", "/portfolios/acme/key-results/n-1"),
        ("objective", "/portfolios/acme/nodes/n-1"),
        ("team", "/portfolios/acme#capacity"),  # a squad over capacity, or with too many objectives
        ("cycle", "/portfolios/acme#capacity"),  # a cycle off its intended balance
    ],
)
def test_an_alerts_node_links_to_its_page_or_for_a_squad_or_a_cycle_to_the_capacity_section(kind: str, href: str) -> None:
    macros = Pages().env.get_template("macros.html").module
    assert str(macros.node_link("acme", "n-1", kind, "Title")) == f'<a href="{href}">Title</a>'  # type: ignore[attr-defined]
