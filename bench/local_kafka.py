"""The benchmarks' Kafka: the one named by OKR_KAFKA_BOOTSTRAP, else a broker deploy/local/kafka.sh starts for the run
on the benchmarks' own ports and state dir (never the development broker), stopped at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KAFKA_ENV = {
    "OKR_KAFKA_PORT": "29192",
    "OKR_KAFKA_CONTROLLER_PORT": "29193",
    "OKR_STATE_DIR": str(ROOT / ".local" / "bench"),
}


@contextmanager
def kafka(env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """Bootstrap servers and where they come from: OKR_KAFKA_BOOTSTRAP, or a broker this run starts and stops.

    `env` names other ports and state dir than the benchmarks' (the soak runs its broker apart from theirs).
    """
    if bootstrap := os.environ.get("OKR_KAFKA_BOOTSTRAP"):
        yield bootstrap, "from OKR_KAFKA_BOOTSTRAP"
        return
    where = env or KAFKA_ENV
    running = _kafka_script("status", where, check=False)
    if running:
        yield running, "already running, deploy/local/kafka.sh"
        return
    bootstrap = _kafka_script("start", where)
    try:
        yield bootstrap, "started by deploy/local/kafka.sh for this run"
    finally:
        _kafka_script("stop", where, check=False)


def _kafka_script(command: str, env: dict[str, str], *, check: bool = True) -> str:
    """Run deploy/local/kafka.sh on the given ports and state dir; returns what it printed (the bootstrap)."""
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / "kafka.sh"), command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        if check:
            sys.stderr.write(result.stderr[-4000:])
            raise RuntimeError(f"deploy/local/kafka.sh {command} failed ({result.returncode})")
        return ""
    return result.stdout.strip()
