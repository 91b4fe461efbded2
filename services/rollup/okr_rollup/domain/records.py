"""A node's score as the bytes the rollup publishes: the canonical JSON of its okr.scores.v1 envelope.

The bytes are those of ``canonical(Envelope.wrap(NodeScored(...)).as_json())``, but
written directly: pydantic's validation and dumping cost more than the scoring itself
when a key result's update rescores a handful of nodes with a dozen children each.
What the direct path writes it checks first, as the contract's models would; anything
it does not vouch for (a value of another type, out of range or not finite, as a
custom rule might return) goes through the models instead, which give the same bytes
or raise the same validation error. Each derivation input's JSON is written once and
reused while the scoring code hands over the same input object (it keeps them per
child; see :func:`okr_rollup.domain.scoring.Contribution`).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from json.encoder import encode_basestring
from typing import Any

from pydantic import AwareDatetime, TypeAdapter

from okr_contracts.envelope import Envelope, EventPayload, envelope_class
from okr_contracts.scores import Derivation, DerivationInput, NodeKind, NodeScored, ScoreStatus
from okr_rollup.domain.scoring import Score

PRODUCER = "rollup"
SCORE_ID_NAMESPACE = uuid.UUID("5c0e5b1e-7a52-4d7e-9d55-0d1a0a1e2b3c")
VOLATILE = frozenset({"as_of", "source_event_id"})

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_MOMENT = TypeAdapter(AwareDatetime)
_NODE_SCORED = envelope_class(NodeScored)
_NAMESPACE = SCORE_ID_NAMESPACE.bytes


def canonical(data: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, floats as Python's shortest round-trip repr."""
    return _CANONICAL.encode(data).encode()


@dataclass(frozen=True)
class ScoreRecord:
    """A score record ready to store and publish: the node, its envelope's bytes, its event id and as-of time.

    ``as_of`` is the time the bytes say (the source event's ``recorded_at`` as written).
    The envelope itself is read back from the bytes when asked for (the store and the
    tests ask; a replay keeps only the bytes).
    """

    node_id: str
    value: bytes
    event_id: str
    as_of: datetime

    @cached_property
    def envelope(self) -> Envelope[NodeScored]:
        """The record as the contract's envelope, parsed from its bytes."""
        envelope: Envelope[NodeScored] = _NODE_SCORED.model_validate_json(self.value)
        return envelope


@dataclass(frozen=True)
class Source:
    """The history event a record is derived from: its envelope, its id and time as the record writes them, and that time read back."""

    envelope: Envelope[EventPayload]
    event_id: str
    at: str
    as_of: datetime

    @classmethod
    def of(cls, envelope: Envelope[EventPayload]) -> Source:
        """The parts of a history event every record it causes repeats."""
        written: str = _MOMENT.dump_python(envelope.recorded_at, mode="json")
        return cls(envelope, str(envelope.event_id), encode_basestring(written), datetime.fromisoformat(written))


@dataclass(frozen=True, slots=True)
class Placement:
    """What a record says of the node itself, apart from its score."""

    node_id: str
    node_kind: NodeKind
    tier: int
    cycle_id: str
    title: str
    product_id: str | None
    objective_id: str | None
    contributes_to: str | None


