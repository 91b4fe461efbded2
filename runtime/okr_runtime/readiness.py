"""Waiting for a service started as a process to answer ``/health/ready``: the harnesses of tests and benchmarks."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_ready(name: str, url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    """Poll ``url``'s readiness until it answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited during start-up ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} was not ready within {timeout_s:.0f} s; see {log}")
