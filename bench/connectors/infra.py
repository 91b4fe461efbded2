"""Where the benchmark runs: a Kafka broker (given, or started with deploy/local/kafka.sh) and the connectors service as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from okr_runtime.auth import hash_token
from okr_runtime.readiness import wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from local_kafka import kafka as kafka  # noqa: E402 (one module starts the benchmarks' broker; re-exported for run.py)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Service:
    """The running connectors service: its URL, process id, SQLite file and log."""

    url: str
    pid: int
    store_path: Path
    log_path: Path

    def cpu_seconds(self) -> float:
        """User and system CPU time the service process has used so far."""
        return process_cpu_seconds(self.pid)


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (and of threads it ran), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat(5)


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy and in total so far (every core), from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in first[:8]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


@contextmanager
def connectors_service(
    bootstrap: str, workdir: Path, *, project: str, portfolio: str, secret: str, profile_to: Path | None = None
) -> Iterator[Service]:
    """`python -m okr_connectors` with a mapping claiming `project` for `portfolio`, a fresh SQLite store and a Jira secret.

    Everything else is the service's default (logs at INFO as JSON, written to a file here; relay idle 0.5 s;
    no telemetry export). Stopped with SIGTERM, as an orchestrator stops it; under cProfile with SIGINT, which uvicorn
    turns into the same shutdown and then a KeyboardInterrupt that lets cProfile write its file (SIGTERM would end the process first).
    """
    mapping = workdir / "mapping.json"
    rule = {"source": "jira", "project": project, "portfolio_id": portfolio, "kr_ids": [f"{portfolio}-kr"]}
    mapping.write_text(json.dumps({"rules": [rule]}))
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"sha256": hash_token(os.urandom(16).hex()), "principal": "bench@example.com"}]}))
    store_path, log_path, port = workdir / "connectors.sqlite", workdir / "connectors.log", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKR_")} | {
        "OKR_KAFKA_BOOTSTRAP": bootstrap,
        "OKR_HTTP_HOST": "127.0.0.1",
        "OKR_HTTP_PORT": str(port),
        "OKR_EVENT_STORE": "sqlite",
        "OKR_CONNECTORS_SQLITE_PATH": str(store_path),
        "OKR_CONNECTORS_MAPPING_FILE": str(mapping),
        "OKR_CONNECTORS_TOKENS_FILE": str(tokens),
        "OKR_CONNECTORS_JIRA_WEBHOOK_SECRET": secret,
    }
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, *profiler, "-m", "okr_connectors"], env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log_path)
        yield Service(url, process.pid, store_path, log_path)
    finally:
        process.send_signal(signal.SIGINT if profile_to else signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    """A port nothing listens on right now (the service binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 60) -> None:
    """Poll /health/ready until the service says ready (topics created, broker started, store open)."""
    wait_until_ready("the connectors service", url, process, log_path, timeout_s)
