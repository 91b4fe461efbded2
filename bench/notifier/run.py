"""Notifier throughput: alerts planned, rendered and stored, then delivered to a Slack-compatible server and SMTP, beside raw send rates.

Run from the repository root: ``.venv/bin/python bench/notifier/run.py [N]`` (or ``make bench-notifier``).
The notifier's path runs in this process: ``NotifierService.on_alert`` over a SQLite send log,
then ``Dispatcher.run_once`` until drained with the real ``SlackSender`` and ``EmailSender``. A
Slack-compatible ``chat.postMessage`` server and an aiosmtpd SMTP server run in processes of
their own. The raw baselines send the very same messages again to the same servers with a bare
httpx client and bare ``aiosmtplib.send``, and write the same rows with bare sqlite3.
No Kafka: the consumer in front of ``on_alert`` is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import math
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import path
import probes
import raw
import servers
import workload

T = TypeVar("T")


@dataclass
class Cpu:
    """CPU seconds used per phase by this process, each server and the whole machine, and the phase's wall time."""

    slack: servers.Server
    smtp: servers.Server
    spent: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0] * 6))
    _open: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def snapshot(self) -> tuple[float, ...]:
        busy, total = servers.machine_seconds()
        return (time.perf_counter(), time.process_time(), self.slack.cpu_seconds(), self.smtp.cpu_seconds(), busy, total)

    def begin(self, phase: str) -> None:
        self._open[phase] = self.snapshot()

    def end(self, phase: str) -> None:
        before, after = self._open.pop(phase), self.snapshot()
        spent = self.spent[phase]
        for i, (a, b) in enumerate(zip(before, after, strict=True)):
            spent[i] += b - a

    def on_phase(self, name: str, started: bool) -> None:
        """For ``path.sequential``: a phase begins or ends."""
        if started:
            self.begin(name)
        else:
            self.end(name)

    def cores(self, phase: str) -> tuple[float, float, float, float, float]:
        """This process, the Slack server, the SMTP server, the rest, the machine: in cores, over the phase's wall time."""
        wall, mine, slack, smtp, busy, total = self.spent[phase]
        rest = max(0.0, busy - mine - slack - smtp)
        return mine / wall, slack / wall, smtp / wall, rest / wall, total / wall


async def metered(cpu: Cpu, phase: str, work: Awaitable[T]) -> T:
    """Await ``work`` (a coroutine: it starts only now) as the phase ``phase``."""
    cpu.begin(phase)
    try:
        return await work
    finally:
        cpu.end(phase)


@dataclass
class RawRound:
    """One round of the baselines over the messages a notifier round sent."""

    in_order: raw.InOrder
    concurrent: float
    slack_alone: float
    smtp_alone: float
    smtp_one_connection: float
    sqlite: float


