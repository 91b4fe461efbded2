"""Routes drift alerts and cadence digests to Slack and email: once per alert state and recipient, with retries and a dead-letter topic."""
