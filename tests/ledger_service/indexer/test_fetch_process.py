"""Fetching in a forked process, and joining ranges that queued up into one write transaction."""

from __future__ import annotations

import fcntl
import itertools
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from ledger_service.core.events import BlockHeader, LogPosition, SellerSet
from ledger_service.core.rows import EventRows, encode_event
from ledger_service.errors import RetryableError
from ledger_service.indexer import wire
from ledger_service.indexer.decode import Decoder, ScannedRows
from ledger_service.indexer.rpc import RetryPolicy, RpcClient, RpcRetryableError
from ledger_service.indexer.sync import (
    PIPE_BYTES,
    BlockRange,
    ChainMovedError,
    Fetched,
    Prefetcher,
    RangeSizer,
    _Failed,
    pin_of,
)
from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import (
    ABIS,
    Chain,
    cli_env,
    make_indexer_for,
    reference_dump,
    run_cli,
    run_sync,
    start_cli,
)
from tests.support.faultproxy import FaultProxy

# ---- joining ranges (no node: ranges put straight into the prefetcher's queue) -------------------------


def _hash(number: int) -> str:
    return f"0x{number:064x}"


def _range(start: int, end: int, *, events: int, parent: str | None = None) -> Fetched:
    headers = [
        BlockHeader(n, _hash(n), parent if n == start and parent is not None else _hash(n - 1), n)
        for n in range(start, end + 1)
    ]
    made = [
        SellerSet(LogPosition(end, _hash(end), _hash(10_000 + i), 0, i, "0x" + "11" * 20), "0xaa", "0xbb", True)
        for i in range(events)
    ]
    return Fetched(BlockRange(start, end), headers[0], headers[-1], headers, list(made))


def _prefetcher_holding(items: list[object], *, max_events: int) -> Prefetcher:
    """A prefetcher with nothing to fetch (start > end) whose queue then holds ``items`` and the end."""
    fetcher = Prefetcher(
        rpc=None,  # type: ignore[arg-type]  # never called: there is no range to fetch
        decoder=None,  # type: ignore[arg-type]
        addresses=[],
        start=1,
        end=0,
        window_from=1,
        sizer=RangeSizer(),
        depth=len(items) + 2,
        max_events=max_events,
    )
    fetcher._thread.join(timeout=5)
    done = fetcher._queue.get_nowait()  # the end marker it put
    for item in items:
        fetcher._queue.put_nowait(item)
    fetcher._queue.put_nowait(done)
    return fetcher


def test_ranges_that_queued_up_are_applied_as_one_up_to_max_events() -> None:
    parts = [_range(1, 2, events=2), _range(3, 4, events=2), _range(5, 6, events=2)]
    joined = list(_prefetcher_holding(list(parts), max_events=100))
    assert len(joined) == 1
    one = joined[0]
    assert one.range == BlockRange(1, 6)
    assert (one.first, one.last) == (parts[0].first, parts[2].last)
    assert one.window == [h for p in parts for h in p.window]
    assert one.events == [e for p in parts for e in p.events]

    # a range is added while the batch has fewer than max_events: 2, then 4 >= 3 stops
    split = list(_prefetcher_holding(list(parts), max_events=3))
    assert [f.range for f in split] == [BlockRange(1, 4), BlockRange(5, 6)]
    assert [len(f.events) for f in split] == [4, 2]


def _in_wire_form(fetched: Fetched) -> Fetched:
    events = EventRows([encode_event(ev) for ev in fetched.events])
    return Fetched(fetched.range, fetched.first, fetched.last, fetched.window, events)


def test_ranges_from_a_fetch_process_stay_in_wire_form_when_joined() -> None:
    """A fetch process's ranges hold EventRows; joined, they are one EventRows of every tuple, in order
    (building the events there would undo the store's row path)."""
    objects = [_range(1, 2, events=2), _range(3, 4, events=3)]
    parts = [_in_wire_form(p) for p in objects]
    (one,) = _prefetcher_holding(list(parts), max_events=100)
    assert isinstance(one.events, EventRows)
    assert one.events.rows == [row for p in parts for row in cast(EventRows, p.events).rows]
    assert one.events == [e for p in objects for e in p.events]
    # mixed with event objects (not made by the indexer, but a Sequence all the same): a plain list
    (mixed,) = _prefetcher_holding([parts[0], objects[1]], max_events=100)
    assert not isinstance(mixed.events, EventRows)
    assert mixed.events == [e for p in objects for e in p.events]


