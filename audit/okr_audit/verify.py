"""Verifying a history export: the hash chain is intact, or every tampering is named and located.

Each record's hash covers its content and the previous record's hash, so an edit
breaks the record's own hash, and an edit whose hash was recomputed breaks the next
record's link. Positions run 1, 2, … in file order, so a removed record leaves a gap,
an inserted one a duplicate position or a broken link, and a reordering a run of
lines out of order. Only the end of the file is invisible to the chain: a trusted
head (the last hash and position, from the export's response headers or Kafka's
``okr-chain-hash``) closes it.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from okr_audit.history import Line, portfolio_named
from okr_contracts.export import GENESIS, canonical_json, payload_of, record_hash


class Tampering(StrEnum):
    """What a finding says happened."""

    UNREADABLE = "unreadable"
    REFORMATTED = "reformatted"
    EDITED = "edited"
    REHASHED = "edited-and-rehashed"
    REMOVED = "removed"
    INSERTED = "inserted"
    REORDERED = "reordered"
    FOREIGN = "foreign"
    INVALID = "invalid"
    END = "end-does-not-match"


@dataclass(frozen=True, order=True)
class Finding:
    """One place where the file is not the history it claims to be."""

    line: int
    kind: Tampering
    detail: str
    position: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (position {self.position})" if self.position is not None else "")
        return f"{where}: {self.kind.value}: {self.detail}"


@dataclass(frozen=True)
class Head:
    """What the trusted source says the history ends with: its last position and that record's hash."""

    hash: str
    length: int | None = None


@dataclass
class Verification:
    """The outcome of verifying one history file."""

    lines: int
    portfolio_id: str | None
    last_position: int | None
    last_hash: str | None
    head_checked: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """No finding at all."""
        return not self.findings


def verify(lines: Sequence[Line], head: Head | None = None) -> Verification:
    """Every finding in a history file, ordered by line; empty when the chain is intact (and ends at `head`, if given)."""
    findings: list[Finding] = []
    readable = [line for line in lines if line.record is not None]
    findings += [Finding(line.number, Tampering.UNREADABLE, line.error or "unreadable") for line in lines if line.record is None]
    positioned = [line for line in readable if line.position is not None]
    sound = {line.number: _hash_ok(line.record or {}) for line in positioned}  # each hash computed once
    findings += _content(readable, sound)
    findings += _order(positioned)
    genuine, inserted = _duplicates(positioned, sound)
    findings += inserted
    findings += _gaps(lines, positioned)
    findings += _links(genuine, sound)
    last = genuine[max(genuine)] if genuine else None
    if head is not None and last is not None:
        findings += _end(last, genuine, head)
    pid = next((named for line in readable if (named := portfolio_named(line.record or {})) is not None), None)
    findings += _foreign(readable, pid)
    findings.sort()
    return Verification(
        lines=len(lines),
        portfolio_id=pid,
        last_position=last.position if last else None,
        last_hash=str(last.record.get("hash")) if last and last.record else None,
        head_checked=head is not None,
        findings=findings,
    )


def _hash_ok(record: dict[str, Any]) -> bool:
    try:
        return record_hash(record) == record.get("hash")
    except (KeyError, TypeError, AttributeError, ValueError):
        return False


def _content(readable: Sequence[Line], sound: dict[int, bool]) -> list[Finding]:
    """Each record's own hash, its bytes against its canonical form, and its payload against its contract."""
    found: list[Finding] = []
    for line in readable:
        assert line.record is not None
        if line.position is None:
            found.append(Finding(line.number, Tampering.EDITED, "the record has no whole-number position"))
        elif not sound[line.number]:
            detail = "its hash does not match its content: the record was changed after it was recorded"
            found.append(Finding(line.number, Tampering.EDITED, detail, line.position))
        elif canonical_json(line.record) != line.raw:
            detail = "its bytes are not the canonical JSON of its content (the content is as hashed, the text was rewritten)"
            found.append(Finding(line.number, Tampering.REFORMATTED, detail, line.position))
        else:
            try:
                payload_of(line.record)
            except Exception as exc:  # a record hashed as it is but not a valid contract event
                found.append(
                    Finding(line.number, Tampering.INVALID, f"not a valid {line.record.get('type')!r} event: {exc}", line.position)
                )
    return found


def _order(positioned: Sequence[Line]) -> list[Finding]:
    """Runs of lines whose positions are not in file order, each reported once at its first line."""
    windows: list[list[int]] = []
    running_max: list[int] = []
    for index, line in enumerate(positioned):
        position = line.position or 0
        if running_max and position < running_max[-1]:
            start = bisect.bisect_right(running_max, position)
            if windows and start <= windows[-1][1]:
                windows[-1][1] = index
            else:
                windows.append([start, index])
        running_max.append(max(position, running_max[-1]) if running_max else position)
    found = []
    for start, end in windows:
        span = positioned[start : end + 1]
        shown = ", ".join(str(line.position) for line in span[:12]) + (", …" if len(span) > 12 else "")
        detail = f"lines {span[0].number} to {span[-1].number} hold positions {shown}: out of order"
        found.append(Finding(span[0].number, Tampering.REORDERED, detail, span[0].position))
    return found


