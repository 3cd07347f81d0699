"""Drill: the chain node goes down for a while and comes back with the same state.

A real anvil (its state kept in a file: ``--state``, dumped when it stops and loaded when it starts again on the
same port), a real ``ledger-indexer follow`` and a real ``ledger-api``. While the node is away, reads answer from
the index with ``X-Index-Stale`` (and ``/readyz`` is a 503 naming the node), writes are a 503 problem saying the
node cannot be reached, with ``Retry-After``; once it is back the same write succeeds, read-your-writes included,
and the indexer (never restarted) has caught up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger_service.store.handle import Store
from tests.api.drills import POLL_S, drill_chain, indexer_process, sale, start_anvil_at, until
from tests.api.flows import POLICY, ok, problem
from tests.api.served import serve_with
from tests.support.chain import Anvil, free_port


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
            assert state.exists()
            down = until("/readyz fails on the node", lambda: (r := http.get("/readyz")).status_code == 503 and r)
            assert problem(down, 503)["failing"] == ["node", "index_lag"]

            before = time.time()
            read = until("a read marked stale", lambda: "x-index-stale" in (r := http.get(policy_url)).headers and r)
            after = time.time()
            assert read.status_code == 200 and read.json()["current"]["window_days"] == POLICY["window_days"]
            assert int(read.headers["x-index-block"]) == head["number"]
            age = int(read.headers["x-index-stale"])  # seconds since the indexed block's time
            assert int(before - head["timestamp"]) - 1 <= age <= int(after - head["timestamp"]) + 1
            eligibility = http.get(f"/v1/items/{items[0]}/eligibility", headers=headers)
            assert eligibility.status_code == 404 or eligibility.status_code == 200, eligibility.text
            assert "x-index-stale" in eligibility.headers

            refused = http.post("/v1/sales?wait=true", headers=headers, json=sale(items[0]))
            body = problem(refused, 503)
            assert "node" in body["detail"] and "try again" in body["detail"], body
            assert int(refused.headers["retry-after"]) > 0
            assert "x-index-stale" in refused.headers
            # down until the indexer gave up its call's retries: from then on its follow loop waits for the node
            until("the indexer waiting for the node", lambda: "rpc_unavailable" in indexer_log.read_text())

            nodes.append(start_anvil_at(port, state))  # the same chain, from its state file
            assert w3.eth.get_block(head["number"])["hash"] == head["hash"]
            until("/readyz passes again", lambda: http.get("/readyz").status_code == 200)
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
    finally:
        store.close()
