"""The check-in service: the append-only key-result history, its HTTP API and the outbox to Kafka."""
