"""Carrier webhooks: a signed "in transit" delivery to the fast refund paid on-chain and visible in the index,
against the carrier's API-key scan (``POST /v1/returns/{id}/scans``) of the same run.

What it measures, on a fresh local anvil with the contracts, an SQLite index kept current by ``ledger-indexer
follow`` and ``ledger-api`` (one worker), all on this machine:

1. setup (not timed): a fast-refund policy, then ``--returns`` items registered, sold, delivered and returned
   (approved at once) through the API, each with its label fetched (which creates its shipment and tracking
   number with the local carrier);
2. for each return, alternately: the local carrier's signed webhook with one ``in_transit`` event (as
   ``ledger-carrier`` sends it), or the reference, the carrier's ``POST /v1/returns/{id}/scans`` with its API
   key; the clock runs from the POST until ``GET /v1/returns/{id}`` shows the return settled with its payout:
   received -> verified and recorded -> on-chain (refund paid) -> indexed -> answered. A random pause before
   each puts the POST at a random phase of the indexer's polling;
3. each webhook is then delivered again with a new delivery id: recorded as a duplicate, nothing sent on-chain.

Target: webhook to payout visible p95 <= 2 s (the chain-and-index part of the issue's end-to-end target; the
consumer's notification after it is the notification worker's). The ratio to the reference says what the
signature, the event records and the chain-state read add to a scan.

    .venv/bin/python bench/carriers.py [--returns 200]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from api_eligibility import api_server, indexer_follow, ledger_env  # noqa: E402
from common import SetupError, percentile, run_in_workdir, say, start_chain, table, verdict  # noqa: E402
from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from ledger_service.access import Role, create_api_key  # noqa: E402
from ledger_service.logistics.local import LocalCarrier  # noqa: E402
from ledger_service.settings import DEV_CARRIER_SECRET  # noqa: E402
from ledger_service.store import Store  # noqa: E402
from tests.api.flows import POLICY  # noqa: E402  (window 30 days, fee 10%, fast refund without cap)
from tests.support.activity import write_manifest  # noqa: E402
from tests.support.chain import CARRIER, MANUFACTURER, MERCHANT, Anvil, Deployed, deploy_all  # noqa: E402

TARGET_P95_S = 2.0
TIMEOUT_S = 30.0
PRICE = 50_000_000
LOCAL = LocalCarrier(name="local", webhook_secret=DEV_CARRIER_SECRET)


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise SetupError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else None


def prepare(
    client: httpx.Client,
    deployed: Deployed,
    keys: dict[str, str],
    count: int,
    *,
    sale_extra: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """``count`` approved fast-refund returns with their labels fetched: (return id, tracking number); each sale
    with ``sale_extra`` (e.g. the consumer's e-mail address)."""
    merchant = {"Authorization": f"Bearer {keys['merchant']}"}
    carrier = {"Authorization": f"Bearer {keys['carrier']}"}
    _ok(client.post("/v1/merchants/me/policy?wait=true", headers=merchant, json=POLICY), "publishing the policy")
    ledger = deployed.ledger.functions
    prepared: list[tuple[str, str]] = []
    for n in range(count):
        uri = f"urn:epc:id:sgtin:0614141.107346.{n}-{secrets.token_hex(3)}"
        tx = ledger.registerItem(uri, 10614141007346, deployed.accounts[MERCHANT], b"\x22" * 32, b"\0" * 32).transact(
            {"from": deployed.accounts[MANUFACTURER]}
        )
        deployed.w3.eth.wait_for_transaction_receipt(tx)
        item = "0x" + Web3.keccak(text=uri).hex().removeprefix("0x")
        sale = {
            "item_id": item,
            "consumer": Account.create().address,
            "price": str(PRICE),
            "order_ref": f"b-{n}",
            **(sale_extra or {}),
        }
        token = _ok(client.post("/v1/sales?wait=true", headers=merchant, json=sale), "a sale")["return_token"]
        _ok(client.post(f"/v1/items/{item}/delivery?wait=true", headers=carrier, json={}), "a delivery")
        consumer = {"Authorization": f"ReturnToken {token}"}
        decision = _ok(
            client.post("/v1/returns?wait=true", headers=consumer, json={"reason_code": "damaged"}), "a return"
        )
        if decision["outcome"] != "approve":
            raise SetupError(f"a return was not approved: {decision}")
        rma = decision["return_id"]
        _ok(client.get(f"/v1/returns/{rma}/label", headers=consumer), "a label")
        number = _ok(client.get(f"/v1/returns/{rma}/tracking", headers=merchant), "the tracking")["tracking_number"]
        prepared.append((rma, number))
        if (n + 1) % 50 == 0:
            say(f"   {n + 1} returns ready")
    return prepared


def webhook(client: httpx.Client, number: str) -> httpx.Response:
    """A new delivery of the shipment's in-transit event (its event id is the same each time: one event)."""
    body = json.dumps(
        {
            "events": [
                {
                    "id": f"evt_transit_{number}",
                    "tracking_number": number,
                    "status": "in_transit",
                    "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            ]
        }
    ).encode()
    headers = LOCAL.sign(delivery_id=f"msg_{secrets.token_hex(12)}", timestamp=int(time.time()), body=body)
    return client.post(
        "/v1/carriers/local/webhooks", content=body, headers={**headers, "content-type": "application/json"}
    )


def measure(client: httpx.Client, keys: dict[str, str], returns: list[tuple[str, str]]) -> dict[str, Any]:
    """Alternately the webhook and the reference scan; each until the payout is visible."""
    times: dict[str, list[float]] = {"webhook": [], "scan": []}
    posts: dict[str, list[float]] = {"webhook": [], "scan": []}
    failures: list[str] = []
    auditor = {"Authorization": f"Bearer {keys['auditor']}"}
    rng = random.Random(11)
    for n, (rma, number) in enumerate(returns):
        kind = "webhook" if n % 2 == 0 else "scan"
        time.sleep(rng.uniform(0.05, 0.3))
        t0 = time.perf_counter()
        if kind == "webhook":
            answer = webhook(client, number)
        else:
            answer = client.post(
                f"/v1/returns/{rma}/scans",
                json={"kind": "in_transit"},
                headers={"Authorization": f"Bearer {keys['carrier']}"},
            )
        posts[kind].append(time.perf_counter() - t0)
        if answer.status_code != 200:
            failures.append(f"{kind} {rma}: HTTP {answer.status_code} {answer.text[:200]}")
            continue
        while True:
            seen = client.get(f"/v1/returns/{rma}", headers=auditor)
            if seen.status_code == 200 and seen.json().get("settled") and seen.json().get("payout"):
                times[kind].append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > TIMEOUT_S:
                failures.append(f"{kind} {rma}: no payout visible after {TIMEOUT_S:g} s")
                break
            time.sleep(0.005)
    figures: dict[str, Any] = {"failed": len(failures), "failures": failures[:5]}
    for kind in ("webhook", "scan"):
        values = sorted(times[kind])
        figures[kind] = {
            "timed": len(values),
            "p50_s": round(statistics.median(values), 3) if values else None,
            "p95_s": round(percentile(values, 0.95), 3) if values else None,
            "max_s": round(values[-1], 3) if values else None,
            "post_p50_s": round(statistics.median(posts[kind]), 3) if posts[kind] else None,
        }
    return figures


def duplicates(client: httpx.Client, returns: list[tuple[str, str]]) -> dict[str, Any]:
    """Each webhooked return's event again, in a new delivery: outcomes and on-chain steps."""
    outcomes: dict[str, int] = {}
    steps = 0
    t0 = time.perf_counter()
    for _, number in returns[::2]:
        body = webhook(client, number).json()
        for event in body.get("events", []):
            outcomes[event["outcome"]] = outcomes.get(event["outcome"], 0) + 1
        steps += sum(1 for step in body.get("steps", []) if step.get("tx_hash"))
    sent = len(returns[::2])
    return {
        "deliveries": sent,
        "outcomes": outcomes,
        "steps_sent": steps,
        "mean_s": round((time.perf_counter() - t0) / max(sent, 1), 4),
    }


def deploy_with_keys(anvil: Anvil, workdir: Path) -> tuple[Deployed, dict[str, str], dict[str, str]]:
    """The contracts on ``anvil``, the services' environment (an SQLite index in ``workdir``) and API keys of a
    merchant, the carrier and an auditor."""
    deployed = deploy_all(anvil)
    manifest = write_manifest(deployed, workdir / "deployments" / f"{deployed.w3.eth.chain_id}.json")
    database = workdir / "index.sqlite3"
    env = ledger_env(anvil=anvil, database=database, manifest=manifest)
    env["LEDGER_DOCUMENTS_DIR"] = str(workdir / "documents")
    env["LEDGER_WAIT_TIMEOUT_S"] = "60"
    with Store.open(f"sqlite:///{database}") as store:
        keys = {
            "merchant": create_api_key(
                store=store, role=Role.MERCHANT, name="bench", actor_address=deployed.accounts[MERCHANT]
            ).plaintext,
            "carrier": create_api_key(
                store=store, role=Role.CARRIER, name="bench", actor_address=deployed.accounts[CARRIER]
            ).plaintext,
            "auditor": create_api_key(store=store, role=Role.AUDITOR, name="bench").plaintext,
        }
    return deployed, env, keys


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    say(f"bench/carriers.py: {args.returns} fast-refund returns, webhook vs API-key scan, interleaved")
    anvil = start_chain()
    try:
        deployed, env, keys = deploy_with_keys(anvil, workdir)
        with (
            indexer_follow(env, workdir / "indexer.log"),
            api_server(env, workdir / "api.log") as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            say("1. setup: returns approved, labels fetched (shipments created)")
            returns = prepare(client, deployed, keys, args.returns)
            say("2. in transit: signed webhook vs API-key scan, each until the payout is visible")
            figures = measure(client, keys, returns)
            say("3. the webhooks' events again, in new deliveries")
            figures["duplicates"] = duplicates(client, returns)
    finally:
        anvil.stop()
    web, scan = figures["webhook"], figures["scan"]
    figures["returns"] = args.returns
    figures["ratio_p95"] = round(web["p95_s"] / scan["p95_s"], 2) if web["p95_s"] and scan["p95_s"] else None
    return figures


def print_table(f: dict[str, Any]) -> None:
    web, scan, dup = f["webhook"], f["scan"], f["duplicates"]
    rows = [
        ("figure", "measured", "target", ""),
        (f"webhook -> payout visible, p50 / p95 / max ({web['timed']} returns)",
         f"{web['p50_s']} / {web['p95_s']} / {web['max_s']} s", f"p95 <= {TARGET_P95_S:g} s",
         verdict(web["p95_s"] is not None and web["p95_s"] <= TARGET_P95_S)),
        (f"reference: API-key scan -> payout visible, p50 / p95 / max ({scan['timed']})",
         f"{scan['p50_s']} / {scan['p95_s']} / {scan['max_s']} s", "", ""),
        ("webhook p95 / scan p95", f"{f['ratio_p95']}x", "", ""),
        ("POST answered, p50: webhook / scan", f"{web['post_p50_s']} / {scan['post_p50_s']} s", "", ""),
        (f"duplicate events in new deliveries ({dup['deliveries']})",
         f"{dup['outcomes']}, {dup['steps_sent']} on-chain", "0 on-chain", verdict(dup["steps_sent"] == 0)),
        ("failures", str(f["failed"]), "0", verdict(f["failed"] == 0)),
    ]  # fmt: skip
    for line in table(rows, align="lrrl"):
        say(line)
    for failure in f["failures"]:
        say(f"  {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--returns", type=int, default=200, help="fast-refund returns (half webhook, half scan)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (index, logs)")
    args = parser.parse_args()
    if args.returns < 2:
        parser.error("--returns must be at least 2")
    return run_in_workdir("bench/carriers.py", lambda workdir: run(args, workdir), keep=args.keep, report=print_table)


if __name__ == "__main__":
    sys.exit(main())
