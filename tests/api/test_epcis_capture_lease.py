"""A capture whose process is killed (SIGKILL) while it sends: its job is taken over once the heartbeat stops,
reconciled with the chain and failed, naming every event not on-chain; the same document sent again then
captures exactly those, and no event is on-chain twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from ledger_service.capture import jobs, lease, ledger_tx
from ledger_service.chain.signers import connect_chain
from ledger_service.documents.factory import open_document_store
from ledger_service.epcis.document import item_id_of
from ledger_service.store import capture_jobs, tables
from ledger_service.store.tables import item_events
from tests.api.conftest import ApiEnv
from tests.api.epcis_docs import body, commissioning, document, event, new_epc
from tests.api.test_epcis_capture import capture, merchant_of
from tests.support.chain import MANUFACTURER, MERCHANT

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 8
# A capture process as the API runs one, made slow on purpose (one event a transaction, a pause after each) so
# that the test can kill it while it sends; its heartbeat is fast so that its lease can be short.
CHILD = """
import sys, time
from ledger_service.capture import jobs, lease
from ledger_service.chain.signers import connect_chain
from ledger_service.documents.factory import open_document_store
from ledger_service.settings import Settings
from ledger_service.store import Store

lease.HEARTBEAT_S = 0.2
jobs.SEND_CHUNK = 1
jobs.read_max_batch = lambda chain: 1
real_send = jobs.send


def slow_send(*args, **kwargs):
    sent = real_send(*args, **kwargs)
    time.sleep(0.3)
    return sent


