"""Jira, Linear, Slack and KPI ingestion: signed webhooks, resumable polling, normalised events on Kafka."""
