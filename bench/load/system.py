"""The services as real processes (`python -m okr_<service>`, as `make run` starts them) on free ports of 127.0.0.1.

Each has its own SQLite file, a fresh consumer group and the one tokens file; logs go to files
in the run's folder. Used by the soak (bench/load/run.py) and the consume-rate benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from okr_contracts.topics import ALERTS_TOPIC, DELIVERY_TOPIC, KR_EVENTS_TOPIC, METRICS_TOPIC, SCORES_TOPIC
from okr_runtime.auth import TokenEntry, TokenFile
from okr_runtime.readiness import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MODULES = {
    "checkins": "okr_checkins",
    "rollup": "okr_rollup",
    "drift": "okr_drift",
    "connectors": "okr_connectors",
    "notifier": "okr_notifier",
}
INPUTS = {
    "checkins": (METRICS_TOPIC.name,),
    "rollup": (KR_EVENTS_TOPIC.name,),
    "drift": (KR_EVENTS_TOPIC.name, SCORES_TOPIC.name, DELIVERY_TOPIC.name),
    "notifier": (ALERTS_TOPIC.name,),
}
"""The topics each consuming service reads, in its one consumer group."""


@dataclass
class Running:
    """The started services: URLs, processes, consumer groups, and where their files are."""

    home: Path
    urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    def pid(self, name: str) -> int:
        """The process id of a service."""
        return self.processes[name].pid

    def watched_groups(self) -> dict[str, list[str]]:
        """Consumer group → topics, for every running consuming service."""
        return {self.groups[name]: list(INPUTS[name]) for name in self.processes if name in INPUTS}


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident set size now and its high-water mark (VmHWM), in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS


def write_tokens(path: Path, tokens: Sequence[TokenEntry]) -> None:
    """The tokens file every service reads."""
    path.write_text(TokenFile(tokens=list(tokens)).model_dump_json())


def service_env(name: str, home: Path, bootstrap: str, port: int, group: str, extra: dict[str, str]) -> dict[str, str]:
    """A service's environment: nothing of the caller's OKR_* settings, its own port, store, group and the shared tokens file."""
    tokens = str(home / "tokens.json")
    upper = name.upper()
    own = {
        "checkins": {"OKR_SQLITE_PATH": str(home / "checkins.sqlite"), "OKR_CHECKINS_KPI_GROUP": group},
        "rollup": {"OKR_ROLLUP_SQLITE_PATH": str(home / "rollup.sqlite"), "OKR_ROLLUP_GROUP": group},
        "drift": {"OKR_DRIFT_SQLITE_PATH": str(home / "drift.sqlite"), "OKR_DRIFT_GROUP": group},
        "connectors": {"OKR_CONNECTORS_SQLITE_PATH": str(home / "connectors.sqlite")},
        "notifier": {"OKR_NOTIFIER_SQLITE_PATH": str(home / "notifier.sqlite"), "OKR_NOTIFIER_GROUP": group},
    }[name]
    base = {k: v for k, v in os.environ.items() if not k.startswith("OKR_")}
    return base | {
        "OKR_KAFKA_BOOTSTRAP": bootstrap,
        "OKR_HTTP_HOST": "127.0.0.1",
        "OKR_HTTP_PORT": str(port),
        "OKR_EVENT_STORE": "sqlite",
        "OKR_LOG_FORMAT": "text",
        f"OKR_{upper}_TOKENS_FILE": tokens,
        **own,
        **extra,
    }


@contextmanager
def services(
    names: Sequence[str], home: Path, bootstrap: str, *, tokens: Sequence[TokenEntry], extra: dict[str, dict[str, str]] | None = None
) -> Iterator[Running]:
    """Start `names` in that order, each waited for until ready; all stopped with SIGTERM (then SIGKILL) on leaving."""
    home.mkdir(parents=True, exist_ok=True)
    write_tokens(home / "tokens.json", tokens)
    running = Running(home)
    run = uuid.uuid4().hex[:8]
    try:
        for name in names:
            port = free_port()
            running.urls[name] = f"http://127.0.0.1:{port}"
            running.groups[name] = f"bench-{name}-{run}"
            env = service_env(name, home, bootstrap, port, running.groups[name], (extra or {}).get(name, {}))
            with (home / f"{name}.log").open("wb") as log:
                running.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", MODULES[name]], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
            _wait_ready(name, running)
        yield running
    finally:
        stop(running)


def stop(running: Running) -> None:
    """SIGTERM every service, as an orchestrator stops it; SIGKILL after 30 s."""
    for process in running.processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in running.processes.values():
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(name: str, running: Running, timeout_s: float = 120) -> None:
    """Poll /health/ready until the service says ready."""
    wait_until_ready(name, running.urls[name], running.processes[name], running.home / f"{name}.log", timeout_s)


def connector_mapping(path: Path, rules: Sequence[tuple[str, str, Sequence[str]]]) -> None:
    """A connectors mapping file: each Jira project (project, portfolio, kr_ids) claimed for a portfolio's key results."""
    body = {"rules": [{"source": "jira", "project": p, "portfolio_id": pid, "kr_ids": list(krs)} for p, pid, krs in rules]}
    path.write_text(json.dumps(body))


def set_env_free(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without its OKR_* settings, plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OKR_")} | extra


async def fresh_topics(bootstrap: str) -> None:
    """Delete the topics the services read (they may hold an earlier run's messages, same ids), then create all topics again."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([t for t in INPUT_TOPICS if t in existing])
    finally:
        await admin.close()
    for _ in range(60):
        made = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "okr_runtime.admin", "create-topics", "--replication-factor", "1"],
            env=set_env_free({"OKR_KAFKA_BOOTSTRAP": bootstrap}),
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
        if made.returncode == 0:
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"could not create the topics again: {made.stderr.decode()[-2000:]}")


INPUT_TOPICS = (KR_EVENTS_TOPIC.name, ALERTS_TOPIC.name, METRICS_TOPIC.name, DELIVERY_TOPIC.name, SCORES_TOPIC.name)
