"""Audit replay rate: what ``okr audit check`` does with a history export, beside just parsing its lines.

The history the service-side replay reads (see :mod:`replay_rate`) is turned, untimed,
into the export an auditor starts from: one record per event (the envelope's fields,
its ``position`` from 1 and the hash chain's ``prev_hash`` and ``hash``), each line
the record's canonical JSON and a newline, as ``okr audit export`` writes them. Then,
timed stage by stage: parse the lines and verify the chain
(:func:`okr_audit.verify.verify`), replay them (:func:`okr_audit.replay.replay_history`:
``envelope_of`` + ``PortfolioProjection.apply`` per record), and check the published
scores against the replay (:func:`okr_audit.check.check`), with the replay's own score
records as the published ones: what the rollup publishes for that history, byte for byte.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from okr_audit.check import CheckReport, check
from okr_audit.history import parse_lines, records
from okr_audit.replay import Replayed, replay_history
from okr_audit.verify import verify
from okr_contracts.export import GENESIS, canonical_json, record_hash

T = TypeVar("T")


@dataclass(frozen=True)
class Audited:
    """Seconds taken by each stage of one audit of the same history, and by the raw baseline (the median of its rounds)."""

    events: int
    file_bytes: int
    score_records: int
    parse_s: float
    verify_s: float
    replay_s: float
    check_s: float
    raw_s: float

    @property
    def parse_verify_s(self) -> float:
        """Reading the file into records and verifying their chain (what ``okr audit verify`` does)."""
        return self.parse_s + self.verify_s

    @property
    def audit_s(self) -> float:
        """The whole audit: parse and verify, replay, check."""
        return self.parse_verify_s + self.replay_s + self.check_s


def measure(portfolio_id: str, values: list[bytes], rounds: int) -> Audited:
    """Export `values` as a hash-chained history (untimed), audit it once stage by stage, and parse its lines `rounds` times."""
    lines = export(values)
    if not verify(parse_lines(lines)).intact:
        raise RuntimeError("the generated export fails verification")
    gc.collect()
    score_records, parse_s, verify_s, replay_s, check_s = _audit(portfolio_id, lines)
    gc.collect()
    raw_s = statistics.median(_timed(lambda: _parse_only(lines))[1] for _ in range(rounds))
    return Audited(len(values), sum(len(line) for line in lines), score_records, parse_s, verify_s, replay_s, check_s, raw_s)


def _audit(portfolio_id: str, lines: list[bytes]) -> tuple[int, float, float, float, float]:
    """One audit, each stage timed on its own: the score records replayed, then seconds to parse, verify, replay and check.

    As ``okr audit check`` runs it: the parsed lines are held while the history is
    replayed, and the replay while it is checked.
    """
    parsed, parse_s = _timed(lambda: parse_lines(lines))
    verification, verify_s = _timed(lambda: verify(parsed))
    if not verification.intact or verification.portfolio_id != portfolio_id:
        raise RuntimeError(f"the export of {portfolio_id} fails verification: {verification.findings[:3]}")
    replayed, replay_s = _timed(lambda: replay_history(portfolio_id, records(parsed)))
    if replayed.events != len(lines) or replayed.refused:
        raise RuntimeError(f"the audit replayed {replayed.events} of {len(lines)} events, refused {len(replayed.refused)}")
    published = [r.value for r in replayed.records]  # what the rollup publishes for this history, byte for byte
    report, check_s = _timed(lambda: check(replayed, published))
    _require_match(report, replayed)
    return len(published), parse_s, verify_s, replay_s, check_s


def export(values: list[bytes]) -> list[bytes]:
    """The history export of a portfolio's message values: records chained in order, one canonical JSON line each."""
    lines: list[bytes] = []
    previous = GENESIS
    for position, value in enumerate(values, start=1):
        record: dict[str, Any] = json.loads(value)
        record["position"], record["prev_hash"] = position, previous
        record["hash"] = previous = record_hash(record)
        lines.append(canonical_json(record) + b"\n")
    return lines


def _parse_only(lines: list[bytes]) -> None:
    """The raw baseline: parse every line of the file as JSON, verify and score nothing."""
    for line in lines:
        json.loads(line)


def _require_match(report: CheckReport, replayed: Replayed) -> None:
    """The check of a replay against its own records must match every one of them."""
    if not report.ok or report.matched != len(replayed.records):
        raise RuntimeError(f"the check matched {report.matched} of {len(replayed.records)} score records: {report.differences[:3]}")


def _timed(run: Callable[[], T]) -> tuple[T, float]:
    """What `run` returns, and the seconds it took."""
    start = time.perf_counter_ns()
    result = run()
    return result, (time.perf_counter_ns() - start) / 1e9
