"""`make bench`: every benchmark in turn as a subprocess (its own output shown as it runs), then one table.

Run from the repository root: ``.venv/bin/python bench/run_all.py`` (``--only rollup drift`` for some).
Each benchmark prints its figures as ``label: figure | raw label: raw figure | ratio r`` rows; this
collects those rows, the peak RSS of every process each benchmark ran (VmHWM from /proc, read every
0.5 s while it runs), and the issue's first targets, and prints them together at the end. The
last soak's figures (``make soak`` writes .local/bench/soak.json) give the check-in → scorecard row.
A missed target is reported, never a failure; a benchmark that fails is.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOAK_JSON = ROOT / ".local" / "bench" / "soak.json"
BENCHES: dict[str, list[str]] = {
    "checkins": ["bench/checkins/run.py"],
    "rollup": ["bench/rollup/run.py", "--updates", "1000", "--warm-up", "100"],
    "drift": ["bench/drift/run.py", "100000", "--rounds", "3"],
    "connectors": ["bench/connectors/run.py", "3000", "--rounds", "2"],
    "notifier": ["bench/notifier/run.py", "1500", "--rounds", "2"],
    "consume": ["bench/consume/run.py"],
}
"""Sizes chosen so that the whole run takes about 10 minutes on 2 cores (see bench/README.md)."""
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
SERVICE_MODULES = ("okr_checkins", "okr_rollup", "okr_drift", "okr_connectors", "okr_notifier")
SERVICE_PART = {
    "checkins": ("checkins", "benchmark process", "API server, stores and relay in the benchmark's process"),
    "rollup": ("rollup", "benchmark worker process", "the largest size's process (100,000 KRs in memory)"),
    "drift": ("drift", "benchmark process", "100,000 KRs and the first tick's alerts in the benchmark's process"),
    "connectors": ("connectors", "okr_connectors (service process)", "python -m okr_connectors under the webhook load"),
    "notifier": ("notifier", "benchmark process", "on_alert and the dispatcher in the benchmark's process"),
}
"""Per service: the benchmark that ran its part, the process that ran it there, and what that process held."""


@dataclass
class Row:
    """One figure beside its raw baseline, as a benchmark printed it."""

    bench: str
    section: str
    label: str
    figure: str
    raw_label: str
    raw: str
    ratio: str


@dataclass
class Result:
    """What one benchmark printed and the peak RSS of each of its processes (label → MB)."""

    name: str
    seconds: float
    lines: list[str] = field(default_factory=list)
    peaks: dict[str, float] = field(default_factory=dict)


def main() -> None:
    """Run the benchmarks, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these benchmarks")
    args = parser.parse_args()
    began = time.monotonic()
    results = [run(name) for name in (args.only or BENCHES)]
    print_table(results, time.monotonic() - began)
    if any(r.seconds < 0 for r in results):
        sys.exit(1)


def run(name: str) -> Result:
    """One benchmark as a subprocess: its output passed through and kept; its process tree's peak RSS sampled."""
    print(f"\n######## bench/{name}: {' '.join(BENCHES[name])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, *BENCHES[name]], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = Result(name, 0.0)
    done = threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(process.pid, result.peaks, done), daemon=True)
    sampler.start()
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        result.lines.append(line.rstrip("\n"))
    code = process.wait()
    done.set()
    sampler.join()
    result.seconds = time.monotonic() - started if code == 0 else -1.0
    if code:
        print(f"bench/{name} FAILED with exit code {code}", flush=True)
    return result


