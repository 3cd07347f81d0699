"""The relayer's nonce book in the database (``SentTransactions``): one holder per signer at a time, across threads
and processes, and on SQLite the database's writer lock left free while a signer is held (the holder waits on the
node between its reads and its record; every other write of the service would wait with it)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from ledger_service.core.transactions import SentRecord
from ledger_service.store import Store, returns
from ledger_service.store.sent_transactions import SentTransactions, _lock_key
from tests.ledger_service.store.test_return_requests import request_row
from tests.support.threads import together

SIGNER = "0x976ea74026e726554db657fa54763abd0c3a0aa9"
SENT = SentRecord(nonce=0, raw=b"\x02", hashes=("0x01",), max_fee_per_gas=2, priority_fee_per_gas=1, sent_at=1.0)


def test_holders_of_one_signer_take_turns(store: Store) -> None:
    book = SentTransactions(store)

    def send(i: int) -> int:
        with book.hold(31337, SIGNER) as held:
            nonce = held.next_nonce() or 0
            held.record(replace(SENT, nonce=nonce, hashes=(f"0x{i:02x}",)))
            return nonce

    nonces = together(8, send)
    assert sorted(n for n in nonces if isinstance(n, int)) == list(range(8)), nonces  # no nonce twice, none skipped


def test_sqlite_writes_go_on_while_a_signer_is_held(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/index.sqlite3"
    with Store.open(url) as relayer, Store.open(url) as api:
        with SentTransactions(relayer).hold(31337, SIGNER) as held:
            assert held.next_nonce() is None
            # the relayer now waits for the node: another write of the service is not held up by it
            returns.insert_return_request(api, request_row("rr_other"))
            held.record(SENT)
        assert returns.return_request_by_id(api, "rr_other") is not None
        assert SentTransactions(api).recorded(31337, SIGNER) == [(0, ("0x01",), None)]


HOLDER = """
import sys
from ledger_service.store import Store
from ledger_service.store.sent_transactions import SentTransactions
with Store.open(sys.argv[1]) as store, SentTransactions(store).hold(31337, sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_another_process_holding_the_signer_excludes_this_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/index.sqlite3"
    Store.open(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, SIGNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        offset = _lock_key(31337, SIGNER) & 0x7FFF_FFFF
        with (tmp_path / "index.sqlite3.signers.lock").open("a+b") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except OSError:
                taken = True
            else:
                taken = False
            assert taken  # the other process holds this signer's byte
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert holder.returncode == 0
