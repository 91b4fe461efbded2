"""``okr audit``: export a history, verify its chain, replay its scores and capacity, check the published scores and capacity.

Exit status: 0 when the history is intact / every score matches, 1 when something
was found (tampering, a difference), 2 when the command could not run (bad input,
an unreachable source).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from okr_audit.capacity import compare_capacity
from okr_audit.check import CheckReport, check
from okr_audit.history import HistoryError, Line, portfolio_of, read_lines, records
from okr_audit.replay import Replayed, capacity_cycles, replay_history, scorecard_rows
from okr_audit.sources import (
    Exported,
    SourceError,
    checkins_client,
    export_from_checkins,
    export_from_store,
    head_file_for,
    read_capacity,
    read_head,
    read_scores,
    read_scores_file,
    write_lines,
)
from okr_audit.verify import Head, Verification, verify
from okr_cli.api import Token, connect
from okr_cli.capacity import print_capacity, print_capacity_check
from okr_cli.console import err, fail, out
from okr_contracts.topics import SCORES_TOPIC
from okr_rollup.domain.rules import SCHEDULE, Schedule, UnknownRules, rules_version

audit = typer.Typer(help="Prove every published score and capacity from the recorded history (docs/audit.md).", no_args_is_help=True)

History = Annotated[Path, typer.Argument(help="A history export (JSON Lines, one record per line).")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Only events recorded at or before this moment, e.g. 2026-09-30T17:00:00Z.")]


@audit.command("export")
def export_command(
    portfolio: Annotated[str, typer.Argument(help="The portfolio id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The history file to write.")],
    checkins: Annotated[str | None, typer.Option(help="Base URL of the checkins API, e.g. http://127.0.0.1:8001.")] = None,
    token: Annotated[str | None, typer.Option(envvar="OKR_TOKEN", help="Bearer token of an auditor or the portfolio lead.")] = None,
    from_store: Annotated[bool, typer.Option("--from-store", help="Read the checkins event store (OKR_EVENT_STORE, …) directly.")] = False,
) -> None:
    """Write a portfolio's history with its hash chain, and its head beside it (<file>.head.json)."""
    if from_store == (checkins is not None):
        fail("give exactly one source: --checkins URL (with --token or OKR_TOKEN) or --from-store")
    try:
        if checkins is not None:
            if not token:
                fail("--checkins needs a bearer token: --token or OKR_TOKEN")
            with checkins_client(checkins, token) as client:
                exported = export_from_checkins(client, portfolio, output)
        else:
            exported = _export_from_store(portfolio, output)
    except SourceError as exc:
        fail(str(exc))
    saved = exported.save_beside(output)
    out.print(f"exported {exported.length} records of {portfolio} to {output}; chain head {exported.head} (saved in {saved})")


def _export_from_store(portfolio: str, output: Path) -> Exported:
    from okr_checkins.application import CheckinsApplication  # the store's own reader; only this command needs it
    from okr_checkins.settings import CheckinsSettings
    from okr_runtime.eventstore import event_store_env

    settings = CheckinsSettings()
    if settings.event_store == "sqlite" and not settings.sqlite_path.is_file():
        raise SourceError(f"no event store at {settings.sqlite_path} (OKR_SQLITE_PATH)")
    application = CheckinsApplication({**event_store_env(settings), "CREATE_TABLE": "false"})
    try:
        return export_from_store(application, portfolio, output)
    finally:
        application.close()


@audit.command("verify")
def verify_command(
    history: History,
    head: Annotated[str | None, typer.Option(help="The trusted last hash (the export's OKR-Chain-Head).")] = None,
    length: Annotated[int | None, typer.Option(help="The trusted number of records (the export's OKR-Chain-Length).")] = None,
    head_file: Annotated[
        Path | None, typer.Option(help="A head saved by `okr audit export` (default: <file>.head.json if present).")
    ] = None,
) -> None:
    """Check the hash chain; report every edited, removed, inserted or reordered record with its line and position."""
    lines = _lines(history)
    trusted = _trusted_head(history, head, length, head_file)
    result = verify(lines, trusted)
    _print_verification(history, result)
    raise typer.Exit(0 if result.intact else 1)


