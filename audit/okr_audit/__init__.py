"""Auditing okrstream without trusting its running services: verify a history, replay it, check the published scores and capacity.

``history`` reads an export, ``verify`` locates tampering, ``replay`` recomputes every
score and each cycle's capacity with the rollup's own pure code, ``check`` compares the
replay with what was published on ``okr.scores.v1``, ``capacity`` with the rollup's
capacity answer, and ``sources`` fetches them. The ``okr audit`` commands (``okr_cli``)
put them together; docs/audit.md walks through them.
"""
