"""The indexer: mirrors the pinned contracts' logs into the store, reorg-safe.

Invariants:
- the index is pinned to one chain (chain id, genesis hash) and one deployment
  (ledger and escrow addresses, deploy block); a run against anything else is
  refused before a single row is written;
- a range's rows, block headers and checkpoint are written in one transaction
  (:meth:`Store.apply`), so a crash at any moment leaves the index at a range
  boundary and a restart resumes from the checkpoint with no gap and no duplicate;
- every indexed block within ``finality_depth`` below the checkpoint has its
  header stored and each links to its parent, whatever the chain did: each range
  is fetched with the headers of its last ``finality_depth`` blocks, headers are
  pruned against the new checkpoint (not the node's head, which may be higher than
  the chain will stay), a rollback stores the headers below the common ancestor
  that the index lacks (fetched from the node and checked to be its ancestry), and
  a run that starts on an index missing some (written by an older version) fetches
  them the same way;
- before a range is applied the first new block's parentHash is compared with the
  checkpoint's hash; a mismatch walks back through the stored blocks to the common
  ancestor, rolls back to it and re-indexes. No common ancestor within finality
  stops with a FatalError and leaves the index as it was;
- headers are fetched before logs, and every log in a block whose header was
  fetched must carry that header's hash: logs can never be from an older chain
  than the headers stored with them, so any race with a reorg is caught later
  by the parent-hash check;
- a node whose head is below the checkpoint is waited for unless the block it
  reports differs from the one indexed (then it is a reorg);
- a chain that shrinks between the head read and ``eth_getLogs`` (the node answers
  "block out of range" or "block not found") makes the pass read the head again;
- a node that serves another chain than the pinned one (another genesis or chain
  id: replaced, reset, misrouted) stops the indexer with a FatalError saying so,
  also when it is found mid-way: when the node seems behind the checkpoint and
  before any walk back for a reorg;
- a batch is written only when the completeness checks (:mod:`completeness`: the
  blocks' logsBloom, the contract's itemOf, unbroken hash chains, optionally the
  receipts proof) find nothing missing, after at most one re-fetch (from the
  second RPC URL when there is one); otherwise the indexer stops with
  IncompleteLogsError and nothing of the batch is written: the index never holds
  a history with holes.

Fetching overlaps decoding and writing: a thread fetches and decodes the next
ranges into a small bounded queue while the caller's thread writes. For long
passes (``fetch_process_min_blocks``: every backfill, and follow catching up)
fetching, JSON parsing, decoding and the eventHash check run in forked
processes instead (``fetch_processes``; several fetch alternate chunks of the
pass side by side), which hand each decoded range over a pipe (:mod:`wire`),
relayed in block order, so they use other cores instead of competing with the
writer for the GIL. Ranges
that queued up while the writer was busy are applied in one transaction (up to
``max_batch_events``), and in a pass of the fetch process a transaction waits
until it holds ``min_batch_events``; a writer that keeps up with a follow near
the head applies each range on its own.
Range sizes adapt: they shrink on RangeTooLarge, timeouts or large responses
and grow while responses stay small.

Metrics (:mod:`ledger_service.metrics`, served by ``ledger-indexer follow`` on
``LEDGER_INDEXER_METRICS_PORT``): the head, checkpoint and lag after every pass and batch, the events
written by type, reorgs and their depth, and the chain problems found (hash-chain breaks recorded, incomplete
node answers by kind). RPC failures are counted by :mod:`rpc` in this process; those of a fetch process (a
long pass) stay in that process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import gc
import itertools
import os
import pickle
import queue
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import structlog

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from ledger_service.chain.artifacts import Deployment
from ledger_service.core.events import BlockHeader, DecodedEvent
from ledger_service.core.rows import EVENT_TYPES, EventRows, joined_events
from ledger_service.errors import FatalError, RetryableError
from ledger_service.indexer import completeness, wire
from ledger_service.indexer.completeness import Checks, IncompleteLogsError
from ledger_service.indexer.decode import Decoder, MalformedLogError, ScannedRows
from ledger_service.indexer.rpc import (
    BlockOutOfRange,
    RangeTooLarge,
    RpcClient,
    RpcRetryableError,
    RpcTimeoutError,
    header_from_json,
)
from ledger_service.metrics.indexer import (
    INDEXER_CHAIN_PROBLEMS,
    INDEXER_CHECKPOINT,
    INDEXER_EVENTS,
    INDEXER_HEAD,
    INDEXER_LAG_BLOCKS,
    INDEXER_LAG_SECONDS,
    INDEXER_LAST_PASS,
    INDEXER_REORG_DEPTH,
    INDEXER_REORGS,
)
from ledger_service.store import StoreUnavailableError, WriterFencedError
from ledger_service.store.handle import BlockRef, ChainBreakError, ChainPin, NodeFault, Store

log = structlog.get_logger("ledger_service.indexer")


class ChainMovedError(RetryableError):
    """The chain changed while a range was being fetched; fetch it again."""


class _Disagreed(Exception):  # noqa: N818 (private: a batch's transaction is rolled back, never raised further)
    """The contract's itemOf disagrees with a batch being written: its transaction must not commit."""


