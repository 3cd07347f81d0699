"""``ledger-indexer``: backfill, follow and inspect the off-chain index.

    ledger-indexer backfill   index up to the chain's head and exit (progress bar: blocks/s, events/s)
    ledger-indexer follow     keep up with new blocks until SIGINT/SIGTERM
    ledger-indexer status     chain, checkpoint, head, lag and row counts; says when the checkpoint is not
                              on the node's chain and when the node is on another chain (no lag then)

``follow`` serves Prometheus metrics at ``/metrics`` on ``LEDGER_INDEXER_METRICS_PORT`` when it is set.
Configuration comes from :class:`ledger_service.settings.Settings` (``LEDGER_RPC_URL``,
``LEDGER_DATABASE_URL``, ``LEDGER_DEPLOYMENT_FILE`` or ``LEDGER_DEPLOYMENTS_DIR``,
``LEDGER_FINALITY_DEPTH``, ``LEDGER_LOG_JSON``, the completeness checks' ``LEDGER_RPC_URLS``,
``LEDGER_BLOOM_CHECK``, ``LEDGER_RECONCILE``, ``LEDGER_RECEIPTS_PROOF`` ...); the options override it.
``backfill`` and ``follow`` hold the single-writer lock of the database. Every
failure ends with one line on stderr and a non-zero exit code: 1 for errors that
need a person (wrong chain, deep reorg, bad configuration), 3 when the node or the
database stayed unavailable through all retries, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import structlog
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ledger_service.chain.artifacts import Deployment, load_deployment
from ledger_service.core.events import BlockHeader
from ledger_service.documents.factory import open_document_store
from ledger_service.errors import ConfigurationError, FatalError, LedgerError, RetryableError
from ledger_service.indexer import decode
from ledger_service.indexer.batches import BatchResolver
from ledger_service.indexer.decode import load_abis
from ledger_service.indexer.rpc import RetryPolicy, RpcClient
from ledger_service.indexer.sync import (
    DEFAULT_MAX_BATCH_EVENTS,
    Indexer,
    NewBlocks,
    RangeSizer,
    Reorg,
    describe_pin,
    make_indexer,
    node_chain,
)
from ledger_service.logs import configure_logging
from ledger_service.metrics import serve_http
from ledger_service.recursion import restore_recursion_limit
from ledger_service.settings import Settings
from ledger_service.store.batches import anchors
from ledger_service.store.handle import SQLITE_INDEXER_CACHE_KIB, BlockRef, ChainPin, Store
from ledger_service.store.lock import writer_lock

PROG = "ledger-indexer"
EXIT_FATAL, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 1, 3, 130

log = structlog.get_logger("ledger_service.indexer.cli")


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL if it does not exist (so `status` does not create an empty index)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def safe_url(url: str) -> str:
    """A database URL fit for messages (password hidden)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def resolve_deployment(settings: Settings, rpc: RpcClient) -> Deployment:
    """The manifest named by LEDGER_DEPLOYMENT_FILE, else <deployments_dir>/<chain id of the node>.json."""
    if settings.deployment_file is not None:
        return load_deployment(settings.deployment_file)
    return load_deployment(settings.deployments_dir / f"{rpc.chain_id()}.json")


def _rpc(settings: Settings, args: argparse.Namespace) -> RpcClient:
    return RpcClient(str(settings.rpc_url), timeout=args.rpc_timeout, retry=RetryPolicy(attempts=args.rpc_attempts))


def _fallback_rpc(settings: Settings, args: argparse.Namespace) -> RpcClient | None:
    """The node asked again when an answer looks incomplete (LEDGER_RPC_URLS' next URL), if there is one."""
    url = settings.fallback_rpc_url
    return (
        None if url is None else RpcClient(url, timeout=args.rpc_timeout, retry=RetryPolicy(attempts=args.rpc_attempts))
    )


