"""The ``okr`` command line: ``okr audit …`` today (docs/audit.md)."""