jobs.send = slow_send
settings = Settings()
store = Store.open(settings.database_url)
context = jobs.CaptureContext(
    store=store, chain=connect_chain(settings), documents=open_document_store(settings), explain=str,
    max_events=1000, index_wait_s=20.0,
)
actor, raw = sys.argv[1], sys.stdin.buffer.read()
capture_id = jobs.open_job(store, key_id=0, actor=actor, raw=raw)
print(capture_id, flush=True)
jobs.run_job(context, capture_id=capture_id, actor=actor, document=raw, raw=raw)
print("finished", flush=True)
"""


def on_chain(api_env: ApiEnv, epcs: list[str]) -> list[int]:
    with api_env.store.engine.connect() as conn:
        return [
            int(
                conn.execute(
                    select(func.count()).select_from(item_events).where(item_events.c.item_id == item_id_of(epc))
                ).scalar_one()
            )
            for epc in epcs
        ]


def context_of(api_env: ApiEnv, *, lease_s: float) -> jobs.CaptureContext:
    return jobs.CaptureContext(
        store=api_env.store,
        chain=connect_chain(api_env.settings),
        documents=open_document_store(api_env.settings),
        explain=str,
        max_events=1000,
        index_wait_s=20.0,
        lease_s=lease_s,
    )


def test_a_killed_capture_is_failed_by_its_lease_and_sending_again_captures_the_rest(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    epcs = [new_epc() for _ in range(EVENTS)]
    assert (
        capture(client, keys["manufacturer"], document(commissioning(epcs, merchant=merchant_of(api_env))))["state"]
        == "succeeded"
    )
    doc = document(*(event([epc], minutes=10) for epc in epcs))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
        **api_env.ledger_variables(),
        "LEDGER_LOG_LEVEL": "WARNING",
    }
    actor = api_env.accounts[MERCHANT]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, actor],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(body(doc))
        child.stdin.close()
        capture_id = child.stdout.readline().decode().strip()
        assert capture_id.startswith("cap_"), child.stderr.read().decode() if child.stderr else ""
        deadline = time.monotonic() + 60
        while (job := capture_jobs.job(api_env.store, capture_id)) is None or job.captured < 2:
            assert time.monotonic() < deadline and child.poll() is None, "the capture did not start sending"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    dead = capture_jobs.job(api_env.store, capture_id)
    assert dead is not None and dead.state == "running"
    context = context_of(api_env, lease_s=1.0)
    assert jobs.reap_abandoned(context_of(api_env, lease_s=600.0)) == []  # within a long lease: not abandoned
    time.sleep(1.5)  # no heartbeat for longer than the short lease
    assert jobs.is_abandoned(context, dead)
    assert jobs.reap_abandoned(context) == [capture_id]

    failed = capture_jobs.job(api_env.store, capture_id)
    assert failed is not None and failed.state == "failed"
    api_env.wait_indexed()
    written = on_chain(api_env, epcs)
    assert set(written) <= {1, 2}
    recorded = sum(n - 1 for n in written)
    assert 2 <= recorded < EVENTS  # killed after two events were sent, before the last
    assert failed.captured == recorded
    named = sorted(e["index"] for e in failed.errors)
    assert named == [i for i, n in enumerate(written) if n == 1]
    assert all("stopped before it finished" in e["message"] for e in failed.errors), failed.errors
    assert all("send the same document again" in e["message"] for e in failed.errors)

    answer = client.get(f"/v1/epcis/capture/{capture_id}", headers={"Authorization": f"Bearer {keys['merchant']}"})
    assert answer.json()["state"] == "failed" and answer.json()["captured"] == recorded

    again = capture(client, keys["merchant"], doc)
    assert (again["state"], again["captured"], again["duplicates"]) == ("succeeded", EVENTS - recorded, recorded)
    api_env.wait_indexed()
    assert on_chain(api_env, epcs) == [2] * EVENTS


def test_a_job_whose_process_died_before_sending_is_failed_with_nothing_recorded(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    """A job opened by a process that never ran it (killed between the answer and the work): no claim, nothing
    on-chain; the reaper fails it with a sentence, and the document is then captured whole."""
    epcs = [new_epc() for _ in range(2)]
    doc = document(commissioning(epcs, merchant=merchant_of(api_env)))
    raw = json.dumps(doc).encode()
    capture_id = jobs.open_job(api_env.store, key_id=0, actor=api_env.accounts[MERCHANT], raw=raw)
    lease.heartbeat.discard(capture_id)  # as if its process were gone: no more heartbeats
    time.sleep(1.2)
    assert jobs.reap_abandoned(context_of(api_env, lease_s=1.0)) == [capture_id]
    failed = capture_jobs.job(api_env.store, capture_id)
    assert failed is not None and (failed.state, failed.captured) == ("failed", 0)
    [error] = failed.errors
    assert "stopped before it finished" in error["message"] and "send the same document again" in error["message"]
    assert capture(client, keys["manufacturer"], doc)["captured"] == 1
    # The reaped job no longer holds the account's turn: its later captures run.
    later = capture(client, keys["merchant"], document(event(epcs, minutes=10)))
    assert (later["state"], later["captured"]) == ("succeeded", 1), later


@pytest.mark.parametrize("lease", [14.0, 3601.0])
def test_the_lease_setting_is_bounded(lease: float) -> None:
    from pydantic import ValidationError

    from ledger_service.settings import Settings

    with pytest.raises(ValidationError, match="epcis_capture_lease_s"):
        Settings(_env_file=None, epcis_capture_lease_s=lease)  # type: ignore[call-arg]


def test_a_job_taken_over_while_alive_stops_before_sending(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its heartbeat lapsed (say the database was away) and another process took the job over: the owner sends
    nothing more, so it cannot record what the other process released."""
    epcs = [new_epc() for _ in range(2)]
    real_build = ledger_tx.build_transactions  # what jobs calls

    def taken_over_meanwhile(*args: object, **kwargs: object) -> object:
        built = real_build(*args, **kwargs)  # type: ignore[arg-type]
        with api_env.store.engine.begin() as conn:
            conn.execute(update(tables.capture_jobs).values(owner="elsewhere:1:beef"))
        return built

    monkeypatch.setattr(jobs, "build_transactions", taken_over_meanwhile)
    answer = client.post(
        "/v1/epcis/capture",
        content=body(document(commissioning(epcs, merchant=merchant_of(api_env)))),
        headers={"Authorization": f"Bearer {keys['manufacturer']}", "Content-Type": "application/ld+json"},
    )
    capture_id = answer.json()["captureID"]
    deadline = time.monotonic() + 60
    while (job := capture_jobs.job(api_env.store, capture_id)) is not None and job.owner != "elsewhere:1:beef":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queue = lease.turns._queues[api_env.accounts[MANUFACTURER].lower()]
    while capture_id in queue:  # until the owner's run ended
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job = capture_jobs.job(api_env.store, capture_id)
    api_env.wait_indexed()
    assert on_chain(api_env, epcs) == [0, 0]
    assert job is not None and job.state == "running"  # the job is the other process's to finish now
    with api_env.store.engine.begin() as conn:  # the other process's part, for the tests after this one
        conn.execute(
            update(tables.capture_jobs).where(tables.capture_jobs.c.capture_id == capture_id).values(state="failed")
        )


def test_a_live_jobs_heartbeat_keeps_it_from_being_reaped(api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(lease, "heartbeat", lease.Heartbeat())  # one beating at that pace from the start
    actor = api_env.accounts[MERCHANT]
    capture_id = jobs.open_job(api_env.store, key_id=0, actor=actor, raw=b"{}")
    try:
        time.sleep(1.5)  # longer than the lease below: only the heartbeats keep the job
        job = capture_jobs.job(api_env.store, capture_id)
        assert (
            job is not None
            and job.heartbeat_at is not None
            and not jobs.is_abandoned(context_of(api_env, lease_s=1.0), job)
        )
        assert capture_id not in jobs.reap_abandoned(context_of(api_env, lease_s=1.0))
    finally:
        lease.heartbeat.discard(capture_id)
        lease.turns.leave(actor, capture_id)
        with api_env.store.engine.begin() as conn:
            conn.execute(
                update(tables.capture_jobs).where(tables.capture_jobs.c.capture_id == capture_id).values(state="failed")
            )
