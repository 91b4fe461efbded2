"""Runtime code every okrstream service shares, written once.

Settings, structured logs, telemetry, the Kafka broker factory, the consumer
wrapper with its dead-letter routing, health endpoints, RFC 7807 errors and the
event-store configuration. Services import it; none copies it.
"""