def test_event_rows_read_as_the_events_they_encode() -> None:
    events = _range(1, 1, events=4).events
    rows = EventRows([encode_event(ev) for ev in events])
    assert len(rows) == 4
    assert list(rows) == events and rows == events and rows != events[:3]
    assert rows[1] == events[1] and rows[-1] == events[-1]
    assert isinstance(rows[1:3], EventRows) and list(rows[1:3]) == events[1:3]
    assert rows == EventRows(list(rows.rows))
    assert rows != "abcd" and rows != 4
    with pytest.raises(IndexError):
        rows[4]
    with pytest.raises(TypeError):
        hash(rows)


def test_a_range_that_does_not_link_is_not_joined() -> None:
    """The writer compares each batch's first parent with its checkpoint: a range from another fork must
    reach it as a batch of its own, so that comparison sees it."""
    forked = _range(3, 4, events=1, parent="0x" + "ee" * 32)
    got = list(_prefetcher_holding([_range(1, 2, events=1), forked, _range(5, 6, events=1)], max_events=100))
    assert [f.range for f in got] == [BlockRange(1, 2), BlockRange(3, 6)]
    assert got[1].first is forked.first


def test_ranges_ready_before_a_failure_are_applied_before_it_is_raised() -> None:
    fetcher = _prefetcher_holding(
        [_range(1, 2, events=1), _range(3, 4, events=1), _Failed(ChainMovedError("moved"))], max_events=100
    )
    batches = iter(fetcher)
    assert next(batches).range == BlockRange(1, 4)
    with pytest.raises(ChainMovedError, match="moved"):
        next(batches)


def test_a_batch_waiting_for_min_events_still_applies_ready_ranges_before_a_failure() -> None:
    fetcher = _prefetcher_holding(
        [_range(1, 2, events=1), _range(3, 4, events=1), _Failed(ChainMovedError("moved"))], max_events=100
    )
    fetcher._min_events = 50  # (a process prefetcher's): the batch waits for ranges instead of taking what is ready
    batches = iter(fetcher)
    assert next(batches).range == BlockRange(1, 4)
    with pytest.raises(ChainMovedError, match="moved"):
        next(batches)


def test_frames_cross_a_pipe_and_a_frame_cut_short_is_a_retryable_error() -> None:
    stop = threading.Event()
    read_fd, write_fd = os.pipe()
    try:
        wire.send(write_fd, wire.RANGE, wire.dumps((1, "0xab", [True, None])))
        wire.send(write_fd, wire.DONE)
        os.write(write_fd, (100).to_bytes(8, "little") + wire.RANGE + b"only part")  # then the writer dies
        os.close(write_fd)
        kind, payload = wire.receive(read_fd, stop) or (b"", b"")
        assert (kind, wire.loads(payload)) == (wire.RANGE, (1, "0xab", [True, None]))
        assert wire.receive(read_fd, stop) == (wire.DONE, b"")
        with pytest.raises(wire.WireError, match="9 bytes into a 100-byte read") as cut:
            wire.receive(read_fd, stop)
        assert isinstance(cut.value, RetryableError)
        assert wire.receive(read_fd, stop) is None  # closed between frames: the end, not an error
    finally:
        os.close(read_fd)


# ---- the fetch process on a real node ---------------------------------------------------------------


def _prefetcher_args(chain: Chain, url: str, *, timeout: float = 30.0) -> dict[str, Any]:
    pin = pin_of(chain.deployment)
    return {
        "rpc": RpcClient(url, timeout=timeout, retry=RetryPolicy(attempts=3, base_delay=0.01)),
        "decoder": Decoder(abis=ABIS, ledger_address=pin.ledger_address, escrow_address=pin.escrow_address),
        "addresses": [pin.ledger_address, pin.escrow_address],
        "start": pin.deploy_block,
        "end": chain.head,
        "window_from": chain.head - 5,
        "sizer": RangeSizer(size=1, max_size=2, target_logs=100),
        "process": True,
    }


