"""Vendor payloads (Jira, Linear, Slack) parsed into contract events; pure functions, no I/O."""
