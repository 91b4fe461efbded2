"""The ``okr`` command line: ``okr apply`` (docs/okrs-as-code.md), ``okr audit …`` (docs/audit.md), and the everyday
``okr scorecard``, ``okr alerts`` and ``okr checkin`` (docs/cli.md)."""