# ---- what sync yields ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRange:
    """Blocks ``start`` ..= ``end``."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class NewBlocks:
    """A range was indexed: its events are in the store and the checkpoint is its last block."""

    range: BlockRange
    events: int
    head: int


@dataclass(frozen=True, slots=True)
class Reorg:
    """Blocks above ``common_ancestor`` were replaced on the chain; the index was rolled back to it."""

    common_ancestor: BlockRef
    depth: int


SyncUpdate = NewBlocks | Reorg


# ---- metrics ----------------------------------------------------------------------


def _observe_position(*, head: BlockHeader, checkpoint: int, checkpoint_time: int | None) -> None:
    """The head, checkpoint and lag gauges (lag in seconds: between the two blocks' timestamps)."""
    INDEXER_HEAD.set(head.number)
    INDEXER_CHECKPOINT.set(checkpoint)
    INDEXER_LAG_BLOCKS.set(max(0, head.number - checkpoint))
    if checkpoint >= head.number:
        INDEXER_LAG_SECONDS.set(0)
    elif checkpoint_time is not None:
        INDEXER_LAG_SECONDS.set(max(0, head.timestamp - checkpoint_time))
    INDEXER_LAST_PASS.set(time.time())


def _count_events(events: Sequence[DecodedEvent]) -> None:
    """Adds a written batch's events to the per-type counter."""
    if isinstance(events, EventRows):
        by_index = collections.Counter(row[0] for row in events.rows)
        counts = {EVENT_TYPES[index].__name__: n for index, n in by_index.items()}
    else:
        counts = dict(collections.Counter(type(event).__name__ for event in events))
    for name, n in counts.items():
        INDEXER_EVENTS.labels(name).inc(n)


def _count_faults(faults: Sequence[NodeFault]) -> None:
    for fault in faults:
        INDEXER_CHAIN_PROBLEMS.labels(fault.kind).inc()


# ---- pinning --------------------------------------------------------------------


def pin_of(deployment: Deployment) -> ChainPin:
    """The pin an index built from ``deployment`` carries."""
    return ChainPin(
        chain_id=deployment.chain_id,
        genesis_hash=deployment.genesis_hash.lower(),
        ledger_address=deployment.address_of("ProvenanceLedger").lower(),
        escrow_address=deployment.address_of("ReturnsEscrow").lower(),
        deploy_block=deployment.deploy_block,
        exchange_address=_optional_address(deployment, "ExchangeEscrow"),
        batch_anchor_address=_optional_address(deployment, "BatchAnchor"),
    )


def _optional_address(deployment: Deployment, name: str) -> str | None:
    contract = deployment.contracts.get(name)
    return None if contract is None else contract.address.lower()


def pin_addresses(pin: ChainPin) -> list[str]:
    """The contract addresses whose logs the indexer fetches (and the index holds)."""
    optional = [address for address in (pin.exchange_address, pin.batch_anchor_address) if address]
    return [pin.ledger_address, pin.escrow_address, *optional]


def describe_pin(pin: ChainPin) -> str:
    return (
        f"chain {pin.chain_id} (genesis {pin.genesis_hash}), ledger {pin.ledger_address}, "
        f"escrow {pin.escrow_address}, exchanges {pin.exchange_address or '(none)'}, "
        f"batch anchor {pin.batch_anchor_address or '(none)'}, deploy block {pin.deploy_block}"
    )


def _normalized(pin: ChainPin) -> tuple[int, str, str, str, int, str | None, str | None]:
    return (
        pin.chain_id,
        pin.genesis_hash.lower(),
        pin.ledger_address.lower(),
        pin.escrow_address.lower(),
        pin.deploy_block,
        pin.exchange_address.lower() if pin.exchange_address else None,
        pin.batch_anchor_address.lower() if pin.batch_anchor_address else None,
    )


def node_chain(rpc: RpcClient) -> tuple[int, str]:
    """The chain id and genesis hash the node serves ("(none)" for a node without block 0)."""
    chain_id = rpc.chain_id()
    genesis = rpc.header(0)
    return chain_id, genesis.hash if genesis else "(none)"


def check_node(rpc: RpcClient, pin: ChainPin) -> None:
    """Refuses a node that does not serve the pinned chain."""
    chain_id, genesis_hash = node_chain(rpc)
    if chain_id != pin.chain_id or genesis_hash != pin.genesis_hash.lower():
        raise FatalError(
            f"wrong chain: the node at {rpc.url} serves chain {chain_id} (genesis {genesis_hash}), but the "
            f"deployment is for chain {pin.chain_id} (genesis {pin.genesis_hash}); point LEDGER_RPC_URL at that "
            "chain or use its deployment manifest"
        )


def check_store(store: Store, pin: ChainPin, *, where: str = "the index") -> None:
    """Pins an empty index to ``pin``; refuses an index pinned to another chain or deployment."""
    stored = store.pin()
    if stored is None:
        store.set_pin(pin)
        log.info("index_pinned", pin=describe_pin(pin))
        return
    if _normalized(stored) != _normalized(pin):
        raise FatalError(
            f"wrong chain or deployment: {where} was built from {describe_pin(stored)}, but this run is for "
            f"{describe_pin(pin)}; refusing to mix them (use another database for this chain)"
        )


# ---- adaptive ranges --------------------------------------------------------------


@dataclass
class RangeSizer:
    """Picks the next eth_getLogs span (blocks) from how the last ones went.

    Aims at ``target_logs`` logs and at most ``soft_max_bytes`` per response. A span
    the node refused caps growth just below it for ``ceiling_ttl`` ranges, so a
    provider's block-range limit is not hit again on every other request.
    """

    size: int = 8
    min_size: int = 1
    max_size: int = 100_000
    target_logs: int = 5_000
    soft_max_bytes: int = 16 * 1024 * 1024
    ceiling_ttl: int = 100
    _ceiling: int | None = None
    _ceiling_left: int = 0

    def shrink(self, *, refused: int | None = None) -> None:
        """A request of ``refused`` blocks failed as too large or too slow: halve the span."""
        if refused is not None and refused > self.min_size:
            self._ceiling = refused - 1
            self._ceiling_left = self.ceiling_ttl
        self.size = max(self.min_size, self.size // 2)

    def observe(self, *, blocks: int, logs: int, nbytes: int) -> None:
        """A request of ``blocks`` blocks answered ``logs`` logs in ``nbytes`` bytes."""
        if self._ceiling is not None:
            self._ceiling_left -= 1
            if self._ceiling_left <= 0:
                self._ceiling = None
        if logs > 2 * self.target_logs or nbytes > self.soft_max_bytes:
            scale = min(self.target_logs / max(logs, 1), self.soft_max_bytes / max(nbytes, 1))
            self.size = max(self.min_size, min(self.size // 2, int(blocks * scale)))
        elif logs < self.target_logs // 2 and blocks >= self.size:
            limit = self.max_size if self._ceiling is None else min(self.max_size, self._ceiling)
            self.size = max(self.size, min(limit, self.size * 2))


# ---- the fetch thread --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetched and decoded range, with the headers needed to apply it."""

    range: BlockRange
    first: BlockHeader
    last: BlockHeader
    window: list[BlockHeader]
    events: Sequence[DecodedEvent]
    """The range's events; from a fetch process, in their row form (:class:`~ledger_service.core.rows.EventRows`)."""
    faults: tuple[NodeFault, ...] = ()
    """What the completeness checks found while fetching it (see :mod:`completeness`)."""


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A range as the fetch process sent it (see :meth:`Prefetcher._decoded`)."""

    payload: bytes


_DONE = object()

DEFAULT_MAX_BATCH_EVENTS = 25_000
"""Events per write transaction when ranges queue up (bounds the memory a backlog holds)."""
DEFAULT_MIN_BATCH_EVENTS = 20_000
"""Events a write transaction waits for in a long pass (the fetch process's): see :class:`Prefetcher`."""


PIPE_BYTES = 1 << 20
"""The fetch process's pipe buffer (Linux: F_SETPIPE_SZ; 1 MiB is the unprivileged maximum by default)."""


def _widen(fd: int) -> None:
    """Gives the pipe :data:`PIPE_BYTES` of buffer where the system allows it.

    With the default 64 KiB, the writer process's relay thread needed ~40 reads for a range's frame, and
    each read waited for the GIL while the writer's thread ran Python code (up to the 5 ms switch
    interval): the fetch process then stalled on the full pipe for seconds in a 1M-event backfill.
    """
    if fcntl is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _pickled(exc: BaseException) -> bytes:
    """The fetch process's failure for the writer: the exception itself, or its text when it cannot travel."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)  # noqa: S301 - our own bytes, just made
    except Exception:  # any exception that does not survive pickling
        data = pickle.dumps(RpcRetryableError(f"fetch process: {type(exc).__name__}: {exc}"))
    return data


def _unpickled(data: bytes) -> BaseException:
    error = pickle.loads(data)  # noqa: S301 - from our own fetch process, over a private pipe
    return error if isinstance(error, BaseException) else RpcRetryableError(f"fetch process: {error!r}")


def _die_with_parent(parent: int) -> None:
    """Makes the kernel kill this (forked) process when its parent dies (Linux); exits if it already has."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def _check_forks(events: Sequence[DecodedEvent], headers: dict[int, BlockHeader]) -> None:
    """Raises ChainMovedError when a log carries another hash than its block's fetched header."""
    blocks = (
        ((row[1][0], row[1][1]) for row in events.rows)
        if isinstance(events, EventRows)
        else ((event.pos.block_number, event.pos.block_hash) for event in events)
    )
    for number, block_hash in blocks:
        header = headers.get(number)
        if header is not None and header.hash != block_hash:
            raise ChainMovedError(f"a log of block {header.number} is from another fork (the chain moved)")


def _fault_tuple(fault: NodeFault) -> tuple[Any, ...]:
    """A fault's wire form (marshal takes plain tuples)."""
    return (fault.kind, fault.from_block, fault.to_block, fault.item_id, fault.detail, fault.repaired)


def _joined(parts: Sequence[Fetched]) -> Fetched:
    """Consecutive, linked ranges as one."""
    return Fetched(
        BlockRange(parts[0].range.start, parts[-1].range.end),
        parts[0].first,
        parts[-1].last,
        [header for part in parts for header in part.window],
        joined_events([part.events for part in parts]),
        tuple(f for part in parts for f in part.faults),
    )


CHUNK_RANGES = 4
"""With several fetch processes, each is ordered this many ranges (of the current size) at a time."""

FETCH_THREADS = 2
"""Ranges a fetch process has in flight, each on a thread with a connection of its own: while one thread waits
for the node's answer (the GIL free), the other parses and decodes the range before it, so the node's time
overlaps the process's own. 1M events into SQLite: the writer waited 1.8 s for ranges instead of 2.9 s; the
second parsed answer costs ~15 MB."""

_ORDER = struct.Struct("<qqq")
"""An order to a fetch process: first block, last block, range size to start with."""


@dataclass(eq=False)
class _Chunk:
    """Blocks ordered from one fetch process, and what it sent of them so far."""

    start: int
    end: int
    worker: _Worker
    frames: collections.deque[bytes] = field(default_factory=collections.deque)
    done: bool = False
    error: BaseException | None = None


@dataclass(eq=False)
class _Worker:
    """A fetch process: its pid, the read end of its frames pipe, the write end of its orders pipe (-1 once
    closed)."""

    pid: int
    frames: int
    orders: int
    chunks: collections.deque[_Chunk] = field(default_factory=collections.deque)
    """Its orders not done yet, oldest first."""
    failed: bool = False
    reaped: bool = False


def _read_order(fd: int) -> tuple[int, int, int] | None:
    """The next order (blocking); None once the writer closed the pipe (or went away mid-order)."""
    data = b""
    while len(data) < _ORDER.size:
        chunk = os.read(fd, _ORDER.size - len(data))
        if not chunk:
            return None
        data += chunk
    start, end, size = _ORDER.unpack(data)
    return start, end, size


def _close_orders(worker: _Worker) -> None:
    """Closes a fetch process's orders pipe (once: its number may belong to another file afterwards)."""
    if worker.orders >= 0:
        fd, worker.orders = worker.orders, -1
        os.close(fd)


class Prefetcher:
    """Fetches and decodes ranges ``start``..``end`` a few ranges ahead of the writer: on a thread, or (with
    ``process``) in ``processes`` forked processes whose frames a thread relays in block order."""

    def __init__(
        self,
        *,
        rpc: RpcClient,
        decoder: Decoder,
        addresses: Sequence[str],
        start: int,
        end: int,
        window_from: int,
        sizer: RangeSizer,
        keep: int | None = None,
        depth: int = 2,
        max_events: int = 0,
        min_events: int = 0,
        process: bool = False,
        processes: int = 1,
        shrink_attempts: int = 8,
        interrupt: threading.Event | None = None,
        checks: Checks | None = None,
    ) -> None:
        self._rpc = rpc
        self._checks = checks
        self._decoder = decoder
        self._addresses = list(addresses)
        self._start = start
        self._end = end
        self._window_from = window_from
        self._keep = keep
        """Each range also comes with the headers of its last ``keep`` blocks (None: only from ``window_from``)."""
        self._sizer = sizer
        self._shrink_attempts = shrink_attempts
        self._interrupt = interrupt
        self._depth = depth
        self._max_events = max_events
        self._min_events = min(min_events, max_events) if process else 0
        self._held: list[Any] = []
        """At most one item taken from the queue but not handed out yet (a range that did not join, a failure)."""
        self._ended = False
        # the fetch process's ranges wait encoded (a fraction of their decoded size): room for twice as many,
        # so that it keeps fetching while the writer applies a batch of ``min_events``
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth * 2 if process else depth)
        self._stop = threading.Event()
        self._workers: list[_Worker] = []
        """The fetch processes, in process mode (none: the thread fetches)."""
        self._size_hint = sizer.size
        """The range size the fetch processes last reported: the next chunk's is CHUNK_RANGES of it."""
        if process:
            for _ in range(max(1, processes)):
                try:
                    self._workers.append(self._fork())
                except OSError as exc:  # no process to spare (EAGAIN, ENOMEM): fewer, or fetch on the thread
                    log.warning("fetch_process_unavailable", error=str(exc), running=len(self._workers))
                    break
        self._thread = threading.Thread(target=self._run, name="ledger-indexer-fetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            if self._workers:
                self._relay()
            else:
                n = self._start
                while n <= self._end and not self._stop.is_set():
                    fetched = self._fetch(n)
                    self._put(fetched)
                    n = fetched.range.end + 1
            self._put(_DONE)
        except BaseException as exc:  # handed to the writer thread, which re-raises it
            self._put(_Failed(exc))

    # -- process mode: a forked process fetches and decodes, this thread relays ----------------

    def _fork(self) -> _Worker:
        """Starts a fetch process: it runs :meth:`_fetch` over the blocks it is ordered to fetch and writes
        each range to a pipe.

        JSON parsing, decoding and the eventHash check then run on other cores, outside this process's
        GIL; this process only reads the frames and rebuilds the events (:mod:`wire`). The child is a fork,
        so it starts at once with everything imported. It never touches what it inherited from the
        writer (database connections, the parent's HTTP connections, the pipes of the fetch processes
        forked before it): it opens its own RPC client, freezes the inherited objects out of its garbage
        collector and leaves with ``os._exit``, so no finalizer of an inherited object runs in it. It dies
        with the writer (PR_SET_PDEATHSIG on Linux; elsewhere at its next write to the closed pipe).
        """
        frames_read, frames_write = os.pipe()
        orders_read, orders_write = os.pipe()
        _widen(frames_write)
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            for fd in (frames_read, frames_write, orders_read, orders_write):
                os.close(fd)
            raise
        if pid != 0:
            os.close(frames_write)
            os.close(orders_read)
            return _Worker(pid, frames_read, orders_write)
        code = 0  # the child, from here to os._exit
        try:
            gc.freeze()
            for fd in (frames_read, orders_write, *(f for w in self._workers for f in (w.frames, w.orders))):
                os.close(fd)
            _die_with_parent(parent)
            self._serve(orders_read, frames_write)
        except BrokenPipeError:
            pass  # the writer stopped listening
        except BaseException as exc:
            try:
                wire.send(frames_write, wire.ERROR, _pickled(exc))
            except BaseException:
                code = 1
        finally:
            os._exit(code)

    def _serve(self, orders: int, fd: int) -> None:
        """A fetch process's loop: for each order (a span of blocks), its ranges as frames, then "done"
        with the range size reached; returns when the writer closes the orders pipe."""
        self._rpc = self._rpc.fresh()
        if self._checks is not None:
            self._checks = self._checks.fresh()
        self._interrupt = None
        clients = threading.local()

        def span(first: int, last: int) -> list[Fetched]:
            """Blocks first..last on this thread's own connection: one range, more if the node refused it."""
            rpc = getattr(clients, "rpc", None)
            if rpc is None:
                rpc = clients.rpc = self._rpc.fresh()
            out: list[Fetched] = []
            n = first
            while n <= last:
                out.append(self._fetch(n, last, rows=True, rpc=rpc))
                n = out[-1].range.end + 1
            return out

        # the order's blocks are cut into spans of the sizer's current size, fetched FETCH_THREADS at a time and
        # sent in block order (the sizer, shared by the threads, only steers the size of spans not yet cut)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="fetch")
        try:
            while (order := _read_order(orders)) is not None:
                start, end, size = order
                self._sizer.size = size
                cursor = start
                pending: collections.deque[concurrent.futures.Future[list[Fetched]]] = collections.deque()
                while cursor <= end or pending:
                    while cursor <= end and len(pending) < FETCH_THREADS:
                        last = min(end, cursor + self._sizer.size - 1)
                        pending.append(pool.submit(span, cursor, last))
                        cursor = last + 1
                    for fetched in pending.popleft().result():
                        wire.send(
                            fd,
                            wire.RANGE,
                            wire.dumps(
                                (
                                    fetched.range.start,
                                    fetched.range.end,
                                    wire.encode_header(fetched.first),
                                    wire.encode_header(fetched.last),
                                    [wire.encode_header(h) for h in fetched.window],
                                    cast(EventRows, fetched.events).rows,
                                    self._sizer.size,
                                    [_fault_tuple(f) for f in fetched.faults],
                                )
                            ),
                        )
                wire.send(fd, wire.DONE, wire.dumps(self._sizer.size))
        finally:  # a failure leaves at once: the process ends (os._exit) with the other span's thread
            pool.shutdown(wait=False, cancel_futures=True)

    def _relay(self) -> None:
        """Orders the pass's blocks from the fetch processes, chunk by chunk, and moves their frames into
        the queue in block order until the end; re-raises a process's failure where it happened.

        With one process, the pass is one chunk. With several, the pass is cut into chunks of
        :data:`CHUNK_RANGES` ranges, ordered from the processes in turn, each process holding two
        orders (the one it fetches and the next, so it never waits for one): the chunks are fetched side by
        side, and the frames of a chunk that is not the oldest wait here (at most ``depth`` of them; past
        that, its process waits on its full pipe).

        Range frames are queued as bytes and decoded by the writer's thread when it takes them: decoding
        here would hold the GIL in bursts while the writer's inserts release and retake it for every row.
        """
        workers = self._workers
        by_fd = {w.frames: w for w in workers}
        chunks: collections.deque[_Chunk] = collections.deque()
        cursor = self._start
        waiting = 0  # frames of chunks that are not the oldest

        def order(worker: _Worker) -> None:
            nonlocal cursor
            span = self._end - cursor + 1 if len(workers) == 1 else CHUNK_RANGES * max(1, self._size_hint)
            chunk = _Chunk(cursor, min(self._end, cursor + span - 1), worker)
            os.write(worker.orders, _ORDER.pack(chunk.start, chunk.end, self._size_hint))
            worker.chunks.append(chunk)
            chunks.append(chunk)
            cursor = chunk.end + 1

        def fill() -> None:
            for held in (0, 1):
                for worker in workers:
                    if cursor <= self._end and not worker.failed and len(worker.chunks) <= held:
                        order(worker)

        fill()
        while chunks:
            head = chunks[0]
            while head.frames:
                self._put(_Encoded(head.frames.popleft()))
                if self._stop.is_set():
                    return
            if head.error is not None:
                raise head.error
            if head.done:
                chunks.popleft()
                if chunks:
                    waiting -= len(chunks[0].frames)
                fill()
                continue
            listening = [
                w.frames for w in workers if w.chunks and not w.failed and (w is head.worker or waiting < self._depth)
            ]
            ready, _, _ = select.select(listening, [], [], 0.1)
            for fd in ready:
                if self._stop.is_set():
                    return
                worker = by_fd[fd]
                frame = wire.receive(fd, self._stop)
                if frame is None:
                    if self._stop.is_set():
                        return
                    raise RpcRetryableError(f"the fetch process ended unexpectedly ({self._reap(worker)})")
                kind, payload = frame
                chunk = worker.chunks[0]
                if kind == wire.RANGE:
                    chunk.frames.append(payload)
                    waiting += chunk is not head
                elif kind == wire.DONE:
                    chunk.done = True
                    worker.chunks.popleft()
                    self._size_hint = int(wire.loads(payload))
                elif kind == wire.ERROR:  # raised when the chunks before it are handed out; the process ends
                    chunk.error = _unpickled(payload)
                    worker.failed = True
                else:
                    raise wire.WireError(f"unknown frame kind {kind!r}")
        for worker in workers:  # every block is handed out: the processes may go
            _close_orders(worker)

    def _decoded(self, item: _Encoded) -> Fetched:
        start, end, first, last, window, events, size, faults = wire.loads(item.payload)
        self._sizer.size = size
        return Fetched(
            BlockRange(start, end),
            wire.decode_header(first),
            wire.decode_header(last),
            [wire.decode_header(h) for h in window],
            EventRows(events),
            tuple(NodeFault(*f) for f in faults),
        )

    def _reap(self, worker: _Worker) -> str:
        """Waits for a fetch process and closes its pipes; how it ended."""
        if worker.reaped:
            return "already reaped"
        worker.reaped = True
        os.close(worker.frames)
        _close_orders(worker)
        try:
            _, status = os.waitpid(worker.pid, 0)
        except ChildProcessError:
            return "already reaped"
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exit status {os.WEXITSTATUS(status)}"

    def _fetch(
        self, start: int, limit: int | None = None, *, rows: bool = False, rpc: RpcClient | None = None
    ) -> Fetched:
        """The range from ``start`` of the sizer's size, up to ``limit`` (default: the pass's end).

        ``rows``: the events are left in their row form (:meth:`Decoder.decode_rows`), for a fetch process
        to send as they are: the Fetched holds them as :class:`~ledger_service.core.rows.EventRows`. ``rpc``:
        the client to ask (a fetch thread's own connection); by default this Prefetcher's.
        """
        rpc = self._rpc if rpc is None else rpc
        checks = self._checks
        failures = 0
        while True:
            end = min(self._end if limit is None else limit, start + self._sizer.size - 1)
            low = max(start, self._window_from if self._keep is None else min(self._window_from, end - self._keep))
            if checks is not None and checks.headers_needed:  # every block's logsBloom / receiptsRoot
                wanted = list(range(start, end + 1))
            else:
                wanted = sorted({start, end, *range(low, end + 1)})
            try:
                blocks = rpc.blocks(wanted)
                headers = {number: header_from_json(block) for number, block in blocks.items()}
                events, logs, nbytes = self._logs(rpc, start, end, rows=rows)
            except BlockOutOfRange as exc:  # the chain shrank since the head was read: read it again
                raise ChainMovedError(f"the node no longer has blocks {start}..{end} ({exc})") from None
            except MalformedLogError as exc:  # a garbled answer: ask again, a few times
                failures += 1
                if failures >= self._shrink_attempts:
                    raise
                log.warning("malformed_logs", start=start, end=end, error=str(exc))
                time.sleep(rpc.retry.delay(failures))
                continue
            except (RangeTooLarge, RpcTimeoutError) as exc:
                failures += 1
                if end == start and failures >= self._shrink_attempts:
                    raise RpcRetryableError(f"eth_getLogs for block {start} alone keeps failing: {exc}") from None
                if end > start:
                    self._sizer.shrink(refused=end - start + 1)
                    log.info("range_shrunk", start=start, blocks=end - start + 1, size=self._sizer.size, why=str(exc))
                else:
                    time.sleep(rpc.retry.delay(failures))
                continue
            missing = [b for b in wanted if b not in headers]
            if missing:
                raise ChainMovedError(f"the node no longer has block {missing[0]}")
            window = [headers[b] for b in wanted if b >= low]
            for older, newer in itertools.pairwise(window):
                if newer.parent_hash != older.hash:
                    raise ChainMovedError(f"blocks {older.number} and {newer.number} do not link (the chain moved)")
            _check_forks(events, headers)
            self._sizer.observe(blocks=end - start + 1, logs=logs, nbytes=nbytes)
            faults: list[NodeFault] = []
            if checks is not None:

                def refetch(
                    source: RpcClient, first: int = start, last: int = end, known: dict[int, BlockHeader] = headers
                ) -> Sequence[DecodedEvent]:
                    again = self._logs(source, first, last, rows=rows)[0]
                    _check_forks(again, known)  # a second node on another fork: the chain moved
                    return again

                events, faults = completeness.check_range(
                    checks, rpc=rpc, start=start, end=end, blocks=blocks, events=events, refetch=refetch
                )
            return Fetched(BlockRange(start, end), headers[start], headers[end], window, events, tuple(faults))

    def _logs(self, rpc: RpcClient, start: int, end: int, *, rows: bool) -> tuple[Sequence[DecodedEvent], int, int]:
        """The decoded logs of blocks ``start``..``end``: (events, logs in the answer, answer bytes).

        ``rows``: a canonical answer is read from its bytes, with no dict built per log (Decoder.scan_response)."""
        scan = self._decoder.scan_response if rows else None
        got, nbytes = rpc.get_logs(addresses=self._addresses, from_block=start, to_block=end, scan=scan)
        if isinstance(got, ScannedRows):
            return EventRows(got.rows), got.logs, nbytes
        events = EventRows(self._decoder.decode_rows(got)) if rows else self._decoder.decode(got)
        return events, len(got), nbytes

    def _next(self, *, wait: bool, joining: bool = False) -> Fetched | None:
        """The next fetched range; None at the end or, without ``wait``, when none is ready yet.

        ``joining``: a batch is being joined, so a failure is held (raised by the next call) and None
        returned, for the ranges already joined to be applied first."""
        if self._held:  # a range __iter__ could not join (decoded already), or a failure
            item = self._held.pop()
            if isinstance(item, _Failed):
                raise item.error
            return item  # type: ignore[no-any-return]
        while not self._ended:
            try:
                item = self._queue.get(timeout=0.1) if wait else self._queue.get_nowait()
            except queue.Empty:
                if not wait:
                    return None
                drained = not self._thread.is_alive() and self._queue.empty()
                interrupted = self._interrupt is not None and self._interrupt.is_set()
                self._ended = drained or interrupted
                continue
            if item is _DONE:
                self._ended = True
            elif isinstance(item, _Failed):
                if joining:  # what is already joined is applied first; the failure comes next
                    self._held.append(item)
                    return None
                raise item.error
            else:
                return self._decoded(item) if isinstance(item, _Encoded) else item
        return None

    def __iter__(self) -> Iterator[Fetched]:
        """The fetched ranges in order; ranges already waiting are joined into one, up to ``max_events``.

        Only ranges that follow each other and link (the next range's first block's parent is the last
        block of the one before) are joined, so the writer's parent-hash check of a joined range is the
        check of its first part. A writer that keeps up gets each range on its own (no added latency); one
        that falls behind (a backfill) commits fewer, larger transactions: SQLite and PostgreSQL then
        write each touched index page and state row once per transaction instead of once per range.

        In a pass of the fetch process (a backfill, or a follow far behind), a batch also waits for the
        next ranges until it holds ``min_events`` (or reaches the pass's last range): the writer would
        otherwise take the ranges as they trickle in, one or two at a time, and pay those per-transaction
        writes for each (at 1M events: 142 transactions instead of 46, and ~20% more time on both
        databases).
        """
        while True:
            first = self._next(wait=True)
            if first is None:
                return
            parts = [first]
            events = len(first.events)
            while events < self._max_events:
                wait = events < self._min_events and parts[-1].range.end < self._end
                following = self._next(wait=wait, joining=True)
                if following is None:
                    break
                last = parts[-1]
                if following.range.start != last.range.end + 1 or following.first.parent_hash != last.last.hash:
                    self._held.append(following)
                    break
                parts.append(following)
                events += len(following.events)
            yield first if len(parts) == 1 else _joined(parts)

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for worker in self._workers:  # the relay thread then sees the pipes close
            if not worker.reaped:  # (the relay thread may have reaped one that died by itself)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
        # A fetch thread stuck in a slow call is left to finish on its own (daemon; its results are dropped).
        self._thread.join(timeout=2)
        if not self._thread.is_alive():  # never close a pipe a thread still reads
            for worker in self._workers:
                self._reap(worker)


# ---- the indexer ----------------------------------------------------------------


class Indexer:
    """Keeps a store in step with the chain for one pinned deployment."""

    def __init__(
        self,
        *,
        store: Store,
        rpc: RpcClient,
        decoder: Decoder,
        pin: ChainPin,
        finality_depth: int,
        sizer: RangeSizer | None = None,
        prefetch_depth: int = 4,
        max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
        min_batch_events: int = DEFAULT_MIN_BATCH_EVENTS,
        fetch_process_min_blocks: int | None = None,
        fetch_processes: int = 1,
        checks: Checks | None = None,
        reconcile: bool = False,
        reconcile_window: int | None = None,
    ) -> None:
        if finality_depth < 1:
            raise ValueError("finality_depth must be at least 1")
        self.store = store
        self.rpc = rpc
        self.decoder = decoder
        self.pin = pin
        self.finality_depth = finality_depth
        self.sizer = sizer or RangeSizer()
        self.prefetch_depth = prefetch_depth
        self.max_batch_events = max_batch_events
        """Ranges already fetched are applied together up to this many events (one transaction)."""
        self.min_batch_events = min_batch_events
        """In a pass of the fetch process, a transaction waits for ranges until it holds this many events."""
        self.fetch_process_min_blocks = fetch_process_min_blocks
        """A pass over at least this many blocks fetches and decodes in forked processes (None: never)."""
        self.fetch_processes = fetch_processes
        """How many fetch processes such a pass forks (they fetch alternate chunks of the pass)."""
        self._addresses = pin_addresses(pin)
        self.checks = checks
        """The bloom check and receipts proof of each fetched range, and the node asked again (see
        :mod:`completeness`); None: none."""
        self.reconcile = reconcile
        """Each batch's items are compared with the contract's itemOf before the batch is written."""
        self.reconcile_window = reconcile_window
        """Only batches ending at most this many blocks below the pass's head are reconciled (None: every one):
        a full node keeps the state of recent blocks only, and asking for older ones costs the node work that
        a pruned node refuses anyway."""
        self._pass_head = 0
        self._too_old = 0
        """Batches left unreconciled because they ended below the reconcile window."""
        self._gaps_checked = False
        self._reconcile_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._unreconciled = 0
        """Batches the node could not reconcile (no state at their block)."""
        self._checked = False
        self.where = "the index"
        """How messages name the store (e.g. its URL without password)."""

    def check(self, *, where: str | None = None) -> None:
        """Verifies the node and the store against the pin (pins an empty store). Idempotent."""
        if where is not None:
            self.where = where
        check_node(self.rpc, self.pin)
        if self.checks is not None and self.checks.fallback is not None:  # its answers replace the first node's
            check_node(self.checks.fallback, self.pin)
        check_store(self.store, self.pin, where=self.where)
        self._restore_headers()
        self._checked = True

    # -- one pass ---------------------------------------------------------------

    def sync(self, *, target: int | None = None, stop: threading.Event | None = None) -> Iterator[SyncUpdate]:
        """Indexes up to ``target`` (default: the node's head when each pass starts).

        Returns when the checkpoint reached the target or the head, when the node is
        behind the checkpoint (wait and call again), or when ``stop`` is set.
        """
        if not self._checked:
            self.check()
        if not self._gaps_checked:
            self._refetch_gaps()
        moved = 0
        while stop is None or not stop.is_set():
            head = self.rpc.latest()
            checkpoint = self.store.checkpoint()
            if checkpoint is not None and head.number <= checkpoint.number:
                if not self._head_diverged(head, checkpoint):
                    _observe_position(head=head, checkpoint=checkpoint.number, checkpoint_time=None)
                    return  # caught up, or the node is briefly behind us: wait
                try:
                    yield from self._reorg()
                except ChainMovedError as exc:
                    log.warning("chain_moved", reason=str(exc))
                    return  # nothing was undone: look again later
                if self.store.checkpoint() == checkpoint:
                    return  # the node answered inconsistently and nothing was undone: look again later
                continue
            end = head.number if target is None else min(target, head.number)
            start = self.pin.deploy_block if checkpoint is None else checkpoint.number + 1
            if start > end:
                return
            outcome = yield from self._run_ranges(start=start, end=end, head=head, checkpoint=checkpoint, stop=stop)
            if outcome == "done":
                return
            if outcome == "moved":
                moved += 1
                if moved >= 10:
                    raise RpcRetryableError("the chain kept changing while ranges were fetched (10 times in a row)")
                time.sleep(self.rpc.retry.delay(moved))

    def _head_diverged(self, head: BlockHeader, checkpoint: BlockRef) -> bool:
        """Whether a head at or below the checkpoint shows a different chain than the one indexed."""
        if head.number == checkpoint.number:
            return head.hash != checkpoint.hash.lower()
        stored = self.store.stored_blocks(from_block=head.number, to_block=head.number).get(head.number)
        if stored is not None and stored.hash.lower() != head.hash:
            return True
        if stored is None:  # nothing to compare with: a node reset to (or replaced by) another chain looks behind
            self._check_same_chain()
        log.info("node_behind", head=head.number, checkpoint=checkpoint.number)
        return False

    def _check_same_chain(self) -> None:
        """Stops on a node that now serves another chain than the pinned one (replaced, reset, misrouted)."""
        chain_id, genesis_hash = node_chain(self.rpc)
        if chain_id == self.pin.chain_id and genesis_hash == self.pin.genesis_hash.lower():
            return
        checkpoint = self.store.checkpoint()
        at = "empty" if checkpoint is None else f"at checkpoint {checkpoint.number}"
        raise FatalError(
            f"the node at {self.rpc.url} is now on another chain: it serves chain {chain_id} (genesis "
            f"{genesis_hash}), but {self.where} follows chain {self.pin.chain_id} (genesis {self.pin.genesis_hash}); "
            f"was the node replaced or reset? The index is left as it was ({at}). Point LEDGER_RPC_URL at a node "
            "of the indexed chain, or index the new chain into an empty database."
        )

    def _run_ranges(
        self,
        *,
        start: int,
        end: int,
        head: BlockHeader,
        checkpoint: BlockRef | None,
        stop: threading.Event | None,
    ) -> Generator[SyncUpdate, None, str]:
        """Fetches and applies [start, end]; returns "done", "reorged" (rolled back) or "moved" (fetch again).

        Each applied batch keeps the headers of the ``finality_depth`` blocks below its last one (fetched with
        its ranges, or stored before) and prunes older ones: against the checkpoint, not the head, so that
        a chain that later shrinks below this head still finds them."""
        prune_below = head.number - self.finality_depth
        self._pass_head = head.number
        fetcher = Prefetcher(
            rpc=self.rpc,
            decoder=self.decoder,
            addresses=self._addresses,
            start=start,
            end=end,
            window_from=max(start, prune_below),
            sizer=self.sizer,
            keep=self.finality_depth,
            depth=self.prefetch_depth,
            max_events=self.max_batch_events,
            min_events=self.min_batch_events,
            process=self.fetch_process_min_blocks is not None and end - start + 1 >= self.fetch_process_min_blocks,
            processes=self.fetch_processes,
            interrupt=stop,
            checks=self.checks,
        )
        previous = None if checkpoint is None else checkpoint.hash.lower()
        try:
            for fetched in fetcher:
                if previous is not None and fetched.first.parent_hash != previous:
                    log.warning(
                        "parent_mismatch",
                        block=fetched.first.number,
                        parent=fetched.first.parent_hash,
                        checkpoint=previous,
                    )
                    fetcher.close()
                    checkpoint_now = self.store.checkpoint()
                    yield from self._reorg()
                    # nothing undone: the node answered inconsistently (a lagging replica); fetch again
                    return "reorged" if self.store.checkpoint() != checkpoint_now else "moved"
                fetched = self._apply_complete(fetched, window_from=max(start, prune_below))
                previous = fetched.last.hash
                _observe_position(head=head, checkpoint=fetched.last.number, checkpoint_time=fetched.last.timestamp)
                yield NewBlocks(range=fetched.range, events=len(fetched.events), head=head.number)
                if stop is not None and stop.is_set():
                    break
        except ChainMovedError as exc:
            log.warning("chain_moved", reason=str(exc))
            return "moved"
        except completeness.BlockGoneError as exc:
            log.warning("chain_moved", reason=str(exc))
            return "moved"
        except IncompleteLogsError as exc:
            self.store.record_node_faults(exc.faults)
            _count_faults(exc.faults)
            raise
        finally:
            fetcher.close()
        return "done"

    # -- completeness ---------------------------------------------------------------

    def _apply_complete(self, fetched: Fetched, *, window_from: int) -> Fetched:
        """Writes a fetched batch once it is complete: its items agree with the contract's itemOf (when
        ``reconcile``) and no item's hash chain breaks. Otherwise the batch's blocks are fetched again (from the
        second RPC URL when one is configured) and that answer is checked the same way; a problem that stays
        stops the indexer (IncompleteLogsError, naming the blocks and the item) with nothing of them written.
        Every problem is logged and recorded in node_faults. Returns what was written."""
        faults = list(fetched.faults)
        attempt = fetched
        problems: list[NodeFault] = []
        for again in (False, True):
            if again:
                attempt = self._refetch(fetched, window_from=window_from)
                faults.extend(attempt.faults)
            problems = []
            # the contract is asked while the batch is written (the node's time overlaps the database's); the
            # transaction commits only once the answers agree
            reconciled = self._reconciler().submit(self._problems, attempt)

            def agreed(reconciled: concurrent.futures.Future[list[NodeFault]] = reconciled) -> None:
                if reconciled.result():
                    raise _Disagreed

            keep_from = attempt.last.number - self.finality_depth
            try:
                stats = self.store.apply(
                    events=attempt.events,
                    # a joined batch holds each range's window: only the last ones outlive the prune
                    headers=[header for header in attempt.window if header.number >= keep_from],
                    checkpoint=BlockRef(number=attempt.last.number, hash=attempt.last.hash),
                    prune_below=keep_from,
                    refuse_breaks=True,
                    before_commit=agreed,
                )
            except _Disagreed:
                problems = reconciled.result()
            except ChainBreakError as exc:
                problems = [
                    completeness.fault(
                        "chain_break",
                        start=attempt.range.start,
                        end=attempt.range.end,
                        item_id=b.item_id,
                        detail=f"event #{b.seq} in block {b.block_number}: {b.reason}",
                        repaired=False,
                    )
                    for b in exc.breaks
                ]
            if not problems:
                _count_events(attempt.events)
                if stats.problems:
                    INDEXER_CHAIN_PROBLEMS.labels("chain_break_recorded").inc(stats.problems)
                repaired = [replace(p, repaired=True) for p in faults if not p.repaired and p.kind != "bloom"]
                if repaired:
                    log.warning(
                        "node_fault_repaired",
                        blocks=f"{attempt.range.start}..{attempt.range.end}",
                        faults=len(repaired),
                        source=completeness.describe_source(self.checks),
                    )
                kept = [p for p in faults if p.repaired or p.kind == "bloom"]
                self.store.record_node_faults(kept + repaired)
                _count_faults(kept + repaired)
                return attempt
            faults.extend(problems)
        self.store.record_node_faults(faults)
        _count_faults(faults)
        first = problems[0]
        raise IncompleteLogsError(
            f"incomplete logs: blocks {fetched.range.start}..{fetched.range.end}, item {first.item_id}: "
            f"{first.detail}; the answers were asked for twice ({completeness.describe_source(self.checks)}) and "
            f"stayed incomplete, so nothing of these blocks was indexed (the index stays at its checkpoint, "
            "without a hole). Point LEDGER_RPC_URL / LEDGER_RPC_URLS at a node that answers completely and run again."
        )

    def _refetch_gaps(self) -> None:
        """Rolls an index that holds seq gaps (an item event missing before a stored one: written before the
        indexer refused breaks) back to before the first, so that the blocks are fetched again and checked like
        any other; a node that still leaves the events out then stops the indexer instead."""
        self._gaps_checked = True
        gaps = self.store.gaps()
        checkpoint = self.store.checkpoint()
        if not gaps or checkpoint is None:
            return
        item_id, block = gaps[0]
        block = max(block, self.pin.deploy_block - 1)
        stored = self.store.stored_blocks(from_block=block, to_block=block).get(block)
        header = stored if stored is not None else self.rpc.header(block)
        if header is None:
            raise RpcRetryableError(f"the node has no block {block}; the index's gaps are fetched again later")
        log.warning(
            "refetching_gaps",
            gaps=len(gaps),
            first_item=item_id,
            rollback_to=block,
            checkpoint=checkpoint.number,
            why="the index holds item events stored after a missing one; their blocks are fetched again",
        )
        self.store.rollback_to(BlockRef(number=block, hash=header.hash.lower()))

    def _reconciler(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._reconcile_pool is None:
            self._reconcile_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-reconcile")
        return self._reconcile_pool

    def _problems(self, fetched: Fetched) -> list[NodeFault]:
        """The items of a fetched batch whose count, head or merchant differ from the contract's (``reconcile``)."""
        if not self.reconcile:
            return []
        if self.reconcile_window is not None and fetched.last.number < self._pass_head - self.reconcile_window:
            self._too_old += 1
            if self._too_old == 1:  # once per run: a backfill's batches are mostly far below the head
                log.info(
                    "reconcile_skipped",
                    blocks=f"{fetched.range.start}..{fetched.range.end}",
                    head=self._pass_head,
                    window=self.reconcile_window,
                    why="batches ending more than the reconcile window below the head are written with the bloom "
                    "and hash-chain checks only (and the receipts proof when it is on)",
                )
            return []
        expected = completeness.expected_items(fetched.events)
        if not expected:
            return []
        mismatches = completeness.reconcile(
            self.rpc,
            ledger=self.pin.ledger_address,
            block_hash=fetched.last.hash,
            block_number=fetched.last.number,
            expected=expected,
        )
        if mismatches is None:
            self._unreconciled += 1
            # once per run, then counted: a pruned node has no state for most of a backfill's blocks
            emit = log.warning if self._unreconciled == 1 else log.debug
            emit(
                "reconcile_unavailable",
                blocks=f"{fetched.range.start}..{fetched.range.end}",
                batches=self._unreconciled,
                why="the node has no state at the batch's last block (a pruned node) or did not answer itemOf; "
                "the batch is written with the bloom and hash-chain checks only",
            )
        return [
            completeness.fault(
                "reconcile",
                start=fetched.range.start,
                end=fetched.range.end,
                item_id=m.item_id,
                detail=m.detail,
                repaired=False,
            )
            for m in mismatches or ()
        ]

    def _refetch(self, fetched: Fetched, *, window_from: int) -> Fetched:
        """The blocks of ``fetched`` fetched again, from the second RPC URL when one is configured; ChainMovedError
        when they are no longer the same blocks."""
        source = self.rpc if self.checks is None else self.checks.source(self.rpc)
        fetcher = Prefetcher(
            rpc=source,
            decoder=self.decoder,
            addresses=self._addresses,
            start=fetched.range.start,
            end=fetched.range.end,
            window_from=window_from,
            keep=self.finality_depth,
            sizer=RangeSizer(size=len(fetched.range), target_logs=self.sizer.target_logs),
            depth=1,
            max_events=1 << 62,
            checks=self.checks,
        )
        try:
            parts = list(fetcher)
        finally:
            fetcher.close()
        again = parts[0] if len(parts) == 1 else _joined(parts)
        if (again.first.hash, again.last.hash) != (fetched.first.hash, fetched.last.hash):
            raise ChainMovedError(f"blocks {fetched.range.start}..{fetched.range.end} changed while re-fetched")
        return again

    # -- reorgs -------------------------------------------------------------------

    def _reorg(self) -> Iterator[SyncUpdate]:
        """Walks back to the common ancestor of the index and the node, rolls back to it (and stores the headers
        of the ``finality_depth`` blocks below it that the index lacks)."""
        checkpoint = self.store.checkpoint()
        if checkpoint is None:
            return
        self._check_same_chain()  # another genesis is not a reorg, however deep it looks
        lowest = max(self.pin.deploy_block, checkpoint.number - self.finality_depth - 64)
        candidates = {
            number: header.hash.lower()
            for number, header in self.store.stored_blocks(from_block=lowest, to_block=checkpoint.number).items()
        }
        candidates[checkpoint.number] = checkpoint.hash.lower()
        numbers = sorted(candidates, reverse=True)
        node = self.rpc.headers(numbers)
        head = self.rpc.latest()
        ancestor: BlockRef | None = None
        for number in numbers:
            header = node.get(number)
            if header is not None and header.hash == candidates[number]:
                ancestor = BlockRef(number=number, hash=header.hash)
                break
        if ancestor is None and any(n not in node for n in numbers if n <= head.number):
            raise RpcRetryableError("the node is missing blocks it reported; looking for the common ancestor later")
        # Deeper than finality: none of the blocks kept (the finality depth below the checkpoint) is still on
        # the chain, or more than finality_depth indexed blocks were replaced.
        if ancestor is None or checkpoint.number - ancestor.number > self.finality_depth:
            at = numbers[-1] if ancestor is None else ancestor.number + 1
            raise FatalError(
                f"reorg deeper than finality {self.finality_depth} at block {at}: no indexed block within finality "
                f"matches the node (checkpoint {checkpoint.number}, node head {head.number}); the index is left "
                "as it was, consistent up to its checkpoint. Rebuild it from an empty database if this chain is "
                "now canonical."
            )
        depth = checkpoint.number - ancestor.number
        if depth == 0:
            log.info("reorg_reverted", checkpoint=checkpoint.number)  # the node went back to the indexed chain
            return
        below = self._ancestry(ancestor, known={n: h for n, h in node.items() if n <= ancestor.number})
        if below[0].number > max(self.pin.deploy_block, ancestor.number - self.finality_depth):
            raise ChainMovedError(f"the node's blocks below block {ancestor.number} do not link (the chain moved)")
        self.store.rollback_to(ancestor, headers=below)
        INDEXER_REORGS.inc()
        INDEXER_REORG_DEPTH.observe(depth)
        log.warning("reorg", common_ancestor=ancestor.number, depth=depth, checkpoint=checkpoint.number)
        yield Reorg(common_ancestor=ancestor, depth=depth)

    def _ancestry(self, ref: BlockRef, *, known: dict[int, BlockHeader]) -> list[BlockHeader]:
        """The headers of ``ref`` and of the ``finality_depth`` blocks below it (not below the deploy block), each
        the parent of the next, lowest first: from ``known``, the rest from the node. The run stops short where
        a header is missing or does not link (the node is on another branch there, or moved meanwhile)."""
        low = max(self.pin.deploy_block, ref.number - self.finality_depth)
        missing = [n for n in range(low, ref.number + 1) if n not in known]
        headers = {**known, **(self.rpc.headers(missing) if missing else {})}
        run: list[BlockHeader] = []
        expected = ref.hash.lower()
        for number in range(ref.number, low - 1, -1):
            header = headers.get(number)
            if header is None or header.hash.lower() != expected:
                break
            run.append(header)
            expected = header.parent_hash.lower()
        run.reverse()
        return run

    def _restore_headers(self) -> None:
        """Stores the headers within ``finality_depth`` below the checkpoint that the index lacks (an index
        written by a version that pruned them against a higher head than the chain kept), from the node, checked
        to be the checkpoint's ancestry; those the node cannot vouch for are left to the reorg check."""
        checkpoint = self.store.checkpoint()
        if checkpoint is None:
            return
        low = max(self.pin.deploy_block, checkpoint.number - self.finality_depth)
        stored = self.store.stored_blocks(from_block=low, to_block=checkpoint.number)
        if len(stored) == checkpoint.number - low + 1:
            return
        run = self._ancestry(checkpoint, known=stored)
        restored = [header for header in run if header.number not in stored]
        if restored:
            self.store.restore_headers(restored, checkpoint=checkpoint)
            log.info(
                "headers_restored", first=restored[0].number, last=restored[-1].number, checkpoint=checkpoint.number
            )
        if not run or run[0].number > low:
            log.warning(
                "headers_missing",
                below=run[0].number if run else checkpoint.number,
                checkpoint=checkpoint.number,
                why="the node does not have them, or is on another branch there; the next pass checks for a reorg",
            )

    # -- follow -------------------------------------------------------------------

    def follow(
        self,
        *,
        stop: threading.Event,
        poll_interval: float = 0.2,
        max_backoff: float = 10.0,
        node_probe_s: float = 1.0,
        heartbeat: Callable[[], None] | None = None,
    ) -> Iterator[SyncUpdate]:
        """Keeps indexing new blocks until ``stop`` is set; waits out a node or a database that is away, however
        long, retrying after a backoff that doubles up to ``max_backoff``. While it waits for the node, the node
        is asked every ``node_probe_s`` whether it answers again (one call, no retries): the next pass starts as
        soon as it does, not at the end of the backoff.

        ``heartbeat`` runs before each pass (e.g. to confirm the writer lock is still held).
        """
        backoff = poll_interval
        while not stop.is_set():
            try:
                if heartbeat is not None:  # inside: a database away while it checks is waited for too
                    heartbeat()
                progressed = False
                for update in self.sync(stop=stop):
                    progressed = True
                    yield update
                backoff = poll_interval
                if not progressed:
                    stop.wait(poll_interval)
            except RetryableError as exc:  # the node or the database away, or this writer fenced
                if not isinstance(exc, WriterFencedError):  # that one is logged as "writer fenced" where refused
                    what = "database_unavailable" if isinstance(exc, StoreUnavailableError) else "rpc_unavailable"
                    log.warning(what, error=str(exc), retry_in=round(backoff, 2))
                node_away = not isinstance(exc, StoreUnavailableError | WriterFencedError)
                self._wait_out(stop, backoff, probe_every=node_probe_s if node_away else None)
                backoff = min(max_backoff, backoff * 2)

    def _wait_out(self, stop: threading.Event, seconds: float, *, probe_every: float | None) -> None:
        """Waits ``seconds``, or until ``stop``; with ``probe_every``, also until the node answers a probe."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(left if probe_every is None else min(left, probe_every)):
                return
            if probe_every is not None and self._node_answers():
                log.info("node_answers_again")
                return

    def _node_answers(self) -> bool:
        """Whether the node answers one call (an error it answers with counts: the next pass reports it)."""
        try:
            self.rpc.call_once("eth_blockNumber", [])
        except RetryableError:
            return False
        except FatalError:
            pass
        return True


def make_indexer(
    *,
    store: Store,
    rpc: RpcClient,
    deployment: Deployment,
    abis: dict[str, list[dict[str, Any]]],
    finality_depth: int,
    sizer: RangeSizer | None = None,
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
    fetch_process_min_blocks: int | None = None,
    fetch_processes: int = 1,
    bloom_check: bool = True,
    reconcile: bool = True,
    reconcile_window: int | None = None,
    receipts_proof: bool = False,
    fallback_rpc: RpcClient | None = None,
) -> Indexer:
    """An indexer for ``deployment``'s contracts, with the completeness checks asked for (see :mod:`completeness`;
    ``fallback_rpc``: the node asked again when an answer looks incomplete)."""
    pin = pin_of(deployment)
    decoder = Decoder(
        abis=abis,
        ledger_address=pin.ledger_address,
        escrow_address=pin.escrow_address,
        exchange_address=pin.exchange_address,
        batch_anchor_address=pin.batch_anchor_address,
    )
    addresses = pin_addresses(pin)
    checks = Checks(
        completeness.BloomCheck(addresses=addresses, topics=decoder.topic_names),
        bloom=bloom_check,
        proof=completeness.ReceiptsProof(addresses=addresses) if receipts_proof else None,
        fallback=fallback_rpc,
    )
    return Indexer(
        store=store,
        rpc=rpc,
        decoder=decoder,
        pin=pin,
        finality_depth=finality_depth,
        sizer=sizer,
        max_batch_events=max_batch_events,
        fetch_process_min_blocks=fetch_process_min_blocks,
        fetch_processes=fetch_processes,
        checks=checks,
        reconcile=reconcile,
        reconcile_window=reconcile_window,
    )
