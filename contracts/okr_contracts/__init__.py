"""The wire of okrstream: event models, the envelope, the topic registry.

Everything a producer or a downstream consumer needs to read and write the
``okr.*`` topics lives here, and nothing else: no service logic.
"""

from okr_contracts.envelope import Envelope, EventPayload, Headers
from okr_contracts.topics import TOPICS, TopicSpec, dead_letter_topic, topic

__all__ = [
    "TOPICS",
    "Envelope",
    "EventPayload",
    "Headers",
    "TopicSpec",
    "dead_letter_topic",
    "topic",
]
