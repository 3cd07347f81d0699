"""The scan queue under concurrency, on SQLite and PostgreSQL: requests of one submitter adding scans from many
threads while its batches are closed under them. Each acknowledged scan is in exactly one batch, at the place its
receipt named; every batch's places are 0..n-1 without a gap, n is its recorded count, never above the maximum;
a batch once closed gains no scan; a submitter never has two open batches. Scans of capture events that are no
longer claimed are not queued at all."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from sqlalchemy import func, select

from ledger_service.errors import ConflictError
from ledger_service.store import Store
from ledger_service.store._db import read_transaction
from ledger_service.store.scan_queue import QueuedScan, Receipt, close_batch, due_batches, enqueue_scans
from ledger_service.store.tables import BATCH_OPEN, queued_scans, scan_batches

ZERO = "0x" + "00" * 32
SUBMITTER = "0x" + "ab" * 20
MAX_SCANS = 7
THREADS, REQUESTS, PER_REQUEST = 6, 15, 4


def _scans(thread: int, request: int) -> list[QueuedScan]:
    return [
        QueuedScan(f"urn:epc:id:sgtin:0614141.107346.{thread}-{request}-{i}", 8, 7, "0614141.00777.0", 1, ZERO, ZERO)
        for i in range(PER_REQUEST)
    ]


def test_concurrent_requests_and_closes_keep_every_scan_in_one_place(store_url: str) -> None:
    receipts: dict[str, Receipt] = {}
    closed_counts: dict[int, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Event()
    with Store.open(store_url) as store:

        def send(thread: int) -> None:
            try:
                for request in range(REQUESTS):
                    scans = _scans(thread, request)
                    answer = enqueue_scans(
                        store, submitter=SUBMITTER, key_id=1, scans=scans, max_scans=MAX_SCANS, now_ms=0
                    )
                    with lock:
                        receipts.update({scan.item: r for scan, r in zip(scans, answer, strict=True)})
            except BaseException as exc:
                errors.append(exc)

        def close() -> None:
            try:
                while not done.is_set():
                    for batch_id in due_batches(store, opened_before_ms=1):
                        close_batch(store, batch_id)
                        with read_transaction(store.engine) as conn:
                            count = conn.execute(
                                select(scan_batches.c.scan_count).where(scan_batches.c.id == batch_id)
                            ).scalar_one()
                        closed_counts.setdefault(batch_id, int(count))
            except BaseException as exc:
                errors.append(exc)

        closer = threading.Thread(target=close)
        senders = [threading.Thread(target=send, args=(i,)) for i in range(THREADS)]
        closer.start()
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        done.set()
        closer.join()
        assert errors == []

        with read_transaction(store.engine) as conn:
            rows = conn.execute(select(queued_scans.c.batch_id, queued_scans.c.position, queued_scans.c.item)).all()
            batches = {
                int(i): (s, int(n))
                for i, s, n in conn.execute(select(scan_batches.c.id, scan_batches.c.state, scan_batches.c.scan_count))
            }
        assert len(rows) == len(receipts) == THREADS * REQUESTS * PER_REQUEST
        assert {item: Receipt(int(b), int(p)) for b, p, item in rows} == receipts
        places: dict[int, list[int]] = defaultdict(list)
        for batch_id, position, _ in rows:
            places[int(batch_id)].append(int(position))
        for batch_id, positions in places.items():
            _, count = batches[batch_id]
            assert sorted(positions) == list(range(count)), batch_id
            assert count <= MAX_SCANS
            if batch_id in closed_counts:
                assert count == closed_counts[batch_id], f"batch {batch_id} gained scans after it was closed"
        assert sum(state == BATCH_OPEN for state, _ in batches.values()) <= 1
        assert closed_counts, "the closer closed nothing: the test proved nothing about closing"


def test_scans_of_capture_events_no_longer_claimed_are_not_queued(store: Store) -> None:
    # event key 1 was never claimed here, as if the reaper had released a dead capture's claims meanwhile
    with pytest.raises(ConflictError, match="send the document again"):
        enqueue_scans(
            store, submitter=SUBMITTER, key_id=1, scans=_scans(0, 0), max_scans=3, now_ms=0, batched_events=[1]
        )
    with read_transaction(store.engine) as conn:
        assert conn.execute(select(func.count()).select_from(queued_scans)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(scan_batches)).scalar_one() == 0