@audit.command("replay")
def replay_command(
    history: History,
    as_of: AsOf = None,
    rules: Annotated[str | None, typer.Option(help="Score every event by this rules version instead of the ones in force.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the score records (JSON Lines) here.")] = None,
    every: Annotated[bool, typer.Option("--every", help="Write every record produced, not only each node's latest.")] = False,
) -> None:
    """Recompute every node's score and confidence, and each cycle's capacity, as of a moment, from the history alone."""
    lines = _lines(history)
    replayed = _replay(lines, _moment(as_of), _schedule(rules))
    _print_scorecard(replayed)
    print_capacity(replayed)
    if output is not None:
        chosen = replayed.records if every else [replayed.latest[r["node_id"]] for r in scorecard_rows(replayed)]
        count = write_lines((r.value for r in chosen), output)
        err.print(f"wrote {count} score records to {output}")


@audit.command("scores")
def scores_command(
    portfolio: Annotated[str, typer.Argument(help="The portfolio id.")],
    bootstrap: Annotated[str, typer.Option(envvar="OKR_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write the records to.")],
    topic: Annotated[str, typer.Option(help="The scores topic.")] = SCORES_TOPIC.name,
) -> None:
    """Save every record of a portfolio that is on the scores topic now (one message value per line)."""
    try:
        values = asyncio.run(read_scores(bootstrap, portfolio, topic=topic))
    except SourceError as exc:
        fail(str(exc))
    out.print(f"saved {write_lines(values, output)} score records of {portfolio} from {topic} to {output}")


