"""How numbers and moments read on every page: one way everywhere, and never by colour alone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from okr_notifier.readout import OPTION_WORDS as OPTION_WORDS  # the e-mails' words, so page and e-mail agree
from okr_notifier.readout import RULE_WORDS as RULE_WORDS

UNKNOWN = "unknown"
SEVERITY_WORDS = {"critical": "Critical", "warning": "Warning", "info": "Info"}
STATUS_WORDS = {"scored": "scored", "pending": "pending (no data yet)", "retired": "retired"}


def zone_or(name: str | None, default: str) -> ZoneInfo:
    """The named IANA time zone, or `default` when the name is missing or unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(default)


def percent(value: float | None) -> str:
    """A score as a whole percent ("42%"); a raw ratio beyond 0–100 shows as it is ("133%", "−33%")."""
    if value is None:
        return UNKNOWN
    whole = round(value * 100)
    return f"−{-whole}%" if whole < 0 else f"{whole}%"


def confidence(value: float | None) -> str:
    """A confidence with two decimals, or "unknown" before the first check-in."""
    return UNKNOWN if value is None else f"{value:.2f}"


def number(value: float | None) -> str:
    """A measured value without noise: integers without decimals, others to four significant digits (whole from 10 000 up)."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return str(int(value))
    short = f"{value:.4g}"
    return f"{value:.0f}" if "e+" in short else short  # 12345.6 reads 12346, not 1.235e+04


def parse_moment(value: str | datetime) -> datetime:
    """An ISO 8601 moment (with its zone) as an aware datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def moment(value: str | datetime | None, zone: ZoneInfo) -> str:
    """A moment in the viewer's time zone, with the zone's abbreviation ("Wed 12 Aug 2026, 09:30 CEST")."""
    if value is None:
        return "never"
    local = parse_moment(value).astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def day(value: str | datetime | None, zone: ZoneInfo) -> str:
    """The calendar day of a moment in the viewer's time zone ("12 Aug 2026")."""
    if value is None:
        return "—"
    local = parse_moment(value).astimezone(zone)
    return f"{local.day} {local:%b %Y}"


def words(value: str | None, table: dict[str, str]) -> str:
    """A machine name as people say it (`off_track` → "off track")."""
    if value is None:
        return "—"
    return table.get(value, value.replace("_", " "))
