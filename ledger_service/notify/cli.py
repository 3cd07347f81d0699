"""``ledger-notify``: delivers the outbox to webhooks and e-mail until stopped (SIGTERM or Ctrl-C).

Exit codes: 0 stopped, 1 the database failed, 2 bad configuration or a second worker on an SQLite index.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Sequence

import structlog

from ledger_service.errors import FatalError
from ledger_service.logs import configure_logging
from ledger_service.notify.worker import Worker
from ledger_service.settings import settings_for_command
from ledger_service.store import Store, StoreError, StoreUnavailableError, notify_lock

PROG = "ledger-notify"
EXIT_FAILED, EXIT_USAGE = 1, 2

log = structlog.get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Deliver the ledger's notifications (webhooks, e-mail) from the outbox."
    )
    parser.add_argument("--database-url", help="the index (default: LEDGER_DATABASE_URL)")
    parser.add_argument(
        "--once", action="store_true", help="deliver what is due now, wait for the sends, and exit (no retry waits)"
    )
    return parser


_stopping = threading.Event()
"""Set by SIGTERM/SIGINT from the first line of :func:`main`: a stop asked during start-up is kept."""


def _ask_stop(signum: int, frame: object) -> None:
    _stopping.set()


async def _serve(worker: Worker, *, once: bool) -> None:
    if once:
        while await worker.turn():
            pass
        await worker.drain()
        await worker.close()
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stopping.is_set():
        stop.set()
    stats = await worker.run(stop)
    log.info("ledger-notify stopped", delivered=stats.delivered, failed=stats.failed, dead=stats.dead)


def main(argv: Sequence[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ask_stop)
    args = _parser().parse_args(argv)
    settings = settings_for_command(PROG, database_url=args.database_url)
    if settings is None:
        return EXIT_USAGE
    configure_logging(settings)
    try:
        with notify_lock(settings.database_url), Store.open(settings.database_url) as store:
            log.info("ledger-notify started", smtp=settings.smtp_host is not None)
            asyncio.run(_serve(Worker(store, settings), once=args.once))
    except (StoreError, StoreUnavailableError) as exc:  # before FatalError: StoreError is one
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FatalError as exc:  # a second worker on an SQLite index
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def run() -> None:
    sys.exit(main())
