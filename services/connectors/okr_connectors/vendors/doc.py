"""Reading vendor JSON by dotted paths, so that every failure names the field it failed at.

The parsers only ever see ``json.loads`` output: objects, arrays, strings, numbers,
booleans and null. A missing value and a JSON null read the same (``None``); an empty
string counts as missing too, since no field we read is meaningful when empty.
Times are ISO 8601 with an offset (Jira writes ``-0800``, Linear ``Z``) and come
back in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from okr_connectors.vendors.errors import PayloadRejected

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Doc:
    """A JSON object and where it sits in the payload (``issue.fields``), read by dotted paths."""

    data: dict[str, Any]
    where: str

    @classmethod
    def of(cls, value: object, where: str) -> Doc:
        """Wrap ``value``, which must be a JSON object."""
        if not isinstance(value, dict):
            raise PayloadRejected(f"{where} must be a JSON object")
        return cls(value, where)

    def name(self, path: str) -> str:
        """The full name of ``path`` below this object, for messages."""
        return f"{self.where}.{path}" if self.where else path

    def at(self, path: str) -> object:
        """The raw value at ``path``, or None when a step is missing or not an object."""
        value: object = self.data
        for step in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        return value

    def obj(self, path: str) -> Doc | None:
        """The object at ``path``, or None when it is missing."""
        value = self.at(path)
        return None if value is None else Doc.of(value, self.name(path))

    def text(self, path: str) -> str | None:
        """The string at ``path``, or None when it is missing or empty."""
        value = self.at(path)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise PayloadRejected(f"{self.name(path)} must be a string")
        return value

    def required_text(self, path: str) -> str:
        """The non-empty string at ``path``."""
        value = self.text(path)
        if value is None:
            raise PayloadRejected(f"missing {self.name(path)}")
        return value

    def time(self, path: str) -> datetime | None:
        """The ISO 8601 date-time with an offset at ``path``, in UTC, or None when it is missing."""
        value = self.at(path)
        if value is None or value == "":
            return None
        parsed = _parse_time(value) if isinstance(value, str) else None
        if parsed is None:
            raise PayloadRejected(f"{self.name(path)} must be an ISO 8601 date-time with an offset, not {value!r}")
        return parsed

    def required_time(self, path: str) -> datetime:
        """The date-time at ``path``, in UTC."""
        value = self.time(path)
        if value is None:
            raise PayloadRejected(f"missing {self.name(path)}")
        return value

    def texts(self, path: str, key: str | None = None) -> tuple[str, ...]:
        """The strings in the array at ``path`` (or each element's ``key``), skipping anything else."""
        value = self.at(path)
        if not isinstance(value, list):
            return ()
        items = (item.get(key) if isinstance(item, dict) else None for item in value) if key else iter(value)
        return tuple(item for item in items if isinstance(item, str) and item)


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def build(model: type[ModelT], what: str, **fields: Any) -> ModelT:
    """Validate ``fields`` into ``model``, turning a validation error into a rejection that lists the bad fields."""
    try:
        return model(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())
        raise PayloadRejected(f"{what} does not fit {model.__name__}: {problems}") from error
