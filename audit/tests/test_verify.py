"""Verifying an export: an intact chain passes; every edit, removal, insertion or reordering is named and located."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from okr_audit.history import parse_lines
from okr_audit.verify import Head, Tampering, Verification, verify
from okr_contracts.export import canonical_json, record_hash


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def check(raw: list[bytes], head: Head | None = None) -> Verification:
    return verify(parse_lines(raw), head)


def kinds(result: Verification) -> list[tuple[int, Tampering]]:
    return [(f.line, f.kind) for f in result.findings]


def test_an_untouched_export_is_intact_and_ends_at_the_exported_head(exported: Path, story: Any) -> None:
    raw = lines_of(exported)
    _, headers = story.export(exported)
    result = check(raw, Head(headers["okr-chain-head"], int(headers["okr-chain-length"])))
    assert result.intact, [str(f) for f in result.findings]
    assert (result.lines, result.last_position, result.portfolio_id) == (len(raw), len(raw), "acme")
    assert result.last_hash == headers["okr-chain-head"]


def test_one_changed_digit_in_one_event_is_located(exported: Path) -> None:
    raw = lines_of(exported)
    line = next(i for i, r in enumerate(raw) if b'"value":45.0' in r)
    raw[line] = raw[line].replace(b'"value":45.0', b'"value":46.0')
    result = check(raw)
    assert kinds(result) == [(line + 1, Tampering.EDITED)]
    assert result.findings[0].position == line + 1
    assert "changed after it was recorded" in str(result.findings[0])


@pytest.mark.parametrize("seed", range(12))
def test_any_single_byte_changed_anywhere_in_an_event_is_located_on_its_line(exported: Path, seed: int) -> None:
    raw = lines_of(exported)
    rng = random.Random(seed)
    line = rng.randrange(len(raw))
    offset = rng.randrange(len(raw[line]))
    changed = bytearray(raw[line])
    changed[offset] = (changed[offset] + rng.randrange(1, 255)) % 256
    raw[line] = bytes(changed)
    result = check(raw)
    assert not result.intact
    assert min(f.line for f in result.findings) == line + 1, [str(f) for f in result.findings]


def test_a_deleted_event_is_reported_where_it_was(exported: Path) -> None:
    raw = lines_of(exported)
    del raw[9]
    result = check(raw)
    assert kinds(result) == [(10, Tampering.REMOVED)]
    assert result.findings[0].position == 10
    assert "position 10 is missing after line 9" in str(result.findings[0])


def test_two_swapped_events_are_reported_with_both_lines(exported: Path) -> None:
    raw = lines_of(exported)
    raw[4], raw[7] = raw[7], raw[4]
    result = check(raw)
    assert kinds(result) == [(5, Tampering.REORDERED)]
    assert "lines 5 to 8 hold positions 8, 6, 7, 5: out of order" in str(result.findings[0])


def test_two_adjacent_swapped_events_are_located(exported: Path) -> None:
    raw = lines_of(exported)
    raw[12], raw[13] = raw[13], raw[12]
    assert kinds(check(raw)) == [(13, Tampering.REORDERED)]


def test_an_inserted_copy_and_an_inserted_forgery_are_told_from_the_genuine_record(exported: Path) -> None:
    raw = lines_of(exported)
    forged = json.loads(raw[5])
    forged["data"]["title"] = "A forged objective"
    forged["hash"] = record_hash(forged)  # consistent in itself, but nothing after it chains to it
    raw = [*raw[:6], canonical_json(forged), *raw[6:8], raw[7], *raw[8:]]
    result = check(raw)
    assert kinds(result) == [(7, Tampering.INSERTED), (10, Tampering.INSERTED)]
    assert "line 6 is the one the chain runs through" in str(result.findings[0])
    assert "a copy of line 9" in str(result.findings[1])


def test_an_edit_whose_hash_was_recomputed_is_caught_by_the_next_link(exported: Path) -> None:
    raw = lines_of(exported)
    record = json.loads(raw[15])
    record["occurred_at"] = record["occurred_at"].replace("2026", "2025")
    record["hash"] = record_hash(record)
    raw[15] = canonical_json(record)
    result = check(raw)
    assert kinds(result) == [(16, Tampering.REHASHED)]
    assert "next record (line 17) was chained to a different record 16" in str(result.findings[0])


def test_removed_last_events_are_invisible_to_the_chain_but_not_to_the_trusted_head(exported: Path) -> None:
    raw = lines_of(exported)
    head = Head(json.loads(raw[-1])["hash"], len(raw))
    cut = raw[:-2]
    assert check(cut).intact  # the chain alone cannot see its end
    result = check(cut, head)
    assert kinds(result) == [(len(cut), Tampering.END)]
    assert f"the history has {len(raw)} records: the last ones were removed" in str(result.findings[0])


def test_an_appended_event_is_caught_by_the_trusted_head(exported: Path) -> None:
    raw = lines_of(exported)
    head = Head(json.loads(raw[-1])["hash"], len(raw))
    extra = json.loads(raw[-1])
    extra.update(position=len(raw) + 1, prev_hash=extra["hash"])
    extra["hash"] = record_hash(extra)
    result = check([*raw, canonical_json(extra)], head)
    assert kinds(result) == [(len(raw) + 1, Tampering.END)]
    assert f"the trusted head is position {len(raw)}" in str(result.findings[0])


def test_reformatted_json_with_the_same_content_is_reported(exported: Path) -> None:
    raw = lines_of(exported)
    raw[3] = json.dumps(json.loads(raw[3]), indent=None).encode()  # spaces after separators, same content
    assert kinds(check(raw)) == [(4, Tampering.REFORMATTED)]


def test_a_line_that_is_not_json_is_reported_without_also_calling_its_record_removed(exported: Path) -> None:
    raw = lines_of(exported)
    raw[2] = raw[2][:40]
    result = check(raw)
    assert kinds(result) == [(3, Tampering.UNREADABLE)]
    assert "not JSON" in str(result.findings[0])
