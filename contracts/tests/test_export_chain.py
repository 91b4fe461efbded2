"""The hash chain locates every edited, removed, inserted or reordered record."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from okr_contracts.export import GENESIS, record_hash, verify_chain


def chain(n: int) -> list[dict[str, Any]]:
    records, previous = [], GENESIS
    for position in range(1, n + 1):
        record: dict[str, Any] = {
            "position": position,
            "type": "CheckInRecorded",
            "data": {"confidence": position / 10},
            "prev_hash": previous,
        }
        record["hash"] = record_hash(record)
        records.append(record)
        previous = record["hash"]
    return records


def test_an_untouched_chain_verifies() -> None:
    assert verify_chain(chain(5)) == []


def test_one_edited_value_is_located() -> None:
    records = chain(5)
    records[2]["data"]["confidence"] = 0.31
    assert [b.position for b in verify_chain(records)] == [3]


def test_a_removed_record_is_located() -> None:
    records = chain(5)
    del records[1]
    assert {b.position for b in verify_chain(records)} == {2}


def test_an_inserted_record_is_located() -> None:
    records = chain(5)
    forged = copy.deepcopy(records[1])
    records.insert(2, forged)
    assert verify_chain(records)[0].position == 3


@pytest.mark.parametrize(("i", "j"), [(0, 1), (1, 3)])
def test_two_swapped_records_are_located(i: int, j: int) -> None:
    records = chain(5)
    records[i], records[j] = records[j], records[i]
    assert verify_chain(records)[0].position == i + 1


def test_a_rehashed_edit_still_breaks_the_link_to_the_next_record() -> None:
    records = chain(4)
    records[1]["data"]["confidence"] = 0.9
    records[1]["hash"] = record_hash(records[1])
    assert [b.position for b in verify_chain(records)] == [3]
