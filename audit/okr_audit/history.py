"""Reading a history export: one record per line, kept with its line number and its bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Line:
    """One line of an export: its number (from 1), its bytes without the newline, and the record if it is a JSON object."""

    number: int
    raw: bytes
    record: dict[str, Any] | None
    error: str | None = None

    @property
    def position(self) -> int | None:
        """The position the record claims, if it claims a whole number."""
        position = self.record.get("position") if self.record is not None else None
        return position if isinstance(position, int) and not isinstance(position, bool) else None


class HistoryError(ValueError):
    """A history file that cannot be used at all (missing, empty, or a portfolio that cannot be told)."""


def parse_lines(raw_lines: Iterable[bytes]) -> list[Line]:
    """Each non-empty line parsed; a line that is not a JSON object is kept with the reason."""
    lines: list[Line] = []
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        lines.append(_parse(number, raw))
    return lines


def read_lines(path: Path) -> list[Line]:
    """The lines of a history file."""
    if not path.is_file():
        raise HistoryError(f"{path} is not a file")
    with path.open("rb") as handle:
        lines = parse_lines(handle)
    if not lines:
        raise HistoryError(f"{path} holds no records")
    return lines


def records(lines: Iterable[Line]) -> Iterator[dict[str, Any]]:
    """The records of the lines that parsed."""
    return (line.record for line in lines if line.record is not None)


def portfolio_named(record: dict[str, Any]) -> str | None:
    """The portfolio a record says it belongs to (its ``data.portfolio_id``), if it says."""
    data = record.get("data")
    return str(data["portfolio_id"]) if isinstance(data, dict) and isinstance(data.get("portfolio_id"), str) else None


def portfolio_of(lines: Iterable[Line]) -> str:
    """The portfolio the history belongs to, from its first record that names one."""
    for record in records(lines):
        if (named := portfolio_named(record)) is not None:
            return named
    raise HistoryError("no record names its portfolio (data.portfolio_id)")


def _parse(number: int, raw: bytes) -> Line:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Line(number, raw, None, f"not JSON: {exc}")
    if not isinstance(value, dict):
        return Line(number, raw, None, f"a JSON {type(value).__name__}, not an object")
    return Line(number, raw, value)
