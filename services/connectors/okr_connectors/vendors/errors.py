"""The one error every vendor parser raises for a payload it cannot turn into an event."""

from __future__ import annotations


class PayloadRejected(ValueError):
    """A vendor payload is malformed or of an unknown type; the message says what is wrong, for a 4xx problem.

    Payloads of a known but irrelevant type are not rejected: the parsers return ``None`` for them.
    """