def _duplicates(positioned: Sequence[Line], sound: dict[int, bool]) -> tuple[dict[int, Line], list[Finding]]:
    """One genuine line per position (the one its neighbours chain to), and a finding for every other claimant."""
    claims: dict[int, list[Line]] = defaultdict(list)
    for line in positioned:
        claims[line.position or 0].append(line)
    hashes = {p: {str((c.record or {}).get("hash")) for c in cs} for p, cs in claims.items()}
    prevs = {p: {str((c.record or {}).get("prev_hash")) for c in cs} for p, cs in claims.items()}
    genuine: dict[int, Line] = {}
    found: list[Finding] = []
    for position, lines in claims.items():
        if len(lines) == 1:
            genuine[position] = lines[0]
            continue
        before = {GENESIS} if position == 1 else hashes.get(position - 1, set())
        after = prevs.get(position + 1, set())

        def fits(line: Line, before: set[str] = before, after: set[str] = after) -> bool:
            record = line.record or {}
            return sound[line.number] and record.get("prev_hash") in before and (not after or record.get("hash") in after)

        keep = next((line for line in lines if fits(line)), lines[0])
        genuine[position] = keep
        for line in lines:
            if line is keep:
                continue
            if line.raw == keep.raw:
                detail = f"a copy of line {keep.number}: position {position} appears twice"
            else:
                detail = f"a second record claiming position {position}; line {keep.number} is the one the chain runs through"
            found.append(Finding(line.number, Tampering.INSERTED, detail, position))
    return genuine, found


def _gaps(lines: Sequence[Line], positioned: Sequence[Line]) -> list[Finding]:
    """Positions that no line holds, reported where they should be (unless an unreadable line sits there)."""
    present = Counter(line.position for line in positioned)
    if not present:
        return []
    by_position = {line.position: line for line in positioned}
    unreadable = sorted(line.number for line in lines if line.record is None)
    found: list[Finding] = []
    missing = [p for p in range(1, max(p for p in present if p is not None) + 1) if p not in present]
    for first, last in _ranges(missing):
        before, after = by_position.get(first - 1), by_position.get(last + 1)
        low, high = (before.number if before else 0), (after.number if after else 1 << 62)
        if sum(1 for n in unreadable if low < n < high) >= last - first + 1:
            continue  # the unreadable lines there are the missing records, already reported
        what = f"position {first} is" if first == last else f"positions {first} to {last} are"
        near = f"after line {before.number}" if before else f"before line {after.number}" if after else "in the file"
        line = after.number if after else before.number if before else 1
        found.append(Finding(line, Tampering.REMOVED, f"{what} missing {near}", first))
    return found


def _links(genuine: dict[int, Line], sound: dict[int, bool]) -> list[Finding]:
    """Each record's prev_hash against the hash of the record before it."""
    found: list[Finding] = []
    for position in sorted(genuine):
        line = genuine[position]
        record = line.record or {}
        if position == 1:
            if record.get("prev_hash") != GENESIS:
                found.append(
                    Finding(line.number, Tampering.EDITED, "the first record does not start the chain (prev_hash is not 64 zeros)", 1)
                )
            continue
        before = genuine.get(position - 1)
        if before is None or not sound[line.number] or not sound[before.number]:
            continue  # a gap or a broken hash is reported already
        if record.get("prev_hash") != (before.record or {}).get("hash"):
            detail = (
                f"the next record (line {line.number}) was chained to a different record {position - 1}: "
                "this one was replaced, or edited and its hash recomputed"
            )
            found.append(Finding(before.number, Tampering.REHASHED, detail, position - 1))
    return found


def _end(last: Line, genuine: dict[int, Line], head: Head) -> list[Finding]:
    """The file's last record against the trusted head."""
    record = last.record or {}
    if record.get("hash") == head.hash and (head.length is None or head.length == last.position):
        return []
    ends_at = next((line for line in genuine.values() if (line.record or {}).get("hash") == head.hash), None)
    if ends_at is not None:
        detail = f"the trusted head is position {ends_at.position} (line {ends_at.number}); the records after it were added"
    elif head.length is not None and last.position is not None and head.length > last.position:
        detail = f"the file ends at position {last.position} but the history has {head.length} records: the last ones were removed"
    else:
        detail = f"the file ends with hash {record.get('hash')}, not the trusted head {head.hash}: its end was rewritten"
    return [Finding(last.number, Tampering.END, detail, last.position)]


def _foreign(readable: Sequence[Line], portfolio_id: str | None) -> list[Finding]:
    found = []
    for line in readable:
        other = portfolio_named(line.record or {})
        if other is not None and other != portfolio_id:
            found.append(Finding(line.number, Tampering.FOREIGN, f"a record of portfolio {other!r}, not {portfolio_id!r}", line.position))
    return found


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out