def _process_prefetcher(
    chain: Chain,
    url: str,
    *,
    timeout: float = 30.0,
    max_events: int = 0,
    min_events: int = 0,
    sizer: RangeSizer | None = None,
    processes: int = 1,
) -> Prefetcher:
    return Prefetcher(
        **{
            **_prefetcher_args(chain, url, timeout=timeout),
            "sizer": sizer or RangeSizer(size=4, target_logs=100),
            "max_events": max_events,
            "min_events": min_events,
            "processes": processes,
        }
    )


def _every_range(fetcher: Prefetcher, chain: Chain) -> list[Fetched]:
    """What ``fetcher`` hands out, closed after; checks it covers the chain, range after range."""
    try:
        got = list(fetcher)
    finally:
        fetcher.close()
    assert got[0].range.start == chain.deployment.deploy_block and got[-1].range.end == chain.head
    assert all(b.range.start == a.range.end + 1 for a, b in itertools.pairwise(got))
    return got


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_backfill_fetched_in_a_process_equals_a_fresh_reindex(chain: Chain, store_url: str) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=2000, items=8)
    chain.activity.lifecycle()
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store, target_logs=150, initial_blocks=2, fetch_process_min_blocks=1)
        run_sync(indexer)
        indexer.rpc.close()
        assert store.dump() == reference_dump(chain)  # the reference fetches in a thread
    finally:
        store.close()


@pytest.mark.parametrize("processes", [1, 3])
def test_the_processes_hand_over_every_range_in_order_and_are_reaped(chain: Chain, processes: int) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=600, items=4, batch=20)  # 20 events a block: ~30 ranges of 1-2 blocks
    thread = Prefetcher(**{**_prefetcher_args(chain, chain.node.url), "process": False})
    expected = [e for f in _every_range(thread, chain) for e in f.events]
    fetcher = _process_prefetcher(chain, chain.node.url, processes=processes)
    assert len(fetcher._workers) == processes
    pids = [w.pid for w in fetcher._workers]
    if hasattr(fcntl, "F_GETPIPE_SZ"):  # Linux: a range's frame crosses in a few reads, not dozens
        assert all(fcntl.fcntl(w.frames, fcntl.F_GETPIPE_SZ) == PIPE_BYTES for w in fetcher._workers)
    got = _every_range(fetcher, chain)
    events = [e for f in got for e in f.events]
    assert len(events) > 600
    assert events == expected  # the same events as fetched on a thread, in block order
    assert all(_gone(pid) for pid in pids)


def test_the_processs_batches_wait_for_min_events(chain: Chain) -> None:
    """Ranges arrive one by one; each batch but the last waits until it holds min_events (the writer
    would otherwise commit whatever trickled in), and none takes a range once it holds max_events."""
    chain.activity.lifecycle()
    chain.activity.bulk(events=1500, items=6, batch=50)  # 50 events a block
    one_block = RangeSizer(size=1, max_size=1)
    fetcher = _process_prefetcher(chain, chain.node.url, max_events=600, min_events=400, sizer=one_block)
    got = _every_range(fetcher, chain)
    sizes = [len(f.events) for f in got]
    assert sum(sizes) > 1500 and len(sizes) >= 3
    assert all(size >= 400 for size in sizes[:-1]), sizes
    assert all(size < 600 + 50 for size in sizes), sizes  # no range once it holds 600


