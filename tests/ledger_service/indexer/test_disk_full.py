"""Drill: the index's disk fills up. The indexer stops with one clear line and exit 1 (a stop, not a retry: waiting
cannot free space), the index keeps every committed batch, and once space is freed it resumes exactly.

The disk is a real one that fills: a size-limited tmpfs, mounted in a mount namespace of its own (``unshare``,
as an unprivileged user too), so SQLite meets ENOSPC as on a full volume and nothing outside the test sees it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event

from ledger_service.store import StoreFullError
from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import Chain, cli_env, comparable, make_indexer_for, reference_dump
from tests.support.chain import ROOT

# Runs in the namespace: $1 the volume's folder, $2 where results are copied, $3 the tmpfs size, $4 python.
DRILL = """
set -u
mount -t tmpfs -o size="$3" tmpfs "$1" || exit 97
timeout 180 "$4" -m ledger_service.indexer.cli follow >"$2/full.log" 2>&1
echo $? >"$2/full.rc"
mkdir "$2/stopped" && cp "$1"/index.sqlite3* "$2/stopped/"
mount -o remount,size=256m "$1" || exit 98
"$4" -m ledger_service.indexer.cli backfill >"$2/resumed.log" 2>&1
echo $? >"$2/resumed.rc"
mkdir "$2/final" && cp "$1"/index.sqlite3* "$2/final/"
"""


def _namespaces_allowed() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def test_a_full_disk_stops_the_indexer_cleanly_and_it_resumes_exactly_once_space_is_freed(
    chain: Chain, tmp_path: Path
) -> None:
    if not _namespaces_allowed():
        pytest.skip("unshare -rm (a user and mount namespace for the size-limited tmpfs) is not allowed here")
    chain.activity.lifecycle()
    chain.activity.bulk(events=8_000, items=24)
    volume, out = tmp_path / "volume", tmp_path / "out"
    volume.mkdir()
    out.mkdir()
    env = cli_env(chain, f"sqlite:///{volume / 'index.sqlite3'}", LEDGER_LOG_JSON="false")
    drill = subprocess.run(
        ["unshare", "-rm", "sh", "-c", DRILL, "drill", str(volume), str(out), "1200k", sys.executable],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert drill.returncode == 0, drill.stderr
    full_log = (out / "full.log").read_text()
    assert (out / "full.rc").read_text().strip() == "1", full_log[-3000:]
    last = full_log.strip().splitlines()[-1]
    assert last.startswith("ledger-indexer: error: the database's disk is full"), full_log[-3000:]
    assert "free space on its volume" in last and "resumes where it stopped" in last

    stopped = _checkpoint(out / "stopped" / "index.sqlite3")
    assert stopped is not None and stopped < chain.head  # it stopped part of the way, with what it committed

    assert (out / "resumed.rc").read_text().strip() == "0", (out / "resumed.log").read_text()[-3000:]
    final = Store.open(f"sqlite:///{out / 'final' / 'index.sqlite3'}")
    try:
        assert final.checkpoint().number == chain.head  # type: ignore[union-attr]
        assert comparable(final.dump()) == comparable(reference_dump(chain))
    finally:
        final.close()


def _checkpoint(path: Path) -> int | None:
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        row = connection.execute("SELECT block_number FROM checkpoint WHERE id = 1").fetchone()
        return None if row is None else int(row[0])
    finally:
        connection.close()


def test_sqlite_full_is_a_stop_error_in_process_too(chain: Chain, tmp_path: Path) -> None:
    """The same classification without a filesystem: SQLite's page limit gives the same SQLITE_FULL."""
    chain.activity.bulk(events=3_000, items=8)
    store = Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    try:
        pages = store.engine.connect()
        size = pages.exec_driver_sql("PRAGMA page_count").scalar_one()
        pages.close()

        @event.listens_for(store.engine, "connect")
        def _limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count={int(size) + 8}")

        store.engine.dispose()
        indexer = make_indexer_for(chain, store)
        try:
            with pytest.raises(StoreFullError, match="disk is full"):
                list(indexer.sync())
        finally:
            indexer.rpc.close()
    finally:
        store.close()
