"""The index's EPCIS rows rebuilt from the chain's item events and the document store: after the rows are
lost, the query answers the same captured events (hash IDs, bodies, proofs) as before, and a second rebuild
restores nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete

from ledger_service.capture.rebuild import rebuild
from ledger_service.documents.factory import open_document_store
from ledger_service.store.tables import epcis_biz_transactions, epcis_event_epcs, epcis_events
from tests.api.conftest import ApiEnv, api_env, bearer, client, keys  # noqa: F401  (the API's fixtures)
from tests.api.epcis_docs import aggregation, commissioning, document, event, new_epc, new_sscc
from tests.api.test_epcis_capture import capture
from tests.support.chain import MERCHANT


def answer(client: TestClient, key: str, epcs: list[str]) -> list[dict[str, Any]]:  # noqa: F811
    found = client.get("/v1/epcis/events", params={"MATCH_epc": ",".join(epcs)}, headers=bearer(key))
    assert found.status_code == 200, found.text
    events: list[dict[str, Any]] = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return [{k: v for k, v in e.items() if k != "recordTime"} for e in events]


def test_the_epcis_rows_come_back_from_the_chain_and_the_document_store(
    client: TestClient,  # noqa: F811
    api_env: ApiEnv,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
) -> None:
    a, b = new_epc(), new_epc()
    capture(client, keys["manufacturer"], document(commissioning([a, b], merchant=api_env.accounts[MERCHANT])))
    doc = document(
        event([a], minutes=10, bizTransactionList=[{"type": "po", "bizTransaction": "urn:x:po:1"}]),
        aggregation(new_sscc(), [a, b], minutes=20),
    )
    capture(client, keys["merchant"], doc)
    capture(client, keys["merchant"], doc)  # a duplicate: nothing more on-chain
    api_env.wait_indexed()
    before = answer(client, keys["auditor"], [a, b])
    assert len(before) == 3
    with api_env.store.engine.begin() as conn:
        for table in (epcis_biz_transactions, epcis_event_epcs, epcis_events):
            conn.execute(delete(table))
    assert all("ledger:hashID" not in e for e in answer(client, keys["auditor"], [a, b]))  # the chain's view only
    report = rebuild(store=api_env.store, documents=open_document_store(api_env.settings))
    assert (report.documents, report.events, report.missing) == (2, 3, 0)
    assert answer(client, keys["auditor"], [a, b]) == before
    again = rebuild(store=api_env.store, documents=open_document_store(api_env.settings))
    assert again.events == 0


def test_the_cli_rebuilds_through_the_settings(api_env: ApiEnv) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = api_env.settings.database_url
    env["LEDGER_DOCUMENTS_DIR"] = str(api_env.settings.documents_dir)
    script = Path(sys.executable).with_name("ledger-capture")
    done = subprocess.run([str(script), "--rebuild-index"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("restored ")
    both = subprocess.run(
        [str(script), "x.jsonld", "--rebuild-index"], capture_output=True, text=True, env=env, check=False
    )
    assert both.returncode == 2 and "or --rebuild-index alone" in both.stderr
