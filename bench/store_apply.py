"""Throughput of Store.apply() alone: synthetic ItemEventRecorded events into SQLite and PostgreSQL.

Run from the repository root:
    .venv/bin/python bench/store_apply.py [--events 100000] [--batch 5000] [--no-postgres]

Generates ``--events`` ItemEventRecorded events with valid hash chains (plus
one ItemRegistered per item, not counted) for ``events / 10`` items, in
round-robin order (each batch touches ``--batch`` distinct items, the costly
case: one items upsert per event), then times every apply() of the whole
stream into a fresh SQLite file and a fresh PostgreSQL schema
(``TEST_POSTGRES_URL`` or the local test server). Prints events/s per
database (and the CPU seconds this process spent, a figure less sensitive to
other load on the machine), then one JSON line with the figures. A
measurement, not a test: it asserts nothing about speed; exits 2 with a
message when PostgreSQL is unusable (or pass ``--no-postgres``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import DEFAULT_PG_URL, SetupError, json_line, pg_schema  # noqa: E402

from ledger_service.core.events import BlockHeader, DecodedEvent, ItemEventRecorded, ItemRegistered, LogPosition  # noqa: E402
from ledger_service.core.hashchain import event_hash_hex  # noqa: E402
from ledger_service.store import BlockRef, Store  # noqa: E402

PG_URL = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL)
EVENTS_PER_ITEM = 10
EVENTS_PER_BLOCK = 100


def _hex(n: int, width: int = 32) -> str:
    return "0x" + n.to_bytes(width, "big").hex()


def generate(n_events: int) -> tuple[list[list[DecodedEvent]], list[BlockHeader]]:
    """Events grouped by block (registrations first, then rounds of one event per item) and the headers."""
    n_items = max(1, n_events // EVENTS_PER_ITEM)
    item_ids = [_hex(0xABC0000 + i) for i in range(n_items)]
    heads = ["0x" + "00" * 32] * n_items
    actor = "0x" + "44" * 20
    zero = "0x" + "00" * 32
    stream: list[tuple[str, int, int]] = [("reg", i, 0) for i in range(n_items)]
    stream += [("ev", i, seq) for seq in range(EVENTS_PER_ITEM) for i in range(n_items)][:n_events]
    blocks: list[list[DecodedEvent]] = []
    headers: list[BlockHeader] = []
    t0 = 1_700_000_000
    for start in range(0, len(stream), EVENTS_PER_BLOCK):
        number = len(blocks) + 1
        block_hash = _hex(number * 7919)
        headers.append(BlockHeader(number, block_hash, _hex((number - 1) * 7919), t0 + 12 * number))
        out: list[DecodedEvent] = []
        for log_index, (kind, i, seq) in enumerate(stream[start : start + EVENTS_PER_BLOCK]):
            pos = LogPosition(number, block_hash, _hex(number * 1000 + log_index), log_index, log_index, actor)
            if kind == "reg":
                out.append(ItemRegistered(pos, item_ids[i], actor, actor, f"urn:epc:id:sgtin:0614141.1.{i}", 1, zero))
                continue
            ts = t0 + 12 * number
            location, document = _hex(seq + 1), _hex(i + 5)
            link = event_hash_hex(
                prev_hash=heads[i],
                item_id=item_ids[i],
                seq=seq,
                biz_step=3,
                disposition=3,
                actor=actor,
                location=location,
                document=document,
                biz_transaction=zero,
                timestamp=ts,
            )
            out.append(
                ItemEventRecorded(pos, item_ids[i], actor, seq, 3, 3, location, document, zero, ts, heads[i], link)
            )
            heads[i] = link
        blocks.append(out)
    return blocks, headers


def run(url: str, blocks: list[list[DecodedEvent]], headers: list[BlockHeader], batch: int) -> tuple[float, float, int]:
    """(wall seconds, this process's CPU seconds, events) of every apply() of the stream."""
    store = Store.open(url)
    try:
        elapsed = cpu = 0.0
        counted = 0
        pending: list[DecodedEvent] = []
        first = 0
        for number, events in enumerate(blocks, start=1):
            pending.extend(events)
            if len(pending) >= batch or number == len(blocks):
                started, started_cpu = time.perf_counter(), time.process_time()
                stats = store.apply(
                    events=pending,
                    headers=headers[first:number],
                    checkpoint=BlockRef(number, headers[number - 1].hash),
                    prune_below=number - 64,
                )
                elapsed += time.perf_counter() - started
                cpu += time.process_time() - started_cpu
                counted += sum(isinstance(ev, ItemEventRecorded) for ev in pending)
                assert stats.problems == 0
                pending, first = [], number
        return elapsed, cpu, counted
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000, help="events per apply()")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    blocks, headers = generate(args.events)
    print(f"generated {args.events} ItemEventRecorded in {time.perf_counter() - started:.1f} s; batch {args.batch}")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, cpu, n = run(f"sqlite:///{tmp}/bench.sqlite3", blocks, headers, args.batch)
        print(f"sqlite:     {n / elapsed:>9,.0f} ItemEventRecorded/s  ({n} in {elapsed:.2f} s, {cpu:.2f} s CPU)")
        figures.update(sqlite_events_per_s=round(n / elapsed), sqlite_cpu_s=round(cpu, 2))
    if not args.no_postgres:
        try:
            with pg_schema(PG_URL) as url:
                elapsed, cpu, n = run(url, blocks, headers, args.batch)
        except SetupError as exc:
            print(f"bench/store_apply.py: setup failed: {exc}", file=sys.stderr)
            return 2
        print(f"postgresql: {n / elapsed:>9,.0f} ItemEventRecorded/s  ({n} in {elapsed:.2f} s, {cpu:.2f} s client CPU)")
        figures.update(postgres_events_per_s=round(n / elapsed), postgres_client_cpu_s=round(cpu, 2))
    json_line({"bench": "store_apply", "events": args.events, "batch": args.batch, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