def _sample_tree(root: int, peaks: dict[str, float], done: threading.Event) -> None:
    """Every 0.5 s: VmHWM of `root` and of every descendant, kept as each process's peak under a readable label."""
    while not done.is_set():
        for pid in _tree(root):
            label, hwm = _label(pid, root), _hwm_mb(pid)
            if label and hwm:
                peaks[label] = max(peaks.get(label, 0.0), hwm)
        done.wait(0.5)


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc/*/stat parent ids."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _label(pid: int, root: int) -> str | None:
    """What a process is: the benchmark itself, a service by its module, a worker, or the broker."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    text = " ".join(a.decode(errors="replace") for a in args if a)
    for module in SERVICE_MODULES:
        if f"-m {module}" in text:
            return f"{module} (service process)"
    if pid == root:
        return "benchmark process"
    if "multiprocessing" in text:
        return "benchmark worker process"
    if "kafka.Kafka" in text:
        return "Kafka broker"
    if "python" in text:
        return "other python process"
    return None


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rows(result: Result) -> list[Row]:
    """The `label: figure | raw label: raw | ratio r` rows a benchmark printed (continuation rows keep the label above)."""
    found: list[Row] = []
    section, label, figure_above = "", "", ""
    for line in result.lines:
        if line.startswith("=="):
            section = line.strip("= ").split(":")[0][:48]
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or ("ratio" not in parts[2] and "update/decode" not in parts[2]):
            continue
        head, figure = _split(parts[0])
        label, figure = head or label, figure or figure_above
        figure_above = figure
        raw_label, raw = _split(parts[1])
        found.append(Row(result.name, section, label, figure, raw_label, raw, parts[2].split()[-1]))
    return found


def _split(text: str) -> tuple[str, str]:
    """`label: figure` → (label, figure); a bare figure has no label."""
    label, sep, figure = text.partition(":")
    return (label.strip(), figure.strip()) if sep else ("", text.strip())


def number(text: str) -> float | None:
    """The first number in a figure (`4,638 events/s`, `p50 842 µs`)."""
    match = NUMBER.search(text)
    return float(match.group().replace(",", "")) if match else None


def targets(results: list[Result], found: list[Row]) -> list[tuple[str, str, str]]:
    """(target, measured, met or not) for the issue's first targets."""
    checks: list[tuple[str, str, str]] = []
    for row in found:
        if (
            row.bench == "connectors"
            and row.label in ("webhooks accepted", "published end to end")
            and row.raw_label == "raw send_and_wait"
        ):
            value = number(row.figure) or 0.0
            checks.append((f"signed Jira webhooks, {row.label} ≥ 1,000/s", row.figure, _met(value >= 1000)))
        if row.bench == "consume" and row.raw_label == "raw consume":
            value = number(row.figure) or 0.0
            checks.append((f"{row.label} ≥ 10,000 events/s", f"{row.figure} (ratio {row.ratio} of raw aiokafka)", _met(value >= 10_000)))
        if row.bench == "rollup" and row.label == "audit replay":
            value = number(row.figure) or 0.0
            checks.append(("audit replay ≥ 50,000 events/s", row.figure, _met(value >= 50_000)))
    for result in results:
        for line in result.lines:
            if "against 1,000: update p50 ratio" in line:
                ratio = number(line.split("p50 ratio", 1)[1]) or 0.0
                checks.append(
                    ("one KR update flat from 1,000 to 100,000 KRs (p50 ratio < 1.5)", f"p50 ratio {ratio:.2f}", _met(ratio < 1.5))
                )
    checks.append(_soak_check())
    return checks


def _soak_check() -> tuple[str, str, str]:
    name = "check-in visible in the scorecard, p99 ≤ 200 ms under the soak load"
    if not SOAK_JSON.exists():
        return name, "no soak figures (run make soak)", "—"
    soak: dict[str, Any] = json.loads(SOAK_JSON.read_text())
    probe = soak["probe"]
    if not probe["count"]:
        return name, "no probe seen", _met(False)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(SOAK_JSON.stat().st_mtime))
    return name, f"p99 {probe['p99_ms']:.0f} ms, p50 {probe['p50_ms']:.0f} ms (soak of {when})", _met(probe["p99_ms"] <= 200)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_table(results: list[Result], seconds: float) -> None:
    """Every row, the peak memory per service, and the targets."""
    found = [row for result in results for row in rows(result)]
    print(f"\n================ make bench: {len(results)} benchmarks in {seconds:.0f} s ================")
    print(f"{'bench':<11}{'section / figure':<52}{'figure':>22}  {'raw baseline':<32}{'raw':>20}  {'ratio':>7}")
    for row in found:
        what = f"{row.section[:22]} · {row.label}" if row.section else row.label
        print(f"{row.bench:<11}{what[:51]:<52}{row.figure[:22]:>22}  {row.raw_label[:31]:<32}{row.raw[:20]:>20}  {row.ratio:>7}")
    print("\npeak memory per service (VmHWM of the process that ran the service's part):")
    by_name = {r.name: r for r in results}
    for service, (bench, process, what) in SERVICE_PART.items():
        if bench in by_name and process in by_name[bench].peaks:
            print(f"   {service:<11} {by_name[bench].peaks[process]:7,.0f} MB  bench/{bench}: {what}")
        consumed = by_name["consume"].peaks.get(f"okr_{service} (service process)") if "consume" in by_name else None
        if consumed:
            print(f"   {service:<11} {consumed:7,.0f} MB  bench/consume: python -m okr_{service} draining its input topic")
    print("\npeak RSS per process (VmHWM), MB:")
    for result in results:
        peaks = ", ".join(f"{label} {mb:,.0f}" for label, mb in sorted(result.peaks.items(), key=lambda kv: -kv[1]))
        took = f"{result.seconds:.0f} s" if result.seconds >= 0 else "FAILED"
        print(f"   {result.name:<11} ({took:>6}): {peaks}")
    print("\ntargets (issue 11):")
    for target, measured, verdict in targets(results, found):
        print(f"   {target:<72} {measured:<48} {verdict}")


if __name__ == "__main__":
    main()
