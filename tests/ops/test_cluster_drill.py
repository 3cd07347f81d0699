"""The cluster drill of bench/cluster.py, shortened: three API replicas and two indexers on one PostgreSQL index
under a mixed load, the active indexer SIGKILLed, one replica SIGKILLed and started again.

What it must show, whatever the machine's speed (no figure of time is asserted): the standby indexer takes
the lock and indexes on, the index equals a clean re-index of the chain (no event lost or applied twice), no
request failed except those in flight on the killed replica, a write's effect is read on another replica
right after the write's ``?wait=true`` answer, and the restarted replica serves again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.chain import ROOT
from tests.support.db import pg_base_url

sys.path.insert(0, str(ROOT / "bench"))

import cluster
from common import SetupError

pytestmark = [pytest.mark.heavy, pytest.mark.postgres, pytest.mark.usefixtures("_pg_server")]


def test_cluster_drill_loses_nothing_and_fails_only_the_killed_replicas_requests(tmp_path: Path) -> None:
    try:
        figures = cluster.drill_figures(
            tmp_path, postgres_url=pg_base_url(), duration=12, readers=3, return_rate=1.5, scan_rate=1.5, ratio=False
        )
    except SetupError as exc:
        pytest.fail(f"the cluster did not start: {exc}")
    kinds = figures["kinds"]
    for kind in ("eligibility", "history", "return_request", "carrier_scan", "read_after_write"):
        assert kinds.get(kind, {}).get("ok", 0) > 0, (kind, kinds)
    takeover = figures["takeover"]
    assert takeover["lock_s"] is not None and takeover["first_block_s"] is not None, takeover
    assert figures["index"]["rows"] > 0
    assert figures["index"]["lost"] == {} and figures["index"]["duplicated"] == {}, figures["index"]
    assert figures["errors"]["other"] == 0, figures["errors"]
    # a read sent again to another replica had its connection broken by the killed one, never by a live one
    assert set(figures["retried"]["from_replicas"]) <= {cluster.KILLED_REPLICA}, figures["retried"]
    ryw = figures["read_your_writes"]
    assert ryw["checked"] > 0 and ryw["violated"] == 0, ryw
    assert figures["served_after_restart"] > 0
