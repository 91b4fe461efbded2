"""The ``okr`` command line: ``okr apply`` (docs/okrs-as-code.md) and ``okr audit …`` (docs/audit.md)."""