def test_without_a_process_to_spare_the_fetch_runs_on_the_thread(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    chain.activity.lifecycle()

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    fetcher = _process_prefetcher(chain, chain.node.url)
    try:
        assert fetcher._workers == []
        got = list(fetcher)
    finally:
        fetcher.close()
    assert got[-1].range.end == chain.head and sum(len(f.events) for f in got) > 0


@pytest.mark.parametrize("processes", [1, 2])
def test_a_failure_in_the_fetch_process_reaches_the_writer_as_the_same_error(chain: Chain, processes: int) -> None:
    chain.activity.lifecycle()
    # a node that refuses every eth_getLogs, even of one block, as too large: the fetch process gives up
    with FaultProxy(chain.node.url, max_log_blocks=0) as proxy:
        fetcher = _process_prefetcher(chain, proxy.url, processes=processes)
        try:
            with pytest.raises(RpcRetryableError, match="alone keeps failing"):
                list(fetcher)
        finally:
            fetcher.close()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_fetch_process_that_dies_is_reported_not_waited_for(chain: Chain, processes: int) -> None:
    chain.activity.lifecycle()
    with FaultProxy(
        chain.node.url, rates={"timeout": 1.0}, budget=1000, delay=20, only_methods=["eth_getLogs"]
    ) as proxy:
        fetcher = _process_prefetcher(chain, proxy.url, timeout=60, processes=processes)
        assert len(fetcher._workers) == processes
        pid = fetcher._workers[-1].pid  # with two, the one fetching the second chunk: the first is waited for
        try:
            os.kill(pid, signal.SIGKILL)  # stuck in its first request
            began = time.monotonic()
            with pytest.raises(RpcRetryableError, match=r"fetch process ended unexpectedly \(killed by signal 9\)"):
                list(fetcher)
            assert time.monotonic() - began < 10
        finally:
            fetcher.close()
        assert all(_gone(w.pid) for w in fetcher._workers)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_the_fetch_process_dies_with_a_killed_backfill_and_a_restart_is_not_refused(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=400, items=4)
    Store.open(sqlite_url).close()  # migrated here: the CLI forks its fetch process at once
    with FaultProxy(
        chain.node.url, rates={"timeout": 1.0}, budget=1000, delay=30, only_methods=["eth_getLogs"]
    ) as proxy:
        env = cli_env(chain, sqlite_url, rpc_url=proxy.url)
        # a slow node: every eth_getLogs waits 30 s, so the fetch process is in its first one for a while
        proc = start_cli(["--rpc-timeout", "60", "backfill", "--no-progress"], env, log=tmp_path / "cli.log")
        procs.append(proc)
        deadline = time.monotonic() + 120
        children: list[int] = []
        while not children and time.monotonic() < deadline and proc.poll() is None:
            children = _children(proc.pid)
            time.sleep(0.05)
        assert children, (tmp_path / "cli.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while not all(_gone(pid) or _zombie(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(_gone(pid) or _zombie(pid) for pid in children)
    # the writer lock went with them: a new backfill starts at once and completes
    final = run_cli(["backfill", "--no-progress"], cli_env(chain, sqlite_url))
    assert final.returncode == 0, final.stderr
    store = Store.open(sqlite_url)
    try:
        assert store.dump() == reference_dump(chain)
    finally:
        store.close()


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


class _FailsFrom(Decoder):
    """A decoder that fails (in the fetch process: it is forked with it) on logs of block ``bad`` or later."""

    bad = 0

    def decode_rows(self, logs: Any) -> list[tuple[Any, ...]]:
        if any(int(entry["blockNumber"], 16) >= self.bad for entry in logs):
            raise ChainMovedError(f"moved at {self.bad}")
        return super().decode_rows(logs)

    def scan_response(self, raw: bytes, request_id: int) -> ScannedRows | None:
        scanned = super().scan_response(raw, request_id)
        if scanned is not None and any(row[1][0] >= self.bad for row in scanned.rows):
            raise ChainMovedError(f"moved at {self.bad}")
        return scanned


def test_with_several_processes_the_chunks_before_a_failure_are_handed_out_before_it(chain: Chain) -> None:
    """The process that fails may be ahead of the others: what comes before its failure, fetched by the
    others, is still handed out first, in order, and the failure after it."""
    chain.activity.lifecycle()
    chain.activity.bulk(events=600, items=4, batch=20)
    args = _prefetcher_args(chain, chain.node.url)
    pin = pin_of(chain.deployment)
    decoder = _FailsFrom(abis=ABIS, ledger_address=pin.ledger_address, escrow_address=pin.escrow_address)
    decoder.bad = args["start"] + (chain.head - args["start"]) * 2 // 3
    fetcher = Prefetcher(**{**args, "decoder": decoder, "processes": 2, "max_events": 1})
    assert len(fetcher._workers) == 2
    got: list[Fetched] = []
    try:
        with pytest.raises(ChainMovedError, match=f"moved at {decoder.bad}"):
            got.extend(fetcher)  # (keeps what it took before the failure)
    finally:
        fetcher.close()
    assert got and got[0].range.start == args["start"]
    assert all(b.range.start == a.range.end + 1 for a, b in itertools.pairwise(got))
    assert decoder.bad - 2 <= got[-1].range.end < decoder.bad  # ranges are 1-2 blocks
