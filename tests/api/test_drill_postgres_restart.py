"""Drill: PostgreSQL restarted mid-load. The API and the indexer (real processes) reconnect without a restart: a
request in flight may fail with a 503 problem, the next ones succeed, writes with read-your-writes included, and
the indexer takes its writer lock again and goes on.

A restart is reproduced by terminating every backend of the test's connections (``pg_terminate_backend``:
what a restart does to clients), see :func:`tests.support.db.terminate_backends`.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx

from ledger_service.store.handle import Store
from tests.api.drills import POLL_S, drill_chain, indexer_process, sale, until
from tests.api.flows import POLICY, ok
from tests.api.served import serve_with
from tests.support.chain import Anvil
from tests.support.db import terminate_backends, with_application_name


class Load:
    """Reads in a loop on a thread of their own (a policy and an item's eligibility), every status kept."""

    def __init__(self, url: str, paths: list[str], headers: dict[str, str]) -> None:
        self.statuses: list[int] = []
        self.problems: list[httpx.Response] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, paths, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, paths: list[str], headers: dict[str, str]) -> None:
        with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
            while not self._stop.is_set():
                for path in paths:
                    response = http.get(path)
                    self.statuses.append(response.status_code)
                    if response.status_code != 200:
                        self.problems.append(response)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_postgres_restart_mid_load_the_api_and_the_indexer_reconnect_without_a_restart(
    tmp_path: Path, pg_url: str, fresh_anvil: Anvil
) -> None:
    name = f"drill_{uuid.uuid4().hex[:12]}"
    chain = drill_chain(fresh_anvil, tmp_path, with_application_name(pg_url, name), items=3)
    store = Store.open(chain.ledger["LEDGER_DATABASE_URL"])
    headers = chain.merchant_headers(store)
    indexer_log = tmp_path / "indexer.log"
    try:
        with (
            indexer_process(chain.ledger, indexer_log) as indexer,
            serve_with(chain.ledger, API_WORKERS="2", INDEX_FRESHNESS_POLL_S=str(POLL_S)) as api,
            httpx.Client(base_url=api.url, timeout=30, headers=headers) as http,
        ):
            ok(http.post("/v1/merchants/me/policy?wait=true", json=POLICY), 201)
            ok(http.post("/v1/sales?wait=true", json=sale(chain.items[0])), 201)
            paths = [f"/v1/merchants/{chain.merchant.lower()}/policy", f"/v1/items/{chain.items[0]}/eligibility"]
            load = Load(api.url, paths, headers)
            try:
                until("reads under way", lambda: len(load.statuses) >= 20)
                terminated = terminate_backends(name)
                at = len(load.statuses)
                # the writer lock's, the indexer's and at least one of each API worker's
                assert terminated >= 3, terminated
                sold = ok(http.post("/v1/sales?wait=true", json=sale(chain.items[1])), 201)
                assert sold["return_token"]
                until("reads after the restart", lambda: len(load.statuses) >= at + 40)
                assert terminate_backends(name) >= 1  # a second restart, while writes are waited for
                ok(http.post("/v1/sales?wait=true", json=sale(chain.items[2])), 201)
                end = len(load.statuses)
                until("more reads", lambda: len(load.statuses) >= end + 20)
            finally:
                load.stop()
            assert set(load.statuses) <= {200, 503}, sorted(set(load.statuses))
            assert all(s == 200 for s in load.statuses[-20:])
            for refused in load.problems:  # a request in flight on a terminated connection
                assert refused.headers["content-type"] == "application/problem+json"
                assert "database" in refused.json()["detail"] and "retry-after" in refused.headers
            assert indexer.poll() is None  # the same indexer process
            checkpoint = store.checkpoint()
            assert checkpoint is not None and checkpoint.number == chain.deployed.w3.eth.block_number
    finally:
        store.close()
    log = indexer_log.read_text()
    assert "writer lock taken again" in log, log[-3000:]