@dataclass
class Figures:
    """Everything the rounds measured."""

    alerts: int
    slack_n: int
    email_n: int
    sequential: list[path.Sequential] = field(default_factory=list)
    end_to_end: list[path.EndToEnd] = field(default_factory=list)
    raws: list[RawRound] = field(default_factory=list)
    renderings: list[path.Rendering] = field(default_factory=list)
    messages: raw.Messages | None = None
    server_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    hop_us: float = 0.0
    sniffio: tuple[float, float, bool] = (0.0, 0.0, False)
    idle_penalty: tuple[float, float] = (0.0, 0.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Sizes; the defaults finish in under two minutes on two cores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add(
        "notifications",
        nargs="?",
        type=int,
        default=3000,
        help=f"notifications per round, {workload.SLACK_PER_ALERT} Slack DMs and {workload.EMAIL_PER_ALERT} e-mails per alert,"
        " rounded up to whole alerts (default 3000: 2000 Slack, 1000 e-mail)",
    )
    add("--rounds", type=int, default=3, help="timed rounds of every measurement; medians are reported (default 3)")
    add("--concurrency", type=int, default=8, help="Slack and SMTP senders each in the concurrent raw baseline (default 8)")
    add("--idle", type=float, default=0.05, help="the dispatcher's idle wait in the end-to-end rounds, seconds (default 0.05)")
    add("--profile", action="store_true", help="also profile one more enqueue and dispatch round (cProfile, this thread only)")
    args = parser.parse_args(argv)
    if min(args.notifications, args.rounds, args.concurrency) < 1 or args.idle <= 0:
        parser.error("sizes must be positive")
    return args


async def measure(args: argparse.Namespace, slack: servers.Server, smtp: servers.Server, workdir: Path, cpu: Cpu) -> Figures:
    """A warm-up and the probes, then per round: enqueue and dispatch; the baselines over the same messages; rendering alone; end to end."""
    alerts = math.ceil(args.notifications / workload.PER_ALERT)
    f = Figures(alerts, alerts * workload.SLACK_PER_ALERT, alerts * workload.EMAIL_PER_ALERT)
    expected, routing, c = alerts * workload.PER_ALERT, workload.routing(), args.concurrency
    senders = path.Senders.create(slack.port, smtp.port)
    url = f"http://127.0.0.1:{slack.port}/api/chat.postMessage"
    async with senders.client, httpx.AsyncClient(timeout=30) as client:  # each a long-lived client, as the service's
        # warm-up: connections, imports, Jinja's templates, the servers' first requests
        warm = await path.sequential(workdir / "warm.sqlite", routing, workload.alerts(20, "w"), senders, 20 * workload.PER_ALERT)
        warm_messages = raw.messages(warm.sends, url, senders.email)
        await raw.in_order(client, url, smtp.port, warm_messages)
        await raw.both_concurrent(client, url, smtp.port, warm_messages, c)
        f.hop_us = await probes.thread_hop_us()
        f.sniffio = await probes.sniffio_imports(client, url, warm_messages.slack)
        f.idle_penalty = await probes.idle_penalty_us(client, url, warm_messages.slack[0])
        before = {"slack": slack.stats(), "smtp": smtp.stats()}
        for r in range(args.rounds):
            print(f"round {r + 1} of {args.rounds} …", file=sys.stderr, flush=True)
            envelopes = workload.alerts(alerts, f"s{r}")
            db = workdir / f"sequential-{r}.sqlite"
            slack_seen, smtp_seen = slack.stats()["messages"], smtp.stats()["messages"]
            seq = await path.sequential(db, routing, envelopes, senders, expected, on_phase=cpu.on_phase)
            delivered = (slack.stats()["messages"] - slack_seen, smtp.stats()["messages"] - smtp_seen)
            if delivered != (f.slack_n, f.email_n):
                raise RuntimeError(f"the servers received {delivered} (Slack, SMTP), expected {(f.slack_n, f.email_n)}")
            f.sequential.append(seq)
            m = f.messages = raw.messages(seq.sends, url, senders.email)
            sqlite_s = raw.sqlite_inserts(workdir / f"raw-{r}.sqlite", raw.stored_rows(db))
            f.raws.append(
                RawRound(
                    in_order=await metered(cpu, "raw in order", raw.in_order(client, url, smtp.port, m)),
                    concurrent=await metered(cpu, "raw concurrent", raw.both_concurrent(client, url, smtp.port, m, c)),
                    slack_alone=await metered(cpu, "raw Slack alone", raw.slack_posts(client, url, m.slack, 1)),
                    smtp_alone=await metered(cpu, "raw SMTP alone", raw.smtp_sends(smtp.port, m.mails, 1)),
                    smtp_one_connection=await metered(cpu, "raw SMTP one connection", raw.smtp_one_connection(smtp.port, m.mails)),
                    sqlite=sqlite_s,
                )
            )
            f.renderings.append(path.rendering(routing, envelopes))
            e2e = workload.alerts(alerts, f"e{r}")
            f.end_to_end.append(
                await metered(cpu, "end to end", path.end_to_end(workdir / f"e2e-{r}.sqlite", routing, e2e, senders, expected, args.idle))
            )
        after = {"slack": slack.stats(), "smtp": smtp.stats()}
        f.server_totals = {k: {n: after[k][n] - before[k].get(n, 0) for n in after[k]} for k in after}
    return f


def report(args: argparse.Namespace, f: Figures, cpu: Cpu) -> Iterator[str]:
    """The tables: each okrstream figure beside its raw baseline and their ratio; per channel; where the time goes; CPU."""
    med = statistics.median
    n, rounds, m = f.slack_n + f.email_n, args.rounds, f.messages
    assert m is not None
    seq = sorted(f.sequential, key=lambda s: s.dispatch_s)[len(f.sequential) // 2]  # the round of median dispatch time
    enqueue_s, dispatch_s, e2e_s = med(s.enqueue_s for s in f.sequential), seq.dispatch_s, med(e.seconds for e in f.end_to_end)
    in_order = sorted((r.in_order for r in f.raws), key=lambda o: o.seconds)[len(f.raws) // 2]
    concurrent, sqlite_s = med(r.concurrent for r in f.raws), med(r.sqlite for r in f.raws)
    slack_alone, smtp_alone, smtp_one = (med(getattr(r, k) for r in f.raws) for k in ("slack_alone", "smtp_alone", "smtp_one_connection"))
    yield (
        f"== the notifier in this process (SQLite send log; the real SlackSender and EmailSender; logs at WARNING);"
        f" a Slack-compatible server and aiosmtpd each in a process of its own; median of {rounds} rounds =="
    )
    people = workload.PORTFOLIOS * (workload.OWNERS + workload.LEADS)
    yield (
        f"   {f.alerts} AlertRaised per round over {workload.PORTFOLIOS} portfolios ({people} people) → {n} notifications:"
        f" {f.slack_n} Slack DMs (~{m.slack_bytes:,.0f} B chat.postMessage body) + {f.email_n} e-mails (~{m.mail_bytes:,.0f} B, text+HTML)"
    )
    yield _row(
        "enqueue (on_alert):", f"{n / enqueue_s:,.0f} notif/s", "raw SQLite inserts:", f"{n / sqlite_s:,.0f} notif/s", sqlite_s / enqueue_s
    )
    raw_order = f"{n / in_order.seconds:,.0f} msg/s"
    yield _row(
        "dispatch (run_once):", f"{n / dispatch_s:,.0f} notif/s", "raw, same order, 1 by 1:", raw_order, in_order.seconds / dispatch_s
    )
    yield _row("end to end:", f"{n / e2e_s:,.0f} notif/s", "raw, same order, 1 by 1:", raw_order, in_order.seconds / e2e_s)
    both = f"raw, {args.concurrency}+{args.concurrency} at once:"
    yield _row("", "", both, f"{n / concurrent:,.0f} msg/s", concurrent / e2e_s)
    yield (
        f"      enqueue: {f.alerts} alerts in {enqueue_s:.2f} s; dispatch: {n} sends in {dispatch_s:.2f} s ({seq.batches} batches of"
        f" up to 100); end to end: {e2e_s:.2f} s with on_alert and Dispatcher.run (idle {args.idle:g} s) in one event loop,"
        f" the intake done after {med(e.enqueued_s for e in f.end_to_end):.2f} s"
    )
    enqueues, dispatches = _span([n / s.enqueue_s for s in f.sequential]), _span([n / s.dispatch_s for s in f.sequential])
    e2es, raws = _span([n / e.seconds for e in f.end_to_end]), _span([n / r.in_order.seconds for r in f.raws])
    yield (
        f"      rounds: enqueue {enqueues}, dispatch {dispatches}, end to end {e2es} notif/s; raw same order {raws},"
        f" at once {_span([n / r.concurrent for r in f.raws])} msg/s"
    )
    # per channel: the dispatcher's deliver time on the channel plus an equal share per send of everything else
    overhead_ns = (dispatch_s * 1e9 - sum(seq.delivered.ns.values())) / n
    channel_s = {ch: (seq.delivered.ns[ch] + overhead_ns * seq.delivered.count[ch]) / 1e9 for ch in ("slack", "email")}
    yield "== per channel: time in deliver plus an equal share per send of the rest of dispatch, beside the same sends in the raw pass =="
    slack_rate, mail_rate = f"{f.slack_n / channel_s['slack']:,.0f} msg/s", f"{f.email_n / channel_s['email']:,.0f} msg/s"
    raw_slack, raw_mail = in_order.spent["slack"], in_order.spent["email"]
    yield _row(
        "Slack in dispatch:", slack_rate, "raw, same order, 1 by 1:", f"{f.slack_n / raw_slack:,.0f} msg/s", raw_slack / channel_s["slack"]
    )
    yield _row("", "", "raw, Slack alone, 1 by 1:", f"{f.slack_n / slack_alone:,.0f} msg/s", slack_alone / channel_s["slack"])
    yield _row(
        "e-mail in dispatch:", mail_rate, "raw, same order, 1 by 1:", f"{f.email_n / raw_mail:,.0f} msg/s", raw_mail / channel_s["email"]
    )
    yield _row("", "", "raw, SMTP alone, 1 by 1:", f"{f.email_n / smtp_alone:,.0f} msg/s", smtp_alone / channel_s["email"])
    yield _row("", "", "raw, one SMTP connection:", f"{f.email_n / smtp_one:,.0f} msg/s", smtp_one / channel_s["email"])
    d = seq.delivered
    yield (
        f"      median µs per send, dispatch | raw same order: Slack after Slack {d.median_us('slack', 'slack'):,.0f} |"
        f" {in_order.median_us('slack', 'slack'):,.0f}, Slack after e-mail {d.median_us('slack', 'email'):,.0f} |"
        f" {in_order.median_us('slack', 'email'):,.0f}, e-mail after Slack {d.median_us('email', 'slack'):,.0f} |"
        f" {in_order.median_us('email', 'slack'):,.0f}; Slack alone {slack_alone / f.slack_n * 1e6:,.0f},"
        f" SMTP alone {smtp_alone / f.email_n * 1e6:,.0f} (mean); a bare POST right after another {f.idle_penalty[0]:,.0f},"
        f" after 5 ms idle {f.idle_penalty[1]:,.0f}"
    )
    yield from _breakdown(f, seq)
    yield "== CPU in cores while timing: this process | Slack server | SMTP server | the rest | of the machine's =="
    for phase in (
        "enqueue",
        "dispatch",
        "end to end",
        "raw in order",
        "raw concurrent",
        "raw Slack alone",
        "raw SMTP alone",
        "raw SMTP one connection",
    ):
        mine, sl, sm, rest, total = cpu.cores(phase)
        yield f"   {phase:<24} {mine:5.2f} | {sl:5.2f} | {sm:5.2f} | {rest:5.2f} | of {total:.0f}"
    t = f.server_totals
    yield (
        f"   the servers received {t['slack']['messages']:,} Slack messages ({t['slack']['errors']} errors) over"
        f" {t['slack']['connections']} new connections, and {t['smtp']['messages']:,} e-mails"
        f" ({t['smtp']['multipart']:,} multipart/alternative) during the rounds"
    )


def _breakdown(f: Figures, seq: path.Sequential) -> Iterator[str]:
    """Where the median dispatch round's time went, per send; and the enqueue's, per alert and per message."""
    assert f.messages is not None
    n, ns, calls, d = seq.notifications, seq.log_ns, seq.log_calls, seq.delivered
    whole = seq.dispatch_s * 1e9

    def share(part: float) -> str:
        return f"{part / whole:.0%}"

    build_us, flatten_us = seq.build_ns / d.count["email"] / 1e3, f.messages.flatten_ns / 1e3
    rest_ns = whole - sum(d.ns.values()) - ns["record"] - ns["due"]
    first_due, last_due = seq.due_calls[0][0] / 1e3, seq.due_calls[-2 if len(seq.due_calls) > 1 else 0][0] / 1e3
    per_request, import_us, installed = f.sniffio
    yield f"== where dispatch's time goes (the median round: {seq.dispatch_s:.2f} s for {n} sends) =="
    yield (
        f"   deliver Slack {d.ns['slack'] / d.count['slack'] / 1e3:,.0f} µs per send ({share(d.ns['slack'])} of dispatch),"
        f" e-mail {d.ns['email'] / d.count['email'] / 1e3:,.0f} µs ({share(d.ns['email'])}), of which building the EmailMessage"
        f" {build_us:,.0f} µs ({share(seq.build_ns)}); timed alone, aiosmtplib takes {f.messages.addresses_ns / 1e3:,.0f} µs to read the"
        f" addresses back from its headers and {flatten_us:,.0f} µs to flatten it"
    )
    yield (
        f"   send log: record {ns['record'] / calls['record'] / 1e3:,.0f} µs per send in its thread ({share(ns['record'])}),"
        f" due {ns['due'] / n / 1e3:,.1f} µs per send ({calls['due']} calls, {first_due:,.0f} µs with {n} pending, {last_due:,.0f} µs"
        f" near the end; {share(ns['due'])}); the rest {rest_ns / n / 1e3:,.0f} µs per send ({share(rest_ns)}): a to_thread hop per record"
        f" (a bare hop {f.hop_us:,.0f} µs here), the loop, the dispatcher; garbage collection {seq.gc_ns / 1e6:,.0f} ms"
        f" in {seq.gc_runs} runs ({share(seq.gc_ns)}, counted within the parts above)"
    )
    yield (
        f"   httpx: {per_request:.0f} failed `import sniffio` per request (httpcore's current_async_library; sniffio"
        f" {'installed' if installed else 'not installed'}), {import_us:,.0f} µs each: ~{per_request * import_us:,.0f} µs of every"
        f" Slack send, the raw client's too"
    )
    render = min(f.renderings, key=lambda r: r.plan_ns + r.slack_ns + r.email_ns)
    alerts, eq = f.alerts, seq.enqueue_ns
    remember_us, enqueue_us = eq["remember_raised"] / alerts / 1e3, eq["enqueue"] / alerts / 1e3
    per_alert_us = seq.enqueue_s / alerts * 1e6
    rendered_us = (
        render.plan_ns + workload.SLACK_PER_ALERT * render.slack_ns + workload.EMAIL_PER_ALERT * render.email_ns + render.dump_ns
    ) / 1e3
    yield f"== where enqueue's time goes (per alert: {workload.SLACK_PER_ALERT} Slack DMs and {workload.EMAIL_PER_ALERT} e-mails) =="
    yield (
        f"   on_alert {per_alert_us:,.0f} µs per alert: plan {render.plan_ns / 1e3:,.0f} µs, slack_message {render.slack_ns / 1e3:,.0f} µs"
        f" × {workload.SLACK_PER_ALERT}, email_message {render.email_ns / 1e3:,.0f} µs × {workload.EMAIL_PER_ALERT},"
        f" the raised event's JSON {render.dump_ns / 1e3:,.0f} µs (together {rendered_us:,.0f} µs, timed alone);"
        f" SQLite remember_raised {remember_us:,.0f} µs and enqueue {enqueue_us:,.0f} µs in their thread;"
        f" the rest {per_alert_us - rendered_us - remember_us - enqueue_us:,.0f} µs (two to_thread hops, the Send objects)"
    )


def _row(label: str, rate: str, raw_label: str, raw_rate: str, ratio: float) -> str:
    """One line of the table: a figure, its baseline, their ratio."""
    return f"   {label:<22} {rate:>16} | {raw_label:<25} {raw_rate:>13} | ratio {ratio:.2f}"


def _span(values: list[float]) -> str:
    values = sorted(values)
    return f"{values[0]:,.0f}–{values[-1]:,.0f}" if len(values) > 1 else f"{values[0]:,.0f}"


def profile_round(args: argparse.Namespace, slack: servers.Server, smtp: servers.Server, workdir: Path) -> Iterator[str]:
    """One more round under cProfile (this thread only: the SQLite work in worker threads shows as waiting), top functions by own time."""
    alerts = math.ceil(args.notifications / workload.PER_ALERT)
    profiles = {"enqueue": cProfile.Profile(), "dispatch": cProfile.Profile()}

    def on_phase(name: str, started: bool) -> None:
        if started:
            profiles[name].enable()
        else:
            profiles[name].disable()

    async def run() -> None:
        senders = path.Senders.create(slack.port, smtp.port)
        async with senders.client:
            envelopes = workload.alerts(alerts, "p")
            await path.sequential(workdir / "profile.sqlite", workload.routing(), envelopes, senders, alerts * workload.PER_ALERT, on_phase)

    asyncio.run(run())
    for name, profile in profiles.items():
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(20)
        yield f"== profile: {name} (cProfile, this thread; its times are inflated by it) =="
        yield from (line for line in out.getvalue().splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Start the servers, measure, print the tables (and with --profile the profiles)."""
    started, args = time.monotonic(), parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with (
        servers.started("slack") as slack,
        servers.started("smtp") as smtp,
        tempfile.TemporaryDirectory(prefix="okr-bench-notifier-") as tmp,
    ):
        cpu = Cpu(slack, smtp)
        figures = asyncio.run(measure(args, slack, smtp, Path(tmp), cpu))
        print("\n".join(report(args, figures, cpu)), flush=True)
        if args.profile:
            print("\n".join(profile_round(args, slack, smtp, Path(tmp))), flush=True)
    print(f"finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
