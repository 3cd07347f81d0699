"""Prometheus metrics of every process (``ledger-api`` and its workers, ``ledger-indexer``), defined once.

Invariants:

- **One definition per metric.** Every metric the service exposes is a module-level object of
  :mod:`.http` (the API's requests and queued scans), :mod:`.chain` (the transactions sent), :mod:`.indexer` or
  :mod:`.batcher`, imported only by
  the process that updates it (in multiprocess mode a metric exists from its definition on, so a process that
  imported another's metrics would expose them as zeros); :data:`METRIC_NAMES` lists every family, which the
  tests check the alert rules and the dashboard against (a query of a metric nobody exposes is a rule that
  never fires).
- **Several worker processes, one answer.** ``ledger-api`` always serves under a supervisor, one worker or
  many. :func:`prepare_multiprocess_dir` (called by the supervisor before any worker starts) empties
  ``LEDGER_METRICS_DIR`` and hands it to the workers as ``PROMETHEUS_MULTIPROC_DIR``, so prometheus-client
  writes each worker's values to files there and any worker's ``/metrics`` adds them all up
  (:func:`exposition`); a worker that stops marks its live gauges dead. Files of an earlier run would add
  old counts to new ones: the directory is emptied at each start, never while workers run.
- **A process without the directory** (the indexer, the API in tests) keeps its values in memory and
  exposes them itself (the indexer on ``LEDGER_INDEXER_METRICS_PORT``, the batcher on
  ``LEDGER_BATCHER_METRICS_PORT``).
- **Labels are bounded.** A route label is the route's template (``/v1/returns/{return_id}``), never the
  path; an unknown path is ``<unmatched>``; kinds and types are fixed sets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest, multiprocess, values
from prometheus_client.registry import REGISTRY, Collector

from ledger_service.errors import ConfigurationError

# a *_created series per counter and histogram: nothing here reads them, and every process would expose them
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SETTING_ENV = "LEDGER_METRICS_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CHAIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# ---- computed at scrape time from the index (the API's collector) ---------------------------------------

ESCROW_OUTSTANDING = "ledger_escrow_outstanding"
"""Gauge family: token amounts (base units) held in escrow by returns not yet settled, by token."""
RETURNS_BY_STATE = "ledger_returns"
"""Gauge family: returns in the index, by state."""

METRIC_NAMES: frozenset[str] = frozenset(
    {
        "ledger_http_request_duration_seconds",
        "ledger_http_requests_in_flight",
        "ledger_tx_send_duration_seconds",
        "ledger_tx_confirm_duration_seconds",
        "ledger_tx_total",
        "ledger_tx_pending",
        "ledger_tx_nonce_gaps_total",
        "ledger_tx_replaced_total",
        "ledger_tx_stuck",
        "ledger_indexer_head_block",
        "ledger_indexer_checkpoint_block",
        "ledger_indexer_lag_blocks",
        "ledger_indexer_lag_seconds",
        "ledger_indexer_events_total",
        "ledger_indexer_rpc_errors_total",
        "ledger_indexer_rpc_retries_total",
        "ledger_indexer_reorgs_total",
        "ledger_indexer_reorg_depth_blocks",
        "ledger_indexer_chain_problems_total",
        "ledger_indexer_batches_total",
        "ledger_indexer_last_progress_timestamp_seconds",
        "ledger_batcher_batches_sealed_total",
        "ledger_batcher_batches_anchored_total",
        "ledger_batcher_batches_reorged_total",
        "ledger_batcher_batches_failed_total",
        "ledger_batcher_anchor_failures_total",
        "ledger_batcher_anchor_latency_seconds",
        "ledger_batcher_stuck_batches",
        "ledger_batcher_transit_proofs_total",
        "ledger_batcher_last_turn_timestamp_seconds",
        "ledger_scans_queued_total",
        ESCROW_OUTSTANDING,
        RETURNS_BY_STATE,
    }
)
"""Every metric family the service defines (without the ``_bucket`` / ``_count`` / ``_sum`` / ``_created``
series names Prometheus derives)."""


# ---- exposition ------------------------------------------------------------------------------------------


def multiprocess_mode() -> bool:
    """Whether this process writes its values to the shared directory (prometheus-client chose at import)."""
    return values.ValueClass is not values.MutexValue


def prepare_multiprocess_dir(path: Path | None) -> Path:
    """Empties (creates) ``path``, or a new temporary directory if None, and names it to the worker processes
    started after this call (``PROMETHEUS_MULTIPROC_DIR``, read by prometheus-client when a worker imports
    it); call it in the supervisor, before any worker starts. Returns the directory."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="ledger-metrics-"))
    else:
        path = path.resolve()
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    os.environ[SETTING_ENV] = str(path)  # the workers' Settings.metrics_dir: where their /metrics reads
    return path


def mark_process_dead(directory: Path | None) -> None:
    """Drops a stopping worker's live gauges from the shared ``directory`` (its counters keep counting)."""
    if directory is not None and multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]


def forget_dead_processes(directory: Path | None) -> None:
    """Drops the live gauges of workers that died without stopping (SIGKILL, the OOM killer): called by each
    worker at its start, which is when the supervisor replaces a dead one."""
    if directory is None or not multiprocess_mode():
        return
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's
            continue


def exposition(*, directory: Path | None = None, extra: Iterable[Collector] = ()) -> bytes:
    """The text format of every metric of this process, or of every worker when this process writes to the
    shared ``directory``, plus ``extra`` collectors computed now."""
    registry = CollectorRegistry()
    if directory is not None and multiprocess_mode():
        multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Default())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _Default(Collector):
    """The process's own registry (its metrics in memory), beside scrape-time collectors in a fresh one."""

    def collect(self) -> Iterable[object]:  # type: ignore[override]
        return REGISTRY.collect()


def serve_http(port: int, *, host: str = "127.0.0.1", setting: str) -> Callable[[], None]:
    """Serves this process's metrics on ``host:port`` from a daemon thread (the indexer's endpoint); returns
    a function that stops it. A port that cannot be bound is a ConfigurationError naming ``setting``, the
    variable that chose it, rather than a traceback."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror}): free the port or set another {setting}"
        ) from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
