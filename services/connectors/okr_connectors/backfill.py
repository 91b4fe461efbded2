"""`python -m okr_connectors.backfill jira|linear [--since ISO] [--page-size N]`: one poll to its last page, then exit.

It reads the same settings as the service (``OKR_CONNECTORS_*``, ``OKR_EVENT_STORE``), maps
items as the service does (the file, then the portfolios' stored mappings) and writes to the
store only: the running connectors service's relay publishes what it stored. Without ``--since`` it resumes from the poller's checkpoint (or
``OKR_CONNECTORS_POLL_SINCE``, or 30 days ago); with it, it reads again from that time
(the inbox drops what was stored before; the checkpoint never moves back). A progress
bar (on a terminal) and log lines show items, pages and rate; a summary is printed at the end.
Exit status: 0 done, 1 the poll failed (the checkpoint keeps what was stored), 2 not configured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from datetime import datetime
from typing import TextIO

import httpx
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from okr_connectors.bootstrap import open_store
from okr_connectors.jira_poll import JiraPoller
from okr_connectors.linear_poll import LinearPoller
from okr_connectors.mapping import Mapping, MappingConfigError
from okr_connectors.polling import Http, PageStats, Poller, PollerConfigError, PollFailed, PollStats, parse_since
from okr_connectors.portfolio_mappings import LiveMapping
from okr_connectors.settings import ConnectorsSettings
from okr_connectors.store import ConnectorStore
from okr_runtime.logs import configure_logging

log = logging.getLogger("okr_connectors.backfill")
POLLERS: dict[str, type[JiraPoller] | type[LinearPoller]] = {"jira": JiraPoller, "linear": LinearPoller}


def _since(text: str) -> datetime:
    try:
        return parse_since(text)
    except PollerConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _page_size(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(
        prog="python -m okr_connectors.backfill", description="Poll Jira or Linear once into the connector store."
    )
    cli.add_argument("source", choices=sorted(POLLERS))
    cli.add_argument("--since", type=_since, default=None, help="read changes from this ISO time instead of the checkpoint")
    cli.add_argument("--page-size", type=_page_size, default=50, help="items per page (default 50)")
    return cli


async def backfill(
    source: str,
    settings: ConnectorsSettings,
    store: ConnectorStore,
    *,
    since: datetime | None = None,
    page_size: int = 50,
    http: Http | None = None,
    out: TextIO | None = None,
) -> PollStats:
    """Poll `source` to its last page into `store`, with a progress bar and log lines; print and return the totals."""
    mapping = LiveMapping(Mapping.load(settings.mapping_file) if settings.mapping_file else Mapping(), store)
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=30.0, headers={"User-Agent": "okrstream-connectors"}))
            http = Http(client)
        poller: Poller = POLLERS[source].from_settings(settings, store, mapping, http, page_size=page_size)
        if not (await asyncio.to_thread(mapping.current)).rules:
            log.warning(
                "no mapping rules (OKR_CONNECTORS_MAPPING_FILE, or a portfolio's stored mapping): "
                "every item is recorded as unmapped, none published"
            )
        started, total = time.monotonic(), PollStats(source)
        with tqdm(desc=f"{source} backfill", unit=" items", disable=None, file=sys.stderr) as bar, logging_redirect_tqdm():

            def progress(page: PageStats) -> None:
                total.add(page)
                bar.set_postfix(pages=total.pages, new=total.new, duplicates=total.duplicates, unmapped=total.unmapped, refresh=False)
                bar.update(page.items)
                log.info(
                    "%s page %d: %d items, %d new, %d duplicates, %d unmapped, %d rejected; %d items so far, %.1f items/s; checkpoint %s",
                    source, page.page, page.items, page.new, page.duplicates, page.unmapped, page.rejected,
                    total.items, total.items / max(time.monotonic() - started, 1e-6), page.checkpoint or "unchanged",
                )  # fmt: skip

            stats = await poller.run_once(progress, since=since)
    pending = (await asyncio.to_thread(store.counts))["unpublished"]
    rate = stats.items / stats.seconds if stats.seconds else 0.0
    out = out or sys.stdout
    print(f"backfill {stats.summary()} ({rate:.1f} items/s)", file=out)
    print(f"outbox: {pending} events waiting for the connectors service's relay to publish them", file=out)
    return stats


def main(argv: list[str] | None = None, settings: ConnectorsSettings | None = None) -> int:
    """Run one backfill from the command line; settings from the environment unless given."""
    args = parser().parse_args(argv)
    if settings is None:
        settings = ConnectorsSettings()
        configure_logging(settings)
    try:
        store = open_store(settings)
    except Exception as exc:  # a store that cannot open is a configuration problem for the operator
        print(f"backfill {args.source}: cannot open the connector store: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(backfill(args.source, settings, store, since=args.since, page_size=args.page_size))
    except (PollerConfigError, MappingConfigError) as exc:
        print(f"backfill {args.source}: not configured: {exc}", file=sys.stderr)
        return 2
    except PollFailed as exc:
        checkpoint = json.dumps(store.checkpoint(args.source))
        print(f"backfill {args.source} failed: {exc}\ncheckpoint kept at {checkpoint}; run again to resume", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