class RecordWriter:
    """One portfolio's score records: each node's latest content digest, and the bytes of a record when it changes."""

    def __init__(self, portfolio_id: str) -> None:
        self.portfolio_id = portfolio_id
        self.published: dict[str, bytes] = {}
        self._portfolio = encode_basestring(portfolio_id)
        self._inputs_held: dict[str, tuple[DerivationInput, ...]] = {}
        self._inputs_json: dict[str, dict[int, str]] = {}

    def record(self, place: Placement, score: Score, mixed: bool, version: str, source: Source) -> ScoreRecord | None:
        """The node's record if what it says changed since its last one (never merely its time), else None."""
        parts = self._parts(place, score, mixed, version)
        if parts is None:
            return self.validated(place, score, mixed, version, source)
        head, tail = parts
        digest = hashlib.blake2b(f"{{{head},{tail}}}".encode(), digest_size=16).digest()
        if self.published.get(place.node_id) == digest:
            return None
        self.published[place.node_id] = digest
        event_id = score_id(f"{self.portfolio_id}/{place.node_id}/{source.event_id}")
        at = source.at
        value = (
            f'{{"data":{{"as_of":{at},{head},"source_event_id":"{source.event_id}",{tail}}},"event_id":"{event_id}",'
            f'"occurred_at":{at},"producer":"{PRODUCER}","recorded_at":{at},"schema_version":{NodeScored.schema_version},'
            f'"type":"{NodeScored.event_type()}"}}'
        )
        return ScoreRecord(place.node_id, value.encode(), event_id, source.as_of)

    def validated(self, place: Placement, score: Score, mixed: bool, version: str, source: Source) -> ScoreRecord | None:
        """The same record built through the contract's models, which validate every field (and raise if one is wrong)."""
        payload = self.payload(place, score, mixed, version, source.envelope)
        content = payload.model_dump(mode="json", exclude=set(VOLATILE))
        digest = hashlib.blake2b(canonical(content), digest_size=16).digest()
        if self.published.get(place.node_id) == digest:
            return None
        self.published[place.node_id] = digest
        recorded_at = source.envelope.recorded_at
        event_id = uuid.uuid5(SCORE_ID_NAMESPACE, f"{self.portfolio_id}/{place.node_id}/{source.event_id}")
        envelope = Envelope.wrap(payload, producer=PRODUCER, occurred_at=recorded_at, recorded_at=recorded_at, event_id=event_id)
        return ScoreRecord(place.node_id, canonical(envelope.as_json()), str(event_id), source.as_of)

    def payload(self, place: Placement, score: Score, mixed: bool, version: str, source: Envelope[EventPayload]) -> NodeScored:
        """The record's payload as the contract's model."""
        return NodeScored(
            portfolio_id=self.portfolio_id,
            node_id=place.node_id,
            node_kind=place.node_kind,
            tier=place.tier,
            cycle_id=place.cycle_id,
            title=place.title,
            product_id=place.product_id,
            objective_id=place.objective_id,
            contributes_to=place.contributes_to,
            status=score.status,
            progress=score.progress,
            raw_progress=score.raw_progress,
            confidence=score.confidence,
            mixed_methods=mixed,
            derivation=score.derivation,
            scoring_rules_version=version,
            as_of=source.recorded_at,
            source_event_id=str(source.event_id),
        )

    def _parts(self, place: Placement, score: Score, mixed: bool, version: str) -> tuple[str, str] | None:
        """The payload's JSON members before ``source_event_id`` (less ``as_of``) and after it, or None if not vouched for."""
        progress, raw, confidence, status = score.progress, score.raw_progress, score.confidence, score.status
        if not (type(progress) is float and 0.0 <= progress <= 1.0) or not _finite_or_none(raw) or not _fraction_or_none(confidence):
            return None
        if type(status) is not ScoreStatus or type(mixed) is not bool or type(version) is not str or not version:
            return None
        derivation = self._derivation(place.node_id, score.derivation)
        if derivation is None:
            return None
        head = (
            f'"confidence":{_number(confidence)},"contributes_to":{_text(place.contributes_to)},'
            f'"cycle_id":{encode_basestring(place.cycle_id)},"derivation":{derivation},"mixed_methods":{"true" if mixed else "false"},'
            f'"node_id":{encode_basestring(place.node_id)},"node_kind":"{place.node_kind.value}",'
            f'"objective_id":{_text(place.objective_id)},"portfolio_id":{self._portfolio},"product_id":{_text(place.product_id)},'
            f'"progress":{progress!r},"raw_progress":{_number(raw)},"scoring_rules_version":{encode_basestring(version)}'
        )
        tail = f'"status":"{status.value}","tier":{place.tier},"title":{encode_basestring(place.title)}'
        return head, tail

    def _derivation(self, node_id: str, derivation: Derivation) -> str | None:
        """A derivation's JSON, or None if it is not the contract's model with plain, finite numbers."""
        if type(derivation) is not Derivation:
            return None
        baseline, target, hit = derivation.baseline, derivation.target, derivation.hit_threshold
        if not (_finite_or_none(baseline) and _finite_or_none(target) and _fraction_or_none(hit)):
            return None
        return (
            f'{{"baseline":{_number(baseline)},"formula":{encode_basestring(derivation.formula)},"hit_threshold":{_number(hit)},'
            f'"inputs":[{self._inputs(node_id, derivation.inputs)}],"method":{encode_basestring(derivation.method)},'
            f'"target":{_number(target)}}}'
        )

    def _inputs(self, node_id: str, inputs: tuple[DerivationInput, ...]) -> str:
        """The inputs' JSON; each input object's is written once while the node's derivations keep naming it.

        A parent rescored because one child changed names the same input objects for the
        others (the scoring code keeps them per child). They are found by identity among
        the node's previous inputs, which are held until the next derivation, so an id
        cannot have been reused by another object in between.
        """
        before = self._inputs_json.get(node_id, {})
        written: dict[int, str] = {}
        parts = []
        for found in inputs:
            key = id(found)
            text = written[key] = before.get(key) or _input_json(found)
            parts.append(text)
        self._inputs_held[node_id], self._inputs_json[node_id] = inputs, written
        return ",".join(parts)


def _input_json(found: DerivationInput) -> str:
    """A derivation input's canonical JSON: written directly when its fields hold what validation leaves there."""
    weight, raw, value, unit, confidence, hit = found.weight, found.raw_progress, found.value, found.unit, found.confidence, found.hit
    plain = (
        type(found.node_id) is str
        and type(found.progress) is float
        and type(found.pending) is bool
        and (hit is None or type(hit) is bool)
        and (unit is None or type(unit) is str)
        and all(x is None or (type(x) is float and math.isfinite(x)) for x in (weight, raw, value, confidence))
    )
    if not plain:
        return _CANONICAL.encode(found.model_dump(mode="json"))
    return (
        f'{{"confidence":{_number(confidence)},"hit":{_flag(hit)},"node_id":{encode_basestring(found.node_id)},'
        f'"pending":{_flag(found.pending)},"progress":{found.progress!r},"raw_progress":{_number(raw)},"unit":{_text(unit)},'
        f'"value":{_number(value)},"weight":{_number(weight)}}}'
    )


def score_id(name: str) -> str:
    """``str(uuid.uuid5(SCORE_ID_NAMESPACE, name))``, without the UUID object in between."""
    digest = bytearray(hashlib.sha1(_NAMESPACE + name.encode()).digest()[:16])  # noqa: S324  # UUIDv5 is SHA-1 by definition
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _finite_or_none(x: object) -> bool:
    return x is None or (type(x) is float and math.isfinite(x))


def _fraction_or_none(x: object) -> bool:
    return x is None or (type(x) is float and 0.0 <= x <= 1.0)


def _number(x: float | None) -> str:
    return "null" if x is None else repr(x)


def _flag(x: bool | None) -> str:
    return "null" if x is None else "true" if x else "false"


def _text(x: str | None) -> str:
    return "null" if x is None else encode_basestring(x)