DEFAULT_FETCH_PROCESSES = 1
"""Fetch processes of a long pass (see :class:`ledger_service.indexer.sync.Prefetcher`). One: on 2 cores a
second made a 1M-event SQLite backfill ~7% faster (16.8-17.0 s against 18.2-18.4 s) but added ~110 MB (each
process holds a parsed 5,000-log response and its share of the writer's pages), 380 MB for the indexer's
processes against the 300 MB budget; with more cores or memory, ``--fetch-processes 2`` or more."""

FOLLOW_PROCESS_MIN_BLOCKS = 256
"""follow uses a fetch process only for a pass at least this long (catching up), not for each new block."""


def _indexer(
    settings: Settings,
    store: Store,
    rpc: RpcClient,
    deployment: Deployment,
    args: argparse.Namespace,
    abis: dict[str, list[dict[str, Any]]] | None = None,
) -> Indexer:
    return make_indexer(
        store=store,
        rpc=rpc,
        deployment=deployment,
        abis=load_abis(settings.artifacts_dir) if abis is None else abis,
        finality_depth=settings.finality_depth,
        sizer=RangeSizer(target_logs=args.target_logs),
        max_batch_events=args.max_batch_events,
        fetch_process_min_blocks=(
            None if not args.fetch_process else 1 if args.command == "backfill" else FOLLOW_PROCESS_MIN_BLOCKS
        ),
        fetch_processes=args.fetch_processes,
        bloom_check=settings.bloom_check,
        reconcile=settings.reconcile,
        reconcile_window=settings.reconcile_window,
        receipts_proof=settings.receipts_proof,
        fallback_rpc=_fallback_rpc(settings, args),
    )


def batch_resolver(settings: Settings, store: Store, deployment: Deployment) -> BatchResolver | None:
    """The resolver of the deployment's scan batches (None for a deployment without BatchAnchor)."""
    contract = deployment.contracts.get("BatchAnchor")
    if contract is None:
        return None
    return BatchResolver(
        store=store,
        documents=open_document_store(settings),
        chain_id=deployment.chain_id,
        batch_anchor=contract.address,
        document_wait_s=settings.batch_document_wait_s,
        scan_max_age_s=settings.batch_scan_max_age_s,
    )


def _resolve_batches(resolver: BatchResolver | None) -> None:
    """Settles the pending scan batches it can; a store or database that does not answer is tried next pass."""
    if resolver is None:
        return
    try:
        while True:
            stats = resolver.run()
            if not (stats.applied or stats.refused):
                return
    except RetryableError as exc:
        log.warning("batches_unavailable", error=str(exc))


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM (the previous handlers are restored afterwards)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second signal: stop now
            raise KeyboardInterrupt
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---- commands ----------------------------------------------------------------------


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    if args.profile is None:
        return _cmd_backfill(settings, args)
    with _profiled(args.profile):
        return _cmd_backfill(settings, args)


@contextmanager
def _profiled(folder: Path) -> Iterator[None]:
    """cProfile of this thread (``folder/main.pstats``) and of every thread started meanwhile
    (``folder/thread-<n>-<name>.pstats``).

    ``threading.setprofile`` runs its function first thing in each new thread: there it starts that thread's own
    profiler, which replaces the function for the rest of the thread.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the profile folder {folder}: {exc.strerror}") from None
    profiles: list[tuple[str, cProfile.Profile]] = []

    def start(*_: object) -> None:
        profile = cProfile.Profile()
        profiles.append((threading.current_thread().name, profile))
        profile.enable()

    main = cProfile.Profile()
    threading.setprofile(start)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)
        main.create_stats()
        main.dump_stats(folder / "main.pstats")
        for number, (name, profile) in enumerate(profiles, 1):
            profile.create_stats()
            profile.dump_stats(folder / f"thread-{number}-{name}.pstats")


def _cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.database_url
    with _rpc(settings, args) as rpc:
        deployment = resolve_deployment(settings, rpc)
        with writer_lock(url) as lock, _stop_on_signals() as stop:
            rpc.interrupt = stop
            store = Store.open(url, cache_kib=SQLITE_INDEXER_CACHE_KIB)
            try:
                store.fence_writes(lock)
                indexer = _indexer(settings, store, rpc, deployment, args)
                indexer.check(where=f"the index at {safe_url(url)}")
                store.defer_item_index()  # an empty SQLite index: built once at the end, not row by row
                try:
                    code = _backfill(indexer, store=store, rpc=rpc, deployment=deployment, args=args, stop=stop)
                finally:
                    _build_deferred_indexes(store)
                if code == 0:
                    _resolve_batches(batch_resolver(settings, store, deployment))
                return code
            finally:
                store.close()


def _build_deferred_indexes(store: Store) -> None:
    """Builds what :meth:`Store.defer_item_index` dropped, also after a failed or interrupted backfill; a
    failure to build it is logged, not raised over the backfill's own outcome (the next run builds it)."""
    try:
        store.build_deferred_indexes()
    except (LedgerError, SQLAlchemyError) as exc:
        log.warning("index_build_failed", error=_one_line(str(exc)), hint=f"the next `{PROG} backfill` builds it")


