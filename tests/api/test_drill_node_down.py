"""Drill: the chain node goes down for a while and comes back with the same state.

A real anvil (its state kept in a file: ``--state``, dumped when it stops and loaded when it starts again on the
same port), a real ``ledger-indexer follow`` and a real ``ledger-api``. While the node is away, reads answer from
the index with ``X-Index-Stale`` (and ``/readyz`` is a 503 naming the node), writes are a 503 problem saying the
node cannot be reached, with ``Retry-After``; once it is back the same write succeeds, read-your-writes included,
and the indexer (never restarted) has caught up with the blocks the chain made meanwhile.

The outage lasts ``DRILL_NODE_DOWN_S`` seconds (default 0: only as long as the first round of checks takes, as
in CI; ``DRILL_NODE_DOWN_S=600`` is issue #24's ten minutes). Through it, every ``DRILL_CHECK_EVERY_S`` seconds,
reads, a write, ``/readyz`` and the indexer are checked again: nothing may give up while the node stays away.
The figures (reads, writes refused, the stale age, the catch-up) are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web3.types import BlockData

from ledger_service.store.handle import Store
from tests.api.drills import POLL_S, drill_chain, indexer_process, sale, start_anvil_at, until
from tests.api.flows import POLICY, ok, problem
from tests.api.served import serve_with
from tests.support.activity import mine
from tests.support.chain import Anvil, free_port

DOWN_S = float(os.environ.get("DRILL_NODE_DOWN_S", "0"))
"""How long the node stays away at least."""
CHECK_EVERY_S = float(os.environ.get("DRILL_CHECK_EVERY_S", "5"))
"""How often the reads, a write, ``/readyz`` and the indexer are checked while it is away."""
BLOCK_TIME_S = 2.0
"""The chain goes on without our node: one block per this many seconds of the outage waits for the indexer
when the node comes back."""
RETRY_IN = re.compile(r"rpc_unavailable.*?retry_in[=\"': ]+([0-9.]+)")


@pytest.fixture
def nodes() -> Iterator[list[Anvil]]:
    """The anvils a test started (one at a time): each still running at the end is stopped."""
    started: list[Anvil] = []
    yield started
    for node in started:
        if node.process.poll() is None:
            node.stop()


def test_node_down_reads_answer_stale_writes_503_then_all_succeed_once_it_is_back(
    tmp_path: Path, nodes: list[Anvil]
) -> None:
    port, state = free_port(), tmp_path / "anvil-state.json"
    node = start_anvil_at(port, state)
    nodes.append(node)
    chain = drill_chain(node, tmp_path, f"sqlite:///{tmp_path / 'index.sqlite3'}")
    w3, items = chain.deployed.w3, chain.items
    store = Store.open(chain.ledger["LEDGER_DATABASE_URL"])
    headers = chain.merchant_headers(store)
    indexer_log = tmp_path / "indexer.log"
    try:
        with (
            indexer_process(chain.ledger, indexer_log, "--rpc-attempts", "3") as indexer,
            serve_with(chain.ledger, INDEX_FRESHNESS_POLL_S=str(POLL_S), READY_TIMEOUT_S="1") as api,
            httpx.Client(base_url=api.url, timeout=30) as http,
        ):
            ok(http.post("/v1/merchants/me/policy?wait=true", headers=headers, json=POLICY), 201)
            policy_url = f"/v1/merchants/{chain.merchant.lower()}/policy"
            until("the API sees the index current", lambda: http.get("/readyz").status_code == 200)
            head = w3.eth.get_block("latest")
            until(
                "an answer at the head, without X-Index-Stale",
                lambda: (
                    "x-index-stale" not in (r := http.get(policy_url)).headers
                    and int(r.headers["x-index-block"]) == head["number"]
                ),
            )

            node.stop()  # SIGTERM: anvil writes its state file and exits
            stopped = time.monotonic()
            assert state.exists()
            down = until("/readyz fails on the node", lambda: (r := http.get("/readyz")).status_code == 503 and r)
            assert problem(down, 503)["failing"] == ["node", "index_lag"]
            until("a read marked stale", lambda: "x-index-stale" in http.get(policy_url).headers)

            ages: list[int] = []
            refused = retrying = 0
            while True:
                ages.append(_stale_read(http, policy_url, headers, items[0], head))
                _write_refused(http, headers, items[0])
                refused += 1
                assert problem(http.get("/readyz"), 503)["failing"] == ["node", "index_lag"]
                assert indexer.poll() is None, indexer_log.read_text()[-2000:]  # still waiting, never gave up
                retrying = indexer_log.read_text().count("rpc_unavailable")
                if retrying > 0 and time.monotonic() - stopped >= DOWN_S:
                    break
                time.sleep(CHECK_EVERY_S)
            down_s = time.monotonic() - stopped
            assert ages == sorted(ages), ages  # the same block, older each time
            retry_in = [float(found) for found in RETRY_IN.findall(indexer_log.read_text())]
            assert retry_in and max(retry_in) <= 10.0, retry_in  # the follow loop's backoff is capped
            if down_s > 60:  # still retrying at the end of a long outage, not only at its start
                assert len(retry_in) > 3, retry_in

            nodes.append(back := start_anvil_at(port, state))  # the same chain, from its state file
            answers = time.monotonic()
            assert w3.eth.get_block(head["number"])["hash"] == head["hash"]
            made = max(1, int(down_s / BLOCK_TIME_S))
            mine(back, made)  # what the chain made without us meanwhile
            new_head = w3.eth.block_number
            until(
                "the indexer at the chain's head again",
                lambda: (c := store.checkpoint()) is not None and c.number == new_head,
            )
            caught_up_s = time.monotonic() - answers
            until("/readyz passes again", lambda: http.get("/readyz").status_code == 200)
            ready_s = time.monotonic() - answers
            sold = ok(http.post("/v1/sales?wait=true", headers=headers, json=sale(items[0])), 201)
            assert sold["return_token"]
            sold_block = w3.eth.block_number
            until(
                "answers at the sale's block, not stale",
                lambda: (
                    "x-index-stale" not in (r := http.get(policy_url)).headers
                    and int(r.headers["x-index-block"]) >= sold_block
                ),
            )
            assert indexer.poll() is None  # the same indexer process waited for the node and went on
            checkpoint = store.checkpoint()
            assert checkpoint is not None and checkpoint.number == w3.eth.block_number
            figures = {
                "down_s": round(down_s, 1),
                "reads_stale": 2 * len(ages),
                "stale_age_s": [ages[0], ages[-1]],
                "writes_refused_503": refused,
                "indexer_retries_logged": len(retry_in),
                "indexer_longest_backoff_s": max(retry_in),
                "blocks_made_meanwhile": made,
                "caught_up_s": round(caught_up_s, 2),
                "ready_s": round(ready_s, 2),
                "write_after": "201",
            }
            print(f"\nnode-down drill: {json.dumps(figures)}")
    finally:
        store.close()


def _stale_read(http: httpx.Client, policy_url: str, headers: dict[str, str], item: str, head: BlockData) -> int:
    """A policy read and an eligibility read answered from the index, marked stale: the age in seconds."""
    before = time.time()
    read = http.get(policy_url)
    after = time.time()
    assert read.status_code == 200 and read.json()["current"]["window_days"] == POLICY["window_days"]
    assert int(read.headers["x-index-block"]) == head["number"]
    age = int(read.headers["x-index-stale"])  # seconds since the indexed block's time
    assert int(before - head["timestamp"]) - 1 <= age <= int(after - head["timestamp"]) + 1
    eligibility = http.get(f"/v1/items/{item}/eligibility", headers=headers)
    assert eligibility.status_code in (200, 404), eligibility.text
    assert "x-index-stale" in eligibility.headers
    return age


def _write_refused(http: httpx.Client, headers: dict[str, str], item: str) -> None:
    """A sale refused: 503 naming the node, with Retry-After."""
    refused = http.post("/v1/sales?wait=true", headers=headers, json=sale(item))
    body = problem(refused, 503)
    assert "node" in body["detail"] and "try again" in body["detail"], body
    assert int(refused.headers["retry-after"]) > 0
    assert "x-index-stale" in refused.headers
