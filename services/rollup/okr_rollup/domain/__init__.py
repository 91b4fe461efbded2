"""Scoring rules and the per-portfolio projection: pure, no I/O."""
