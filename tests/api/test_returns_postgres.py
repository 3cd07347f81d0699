"""The returns workflow through HTTP once with the index in PostgreSQL: a fast refund from request to payout,
and concurrent identical requests creating one return (the item slot is a PostgreSQL unique constraint here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from ledger_service.settings import Settings
from ledger_service.store.handle import Store
from tests.api.conftest import ApiEnv, IndexerThread, _grant_relayer, bearer, make_client, make_keys
from tests.api.flows import PRICE, Flow, ok
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, deploy_all, start_anvil
from tests.support.db import libpq_dsn, schema_url

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ApiEnv]:
    base = request.getfixturevalue("_pg_server")
    schema = f"test_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_dsn(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    node = start_anvil()
    try:
        deployed = deploy_all(node)
        _grant_relayer(deployed)
        tmp = tmp_path_factory.mktemp("api-pg")
        manifest = write_manifest(deployed, tmp / "deployments" / f"{deployed.w3.eth.chain_id}.json")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            rpc_url=node.url,  # type: ignore[arg-type]
            database_url=schema_url(base, schema),
            deployment_file=manifest,
            artifacts_dir=ARTIFACTS,
            wait_timeout_s=20.0,
            documents_dir=tmp / "documents",
        )
        store = Store.open(settings.database_url)
        indexer = IndexerThread(settings)
        try:
            yield ApiEnv(node, deployed, manifest, settings, store, indexer, deployed.accounts)
        finally:
            indexer.stop()
            store.close()
    finally:
        node.stop()
        with psycopg.connect(libpq_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def flow(pg_env: ApiEnv) -> Iterator[Flow]:
    keys = make_keys(pg_env)
    with make_client(pg_env) as client:
        made = Flow(client, pg_env, keys)
        made.publish(fast_refund=True)
        yield made


def test_fast_refund_on_postgres(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    scanned = flow.scan(rma, "in_transit")
    assert scanned["return"]["state"] == "in_transit" and scanned["return"]["settled"] is True
    assert flow.balance(sold.consumer) == PRICE - PRICE // 10
    listed = ok(flow.client.get("/v1/returns?reason=damaged", headers=bearer(flow.keys["merchant"])))
    assert rma in {r["id"] for r in listed["data"]}


def test_concurrent_requests_on_postgres_create_one_return(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    escrow_before = flow.escrow_balance()

    def send(_: int) -> int:
        response = flow.client.post("/v1/returns", headers=sold.auth, json={"reason_code": "damaged"})
        return int(response.status_code)

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, range(20)))
    assert statuses.count(201) == 1 and statuses.count(409) == 19, statuses
    assert flow.escrow_balance() == escrow_before + PRICE
