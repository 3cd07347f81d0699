"""The CBV event hash IDs of a large document, computed in worker processes part by part, are the ones GS1's
reference implementation gives the whole document in one process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ledger_service.epcis import hashid
from tests.api.epcis_docs import aggregation, commissioning, document, event, new_epc, new_sscc

MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ROOT = Path(__file__).resolve().parents[3]


def large_document(n: int) -> dict[str, object]:
    """``n`` events of several kinds: commissionings, observations with an extension field, aggregations."""
    events: list[dict[str, object]] = []
    while len(events) < n:
        a, b = new_epc(), new_epc()
        events.append(commissioning([a, b], merchant=MERCHANT))
        events.append(event([a], minutes=len(events), **{"ledger:note": f"scan {len(events)}"}))
        events.append(aggregation(new_sscc(), [a, b], minutes=len(events)))
    return document(*events[:n])


def test_a_large_document_hashed_in_parts_gives_the_whole_documents_ids() -> None:
    count = hashid.POOL_MIN_EVENTS + 101
    doc = large_document(count)
    in_parts = list(hashid.hash_ids(doc, count))
    whole = list(hashid._hash_ids_here(doc, count))
    assert in_parts == whole
    assert len(set(whole)) == count and None not in whole
    assert all(h.startswith("ni:///sha-256;") for h in whole if h is not None)


def test_a_small_document_is_hashed_here() -> None:
    doc = large_document(3)
    assert list(hashid.hash_ids(doc, 3)) == list(hashid._hash_ids_here(doc, 3))


WORKER_PIDS = """
import sys
sys.path.insert(0, ".")
from ledger_service.epcis import hashid
from tests.ledger_service.epcis.test_hashid import large_document

if __name__ == "__main__":
    hashid.hash_ids(large_document(hashid.POOL_MIN_EVENTS), hashid.POOL_MIN_EVENTS)
    print(" ".join(str(pid) for pid in hashid._workers()._processes), flush=True)
    sys.stdin.read()
"""


def test_the_workers_of_a_killed_process_exit(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(WORKER_PIDS)
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        workers = [int(pid) for pid in process.stdout.readline().split()]
        assert workers and all(alive(pid) for pid in workers)
    finally:
        process.kill()
        process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a hash worker outlived the process that started it"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for this purpose
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
