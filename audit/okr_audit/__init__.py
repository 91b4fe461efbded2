"""Auditing okrstream without trusting its running services: verify a history, replay it, check the published scores.

``history`` reads an export, ``verify`` locates tampering, ``replay`` recomputes every
score with the rollup's own pure scoring code, ``check`` compares the replay with what
was published on ``okr.scores.v1``, and ``sources`` fetches the files. The ``okr audit``
commands (``okr_cli``) put them together; docs/audit.md walks through them.
"""
