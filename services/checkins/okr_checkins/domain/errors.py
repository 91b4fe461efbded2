"""Business-rule violations; each names a stable problem code the HTTP layer maps to a status."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A command broke a rule of the model; nothing was recorded."""

    code: ClassVar[str] = "invalid-command"

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


class InvalidCommand(DomainError):
    """The command is well-formed but contradicts the model (e.g. a tier-2 objective without a product)."""


class UnknownId(DomainError):
    """A portfolio, product, team, cycle, objective or key result that does not exist."""

    code = "unknown-id"


class AlreadyDefined(DomainError):
    """An id that is already taken in this portfolio."""

    code = "already-defined"


class BaselineEqualsTarget(DomainError):
    """A metric key result whose baseline equals its target can never show progress."""

    code = "baseline-equals-target"


class InvalidLink(DomainError):
    """A contributes-to link that skips a tier, points down or sideways, or makes a cycle."""

    code = "invalid-link"


class MixedMethodsRefused(DomainError):
    """A node overriding the portfolio's rollup method while the portfolio does not allow mixed methods."""

    code = "mixed-methods-refused"


class UnitMismatch(DomainError):
    """A contribution to a key result rolled up by KPI from a node without the same unit."""

    code = "unit-mismatch"


class RetiredKeyResult(DomainError):
    """A command on a key result that was retired."""

    code = "key-result-retired"


class CycleClosed(DomainError):
    """A change to a cycle that was already scored."""

    code = "cycle-closed"


class NotPermitted(DomainError):
    """The principal's role does not allow this command on this node."""

    code = "forbidden"


class VersionConflict(DomainError):
    """The client's expected version is stale."""

    code = "version-conflict"


class IdempotencyKeyReused(DomainError):
    """An Idempotency-Key sent again with a different request."""

    code = "idempotency-key-reused"