def _backfill(
    indexer: Indexer,
    *,
    store: Store,
    rpc: RpcClient,
    deployment: Deployment,
    args: argparse.Namespace,
    stop: threading.Event,
) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    target = args.to_block if args.to_block is not None else rpc.latest().number
    checkpoint = store.checkpoint()
    start = deployment.deploy_block if checkpoint is None else checkpoint.number + 1
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    log.info("backfill_started", start=start, target=target, compiled_decoder=decode.COMPILED)
    if not decode.COMPILED:
        log.warning(
            "compiled_decoder_missing",
            hint="the C extension ledger_service/indexer/_speedups was not built (gcc, Python headers and "
            "Debian's nettle-dev are needed; scripts/bootstrap.sh installs them): decoding runs in Python, slower",
        )
    bar = tqdm(
        total=max(0, target - start + 1),
        unit="blk",
        unit_scale=True,
        desc="backfill",
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    began = time.monotonic()
    events = blocks = 0
    with bar:
        while not stop.is_set():
            progressed = False
            for update in indexer.sync(target=target, stop=stop):
                progressed = True
                if isinstance(update, NewBlocks):
                    blocks += len(update.range)
                    events += update.events
                    bar.update(len(update.range))
                    elapsed = max(time.monotonic() - began, 1e-9)
                    bar.set_postfix_str(f"{events:,} events, {events / elapsed:,.0f} events/s", refresh=False)
                elif isinstance(update, Reorg):
                    bar.write(f"reorg: rolled back {update.depth} block(s) to {update.common_ancestor.number}")
            current = store.checkpoint()
            if current is not None and current.number >= min(target, rpc.latest().number):
                break
            if not progressed:
                stop.wait(0.2)  # the node is behind the index for a moment
    elapsed = max(time.monotonic() - began, 1e-9)
    final = store.checkpoint()
    where = "nothing to index" if final is None else f"checkpoint {final.number}"
    state = "interrupted" if stop.is_set() else "done"
    print(
        f"{PROG}: backfill {state}: {blocks} blocks, {events} events in {elapsed:.1f} s "
        f"({blocks / elapsed:,.0f} blocks/s, {events / elapsed:,.0f} events/s); {where}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED if stop.is_set() else 0


def cmd_follow(settings: Settings, args: argparse.Namespace) -> int:
    """Follows until SIGINT/SIGTERM; a node that is down is waited for, a wrong chain or deep reorg stops it.
    Serves its metrics on LEDGER_INDEXER_METRICS_PORT meanwhile, if set (also while it waits for the lock)."""
    port = settings.indexer_metrics_port
    if port is None:
        return _follow(settings, args)
    stop_metrics = serve_http(port, host=settings.metrics_host, setting="LEDGER_INDEXER_METRICS_PORT")
    log.info("metrics", url=f"http://{settings.metrics_host}:{port}/metrics")
    try:
        return _follow(settings, args)
    finally:
        stop_metrics()


def _follow(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.database_url
    with _rpc(settings, args) as rpc:
        deployment = resolve_deployment(settings, rpc)
        # read before the lock: a standby taking over then only opens the index and goes on
        abis = load_abis(settings.artifacts_dir)
        with writer_lock(url) as lock, _stop_on_signals() as stop:
            rpc.interrupt = stop
            store = Store.open(url, cache_kib=SQLITE_INDEXER_CACHE_KIB)
            try:
                store.fence_writes(lock)  # a write after another indexer took over is refused (WriterFencedError)
                indexer = _indexer(settings, store, rpc, deployment, args, abis)
                indexer.where = f"the index at {safe_url(url)}"
                store.build_deferred_indexes()  # a backfill that was killed left it to build
                resolver = batch_resolver(settings, store, deployment)

                def before_pass() -> None:
                    lock.check()
                    # each pass also retries the batches whose document was not available yet
                    _resolve_batches(resolver)

                log.info("following", rpc=str(settings.rpc_url), database=safe_url(url))
                for update in indexer.follow(stop=stop, poll_interval=args.poll_interval, heartbeat=before_pass):
                    if isinstance(update, NewBlocks):
                        log.info(
                            "indexed",
                            start=update.range.start,
                            end=update.range.end,
                            events=update.events,
                            head=update.head,
                        )
                    else:
                        log.warning("reorg", common_ancestor=update.common_ancestor.number, depth=update.depth)
                log.info("stopped")
            finally:
                store.close()
    return 0


def cmd_reopen_batches(settings: Settings, args: argparse.Namespace) -> int:
    """Settles again every scan batch anchored at or above ``--from-block`` (each back to pending, its scans
    removed, then resolved in the chain's order): re-applies a batch given up on once its document is published,
    and the later batches its scans' chains lead to, as a clean re-index would settle them."""
    if args.from_block < 0:
        print(f"{PROG}: error: --from-block must be a block number (0 or more), not {args.from_block}", file=sys.stderr)
        return EXIT_FATAL
    url = settings.database_url
    missing = _missing_sqlite_file(url)
    if missing is not None:
        print(f"{PROG}: error: no index yet: {missing} does not exist (run `{PROG} backfill`)", file=sys.stderr)
        return EXIT_FATAL
    with _rpc(settings, args) as rpc:
        deployment = resolve_deployment(settings, rpc)
        with writer_lock(url) as lock:
            store = Store.open(url)
            try:
                store.fence_writes(lock)
                resolver = batch_resolver(settings, store, deployment)
                if resolver is None:
                    print(f"{PROG}: error: the deployment has no BatchAnchor: no batches to reopen", file=sys.stderr)
                    return EXIT_FATAL
                reopened = store.reopen_batches(from_block=args.from_block)
                log.info("batches_reopened", from_block=args.from_block, anchors=reopened)
                _resolve_batches(resolver)
                states = Counter(anchor.state for anchor in anchors(store) if anchor.block_number >= args.from_block)
            finally:
                store.close()
    settled = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "none"
    print(f"{reopened} batches from block {args.from_block} reopened and settled again: {settled}")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.database_url
    missing = _missing_sqlite_file(url)
    if missing is not None:
        print(f"index: {safe_url(url)}\nno index yet: {missing} does not exist (run `{PROG} backfill`)")
        return EXIT_FATAL
    store = Store.open(url)
    try:
        pin = store.pin()
        checkpoint = store.checkpoint()
        counts = store.counts()
        deferred = store.deferred_indexes()
        kept = {} if checkpoint is None else store.stored_blocks(from_block=0, to_block=checkpoint.number)
        faults = store.node_fault_counts()
    finally:
        store.close()
    lines = [f"index: {safe_url(url)}"]
    lines.append(f"chain: {describe_pin(pin)}" if pin else "chain: not pinned yet (empty index)")
    lines.append(f"checkpoint: block {checkpoint.number} ({checkpoint.hash})" if checkpoint else "checkpoint: none")
    code = 0
    try:
        # a quick look: status must answer at once, even when the node is down
        quick = RetryPolicy(attempts=min(args.rpc_attempts, 2), base_delay=0.1, max_delay=0.5)
        with RpcClient(str(settings.rpc_url), timeout=min(args.rpc_timeout, 5.0), retry=quick) as rpc:
            head = rpc.latest()
            chain_id, genesis = node_chain(rpc)
            lines.append(f"head: block {head.number} ({head.hash}) on chain {chain_id} at {settings.rpc_url}")
            if pin is not None and (chain_id, genesis) != (pin.chain_id, pin.genesis_hash.lower()):
                lines += _another_chain(pin, chain_id=chain_id, genesis=genesis)
                code = EXIT_FATAL
            elif checkpoint is not None:
                lines += _lag(rpc, checkpoint=checkpoint, head=head, kept=kept)
    except LedgerError as exc:
        lines.append(f"head: unavailable ({_one_line(exc)})")
        code = EXIT_UNAVAILABLE
    lines.append("rows: " + ", ".join(f"{table}={n}" for table, n in sorted(counts.items())))
    lines.append(_node_faults_line(*faults))
    if deferred:
        lines.append(
            f"missing index: {', '.join(deferred)} (a first backfill builds it at its end; if none is running, the "
            f"next `{PROG} backfill` or `{PROG} follow` does)"
        )
    print("\n".join(lines))
    return code


def _another_chain(pin: ChainPin, *, chain_id: int, genesis: str) -> list[str]:
    return [
        f"node: on another chain: genesis {genesis} (chain {chain_id}), but the index is of genesis "
        f"{pin.genesis_hash} (chain {pin.chain_id}); point LEDGER_RPC_URL at a node of the indexed chain",
        "lag: n/a (the node is on another chain)",
    ]


def _lag(rpc: RpcClient, *, checkpoint: BlockRef, head: BlockHeader, kept: dict[int, BlockHeader]) -> list[str]:
    """How far the index is behind the node, once the checkpoint is known to be on the node's chain."""
    if head.number < checkpoint.number:
        behind = checkpoint.number - head.number
        stored = kept.get(head.number)
        if stored is None:
            return [
                f"lag: 0 blocks (the node is {behind} blocks behind the checkpoint; whether on the indexed chain is "
                "unknown: its head is below the headers the index keeps)"
            ]
        if stored.hash.lower() == head.hash:
            return [f"lag: 0 blocks (the node is {behind} blocks behind the checkpoint, on the indexed chain)"]
        other = head
    else:
        found = head if head.number == checkpoint.number else rpc.header(checkpoint.number)
        if found is None:  # the chain shrank since the head was read
            return ["lag: unknown (the node no longer has the checkpoint's block; run status again)"]
        if found.hash == checkpoint.hash.lower():
            return [f"lag: {head.number - checkpoint.number} blocks"]
        other = found
    return [
        f"reorg: the checkpoint is not on the node's chain: the node's block {other.number} is {other.hash}, the "
        f"index's is {kept[other.number].hash if other.number in kept else checkpoint.hash}; the indexer rolls back "
        "to the common ancestor on its next pass",
        "lag: n/a (the checkpoint is on another branch than the node's head)",
    ]


def _node_faults_line(total: int, repaired: int) -> str:
    if total == 0:
        return "node faults: 0 (no incomplete answer seen)"
    return (
        f"node faults: {total} ({repaired} repaired): answers of the node that lacked logs; see the node_faults table"
    )


# ---- entry point ---------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Reorg-safe indexer of the ledger contracts.")
    parser.add_argument("--rpc-url", help="JSON-RPC URL (default: LEDGER_RPC_URL)")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the index (default: LEDGER_DATABASE_URL)")
    parser.add_argument("--deployment-file", type=Path, help="deployment manifest (default: LEDGER_DEPLOYMENT_FILE)")
    parser.add_argument("--finality-depth", type=int, help="blocks after which a block is final")
    parser.add_argument(
        "--target-logs", type=_positive, default=5000, help="logs per eth_getLogs request to aim for (default 5000)"
    )
    parser.add_argument(
        "--max-batch-events",
        type=_positive,
        default=DEFAULT_MAX_BATCH_EVENTS,
        help="when behind, ranges already fetched are written in one transaction up to this many events "
        f"(default {DEFAULT_MAX_BATCH_EVENTS})",
    )
    parser.add_argument(
        "--fetch-process",
        action=argparse.BooleanOptionalAction,
        default=sys.platform.startswith("linux"),
        help="fetch and decode in a forked process, on another core (backfill, and follow catching up "
        f"{FOLLOW_PROCESS_MIN_BLOCKS}+ blocks; default: on Linux)",
    )
    parser.add_argument(
        "--fetch-processes",
        type=_positive,
        default=DEFAULT_FETCH_PROCESSES,
        help="fetch processes of a long pass: several fetch alternate chunks of blocks side by side, faster "
        f"with cores to spare, each taking ~50 MB more (default {DEFAULT_FETCH_PROCESSES})",
    )
    parser.add_argument("--rpc-timeout", type=float, default=30.0, help="seconds to wait for one RPC answer")
    parser.add_argument(
        "--rpc-attempts", type=_positive, default=8, help="attempts per RPC call before giving up (default 8)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    backfill = commands.add_parser("backfill", help="index up to the chain's head and exit")
    backfill.add_argument("--to-block", type=int, help="stop at this block instead of the head")
    backfill.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a tty)"
    )
    backfill.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile the backfill (cProfile): main.pstats (the writer) and thread-<n>-<name>.pstats per other "
        "thread written into DIR "
        "(read them with python -m pstats); fetch processes are not profiled",
    )
    follow = commands.add_parser("follow", help="keep up with new blocks until SIGINT/SIGTERM")
    follow.add_argument("--poll-interval", type=float, default=0.2, help="seconds between polls when idle")
    commands.add_parser("status", help="chain, checkpoint, head, lag and row counts")
    reopen = commands.add_parser(
        "reopen-batches",
        help="settle again the scan batches anchored from a block on (re-applies one given up on once its document "
        "is published); stop `follow` first",
    )
    reopen.add_argument("--from-block", type=int, required=True, help="the block of the first anchor to settle again")
    return parser


COMMANDS = {
    "backfill": cmd_backfill,
    "follow": cmd_follow,
    "status": cmd_status,
    "reopen-batches": cmd_reopen_batches,
}


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for option, field in (
        ("rpc_url", "rpc_url"),
        ("database_url", "database_url"),
        ("deployment_file", "deployment_file"),
        ("finality_depth", "finality_depth"),
    ):
        value = getattr(args, option)
        if value is not None:
            overrides[field] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from None


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process that allocates millions of short-lived objects.

    The decoded events and row tuples of a batch are freed by reference counting; CPython's default
    (a collection every 700 net allocations, full ones as the heap grows) kept scanning the batch and
    the item cache anyway, about a tenth of a 1M-event backfill's time. What was imported at start-up
    is frozen out of collections; a young collection runs every 200,000 allocations (every 50,000 still
    cost ~1.1 s of the writer's thread in a 1M-event backfill, 200,000 ~0.1 s).
    """
    gc.freeze()
    gc.set_threshold(200_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    restore_recursion_limit()  # the node's answers go through the C json decoder: see ledger_service.recursion
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logging(settings)
        _tune_gc()
        return COMMANDS[args.command](settings, args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FatalError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL
    except RetryableError as exc:
        print(f"{PROG}: unavailable: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except LedgerError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL
    except (ArgumentError, NoSuchModuleError) as exc:
        print(f"{PROG}: error: invalid database URL: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG}: database error: {_one_line(first)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL
    except Exception as exc:  # a bug: still one line, the traceback only at DEBUG level
        log.debug("traceback", exc_info=True)
        print(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL


def run() -> NoReturn:
    """The console script: :func:`main`, then a quick exit.

    Tearing the interpreter down (freeing every module and object: SQLAlchemy, pydantic, the item cache)
    took 0.12 s of every run, about a twentieth of a 100k-event backfill. By the time :func:`main`
    returns, the CLI has closed its index, its node connections and its lock and reaped its fetch
    processes: it flushes its output and leaves with ``os._exit``.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
    except (OSError, ValueError):  # a closed or broken pipe (e.g. `ledger-indexer status | head -1`)
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