@audit.command("check")
def check_command(
    history: History,
    scores: Annotated[Path | None, typer.Option(help="Score records saved by `okr audit scores`.")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Read the scores topic from this Kafka instead.")] = None,
    topic: Annotated[str, typer.Option(help="The scores topic.")] = SCORES_TOPIC.name,
    as_of: AsOf = None,
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
) -> None:
    """Compare the replayed scores with the published ones: list every difference, or state that all match byte for byte."""
    if (scores is None) == (bootstrap is None):
        fail("give exactly one source of published scores: --scores FILE or --bootstrap SERVERS")
    lines = _lines(history)
    replayed = _replay(lines, _moment(as_of), SCHEDULE)
    try:
        published = read_scores_file(scores) if scores else asyncio.run(read_scores(str(bootstrap), replayed.portfolio_id, topic=topic))
    except SourceError as exc:
        fail(str(exc))
    result = check(replayed, published)
    _print_check(result, replayed)
    if report is not None:
        report.write_text(json.dumps(_report_json(result), indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(0 if result.ok else 1)


@audit.command("capacity")
def capacity_command(
    ctx: typer.Context,
    history: History,
    rollup: Annotated[str, typer.Option(envvar="OKR_ROLLUP_URL", help="Base URL of the rollup's read API, e.g. http://127.0.0.1:8002.")],
    token: Token = None,
    as_of: AsOf = None,
) -> None:
    """Compare the rollup's capacity per cycle with the replay's (as of the history's end): list every difference, or say all match."""
    with connect(ctx, "rollup", rollup, token) as client:
        replayed = _replay(_lines(history), _moment(as_of), SCHEDULE)
        moment = replayed.as_of or replayed.last_recorded_at  # views changed after the export are not the history's
        try:
            served = read_capacity(client, replayed.portfolio_id, moment)
        except SourceError as exc:
            fail(str(exc))
    result = compare_capacity(replayed.portfolio_id, served, capacity_cycles(replayed), moment)
    print_capacity_check(result, replayed)
    raise typer.Exit(0 if result.ok else 1)


def _lines(history: Path) -> list[Line]:
    try:
        return read_lines(history)
    except HistoryError as exc:
        fail(str(exc))


def _trusted_head(history: Path, head: str | None, length: int | None, head_file: Path | None) -> Head | None:
    if head is not None:
        return Head(head, length)
    if length is not None:
        fail("--length needs --head")
    saved = head_file or head_file_for(history)
    if head_file is None and not saved.exists():
        return None
    try:
        return read_head(saved)
    except SourceError as exc:
        fail(str(exc))


def _replay(lines: list[Line], as_of: datetime | None, schedule: Schedule) -> Replayed:
    """Replay only an intact history: a replay of a tampered one would prove nothing."""
    verification = verify(lines)
    if not verification.intact:
        for finding in verification.findings:
            err.print(f"  {finding}")
        err.print(f"[bold red]the history fails verification ({len(verification.findings)} findings): not replayed[/]")
        raise typer.Exit(1)
    try:
        return replay_history(portfolio_of(lines), records(lines), as_of=as_of, schedule=schedule)
    except HistoryError as exc:
        fail(str(exc))


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--as-of {text!r} is not an ISO 8601 time, e.g. 2026-09-30T17:00:00Z")
    if moment.tzinfo is None:
        fail(f"--as-of {text!r} needs a time zone, e.g. 2026-09-30T17:00:00Z")
    return moment


def _schedule(version: str | None) -> Schedule:
    if version is None:
        return SCHEDULE
    try:
        return Schedule.only(rules_version(version))
    except UnknownRules as exc:
        fail(str(exc))


def _print_verification(history: Path, result: Verification) -> None:
    for finding in result.findings:
        out.print(f"  {finding}")
    end = "its end checked against the trusted head" if result.head_checked else "its end not checked (no trusted head given)"
    if result.intact:
        out.print(
            f"[green]intact:[/] {result.lines} records of {result.portfolio_id}, positions 1 to {result.last_position}, "
            f"head {result.last_hash}; {end}"
        )
    else:
        out.print(f"[bold red]tampered:[/] {len(result.findings)} findings in {history} ({result.lines} lines); {end}")


def _print_scorecard(replayed: Replayed) -> None:
    moment = replayed.as_of.isoformat() if replayed.as_of else "the end of the history"
    table = Table(
        title=f"{replayed.portfolio_id} as of {moment}: {replayed.events} events replayed, up to position {replayed.last_position}"
    )
    for name in ("tier", "node", "status", "progress", "raw", "confidence", "rules", "as of", "formula"):
        table.add_column(name, overflow="fold")
    for row in scorecard_rows(replayed):
        table.add_row(
            str(row["tier"]),
            row["node_id"],
            row["status"],
            f"{row['progress']:.4f}",
            "" if row["raw_progress"] is None else f"{row['raw_progress']:.4f}",
            "unknown" if row["confidence"] is None else f"{row['confidence']:.2f}",
            row["scoring_rules_version"],
            row["as_of"],
            row["formula"],
        )
    out.print(table)
    for refusal in replayed.refused:
        out.print(f"  refused at position {refusal.position} (event {refusal.event_id}): {refusal.reason}")


def _print_check(result: CheckReport, replayed: Replayed) -> None:
    for difference in result.differences:
        out.print(f"  {difference}")
    notes = [f"{result.superseded} older records superseded (compacted away)"] if result.superseded else []
    notes += [f"{result.repeated} repeated deliveries"] if result.repeated else []
    notes += [f"{result.later} records after the history's end left out"] if result.later else []
    tail = f" ({'; '.join(notes)})" if notes else ""
    if result.ok:
        out.print(
            f"[green]all {result.compared} published scores of {result.portfolio_id} match the replay of "
            f"{replayed.events} events byte for byte[/]{tail}"
        )
    else:
        out.print(f"[bold red]{len(result.differences)} differences[/]: {result.matched} of {result.compared} published scores match{tail}")


def _report_json(result: CheckReport) -> dict[str, object]:
    return {**asdict(result), "ok": result.ok}
