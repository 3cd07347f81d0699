"""The relayer's cost: transactions sent through the shared nonce book (SQLite, PostgreSQL) against the in-memory
book of one process, on one anvil, in the same run.

What it measures, on a fresh local anvil (automine: each transaction is mined as it arrives) with the contracts
deployed: ``--txs`` registerItem transactions sent with one signer through :class:`TxSender` from ``--threads``
threads, each waiting for its receipt, three times: with :class:`LocalNonceBook` (the reference: no database),
with the database's ``SentTransactions`` on SQLite (a write transaction per send and per receipt) and on
PostgreSQL (the same, plus an advisory lock per signer). Figures: transactions per second, p50 and p99 of one
send (submission to receipt), and each book's throughput as a ratio of the reference's. The node, the database
and the sender share the machine's cores: the ratios matter, not the absolute rates.

    .venv/bin/python bench/relayer.py [--txs 300] [--threads 4] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (  # noqa: E402
    DEFAULT_PG_URL,
    check_postgres,
    percentile,
    pg_schema,
    run_in_workdir,
    say,
    start_chain,
    table,
)
from eth_account import Account  # noqa: E402

from ledger_service.chain.artifacts import load_artifact  # noqa: E402
from ledger_service.chain.nonces import LocalNonceBook, NonceBook  # noqa: E402
from ledger_service.chain.reverts import RevertDecoder  # noqa: E402
from ledger_service.chain.sender import TxSender  # noqa: E402
from ledger_service.core.hashchain import ZERO_HASH  # noqa: E402
from ledger_service.settings import ANVIL_ACCOUNTS  # noqa: E402
from ledger_service.store.handle import Store  # noqa: E402
from ledger_service.store.sent_transactions import SentTransactions  # noqa: E402
from tests.support.chain import ARTIFACTS, MERCHANT, Deployed, deploy_all  # noqa: E402

PG_URL = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL)
LOCATION = b"0614141.00777.0".ljust(32, b"\0")


def _round(d: Deployed, book: NonceBook, label: str, txs: int, threads: int) -> dict[str, float]:
    abi = load_artifact("ProvenanceLedger", ARTIFACTS).abi
    sender = TxSender(w3=d.w3, account=Account.from_key(ANVIL_ACCOUNTS[1][1]), decoder=RevertDecoder([abi]), book=book)
    owner = d.accounts[MERCHANT]

    def one(n: int) -> float:
        began = time.perf_counter()
        sender.send(d.ledger.functions.registerItem(f"urn:bench:{label}:{n}", 1, owner, ZERO_HASH, LOCATION))
        return time.perf_counter() - began

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        seconds = list(pool.map(one, range(txs)))
    wall = time.perf_counter() - began
    figures = {
        "tx_s": txs / wall,
        "p50_ms": percentile(seconds, 0.5) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
    }
    say(f"  {label}: {figures['tx_s']:.0f} tx/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms")
    return figures


@contextmanager
def _database_book(url: str) -> Iterator[NonceBook]:
    store = Store.open(url)
    try:
        yield SentTransactions(store)
    finally:
        store.close()


@contextmanager
def _pg_book() -> Iterator[NonceBook]:
    with pg_schema(PG_URL) as url, _database_book(url) as book:
        yield book


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    def run(workdir: Path) -> dict[str, Any]:
        if not args.no_postgres:
            check_postgres(PG_URL)
        node = start_chain()
        try:
            d = deploy_all(node)
            books: list[tuple[str, Callable[[], AbstractContextManager[Any]]]] = [
                ("memory", lambda: nullcontext(LocalNonceBook())),
                ("sqlite", lambda: _database_book(f"sqlite:///{workdir / 'index.sqlite3'}")),
            ]
            if not args.no_postgres:
                books.append(("postgres", _pg_book))
            figures: dict[str, Any] = {"txs": args.txs, "threads": args.threads}
            say(f"{args.txs} transactions from {args.threads} threads, one signer, automining anvil")
            for label, make in books:
                with make() as book:
                    _round(d, book, f"{label}-warmup", 20, args.threads)
                    figures[label] = _round(d, book, label, args.txs, args.threads)
            for label in ("sqlite", "postgres"):
                if label in figures:
                    figures[label]["ratio"] = figures[label]["tx_s"] / figures["memory"]["tx_s"]
            return figures
        finally:
            node.stop()

    def report(figures: dict[str, Any]) -> None:
        rows = [["book", "tx/s", "p50 ms", "p99 ms", "vs memory"]]
        for label in ("memory", "sqlite", "postgres"):
            if label in figures:
                f = figures[label]
                ratio = f"{f['ratio']:.2f}x" if "ratio" in f else "(reference)"
                rows.append([label, f"{f['tx_s']:.0f}", f"{f['p50_ms']:.1f}", f"{f['p99_ms']:.1f}", ratio])
        for line in table(rows, align="lrrrr"):
            say(line)
        say(f"load average: {os.getloadavg()[0]:.2f}")

    return run_in_workdir(__file__, run, keep=args.keep, report=report)


if __name__ == "__main__":
    raise SystemExit(main())
