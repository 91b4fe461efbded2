"""The portfolio aggregate, its state, access rules and hash chain; no I/O."""
