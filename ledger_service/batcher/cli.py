"""``ledger-batcher``: seals and anchors batches of scans until stopped (SIGTERM or Ctrl-C).

Serves Prometheus metrics at ``/metrics`` on ``LEDGER_BATCHER_METRICS_PORT`` when it is set
(ledger_service/metrics/batcher.py, and the transactions it sends).

Exit codes: 0 stopped, 1 the database or the node failed, 2 bad configuration (no BatchAnchor, a second
batcher on an SQLite index).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

import structlog

from ledger_service.batcher.worker import Batcher
from ledger_service.chain.signers import connect_chain
from ledger_service.documents.factory import open_document_store
from ledger_service.errors import ConfigurationError, FatalError, RetryableError
from ledger_service.logs import configure_logging
from ledger_service.metrics import serve_http
from ledger_service.settings import Settings, settings_for_command
from ledger_service.store import Store, StoreError, StoreUnavailableError, batcher_lock

PROG = "ledger-batcher"
EXIT_FAILED, EXIT_USAGE = 1, 2
RETRY_PAUSE_S = 2.0
"""How long a turn that failed on the node or the database waits before the next one."""

log = structlog.get_logger(__name__)

_stopping = threading.Event()
"""Set by SIGTERM/SIGINT from the first line of :func:`main`: a stop asked during start-up is kept."""


def _ask_stop(signum: int, frame: object) -> None:
    _stopping.set()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Seal acknowledged scans into Merkle batches and anchor them on BatchAnchor."
    )
    parser.add_argument("--database-url", help="the index (default: LEDGER_DATABASE_URL)")
    parser.add_argument("--once", action="store_true", help="seal what is due, anchor what is sealed, and exit")
    return parser


def serve(batcher: Batcher, *, poll_s: float, once: bool) -> None:
    """Turns until stopped; a turn that fails on the node or the database is logged and tried again."""
    while not _stopping.is_set():
        try:
            stats = batcher.turn()
        except (RetryableError, StoreUnavailableError) as exc:
            log.warning("batcher_turn_failed", problem=str(exc))
            if once:
                raise
            _stopping.wait(RETRY_PAUSE_S)
            continue
        if once:
            return
        if not stats.busy:
            _stopping.wait(poll_s)


def main(argv: Sequence[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ask_stop)
    args = _parser().parse_args(argv)
    settings = settings_for_command(PROG, database_url=args.database_url)
    if settings is None:
        return EXIT_USAGE
    configure_logging(settings)
    port = settings.batcher_metrics_port
    stop_metrics = None
    if port is not None:
        try:
            stop_metrics = serve_http(port, host=settings.metrics_host, setting="LEDGER_BATCHER_METRICS_PORT")
        except ConfigurationError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        log.info("metrics", url=f"http://{settings.metrics_host}:{port}/metrics")
    try:
        return _run(settings, once=args.once)
    finally:
        if stop_metrics is not None:
            stop_metrics()


def _run(settings: Settings, *, once: bool) -> int:
    try:
        with batcher_lock(settings.database_url), Store.open(settings.database_url) as store:
            batcher = Batcher(
                store=store, chain=connect_chain(settings), documents=open_document_store(settings), settings=settings
            )
            log.info("ledger-batcher started", max_scans=settings.batch_max_scans, seal_s=settings.batch_seal_s)
            serve(batcher, poll_s=settings.batch_poll_s, once=once)
            log.info("ledger-batcher stopped")
    except (StoreError, StoreUnavailableError, RetryableError) as exc:  # before FatalError: StoreError is one
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FatalError as exc:  # no BatchAnchor, a second batcher on an SQLite index
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def run() -> None:
    sys.exit(main())
