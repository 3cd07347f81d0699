"""Demo data through the REST API, and the demo API keys (service venv; called by scripts/run.sh).

Creates one API key per demo actor (kept in var/demo-keys.json, a local
development file: the index stores only hashes), then, once, drives the API as
a merchant, carrier and consumers would: publishes a policy version with its
full terms, sells two in-stock demo items with return tokens, and requests
returns that end approved (escrow funded, RMA issued), rejected (not delivered
yet) and queued for the merchant's review; the approved one's label is written
to var/ (its Code 128 the local carrier's tracking number), the parcel is scanned
through the carrier simulator, ledger-carrier (signed webhooks: fast refund, then
received), and inspected with an uploaded photo as the report, so its item's
history references a document. Then, once, the exchange stories of
scripts/demo_exchanges.py. Prints where to look, including how to
verify the item and the return (history, consumer check, independent verifier).

Usage: .venv/bin/python scripts/demo_api.py API_URL
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

from ledger_service.access import Role, create_api_key, verify_api_key
from ledger_service.core.hashchain import item_id
from ledger_service.errors import LedgerError
from ledger_service.logistics.cli import main as carrier_simulator
from ledger_service.settings import Settings, get_settings
from ledger_service.store import Store

ROOT = Path(__file__).resolve().parents[1]
KEYS_FILE = ROOT / "var" / "demo-keys.json"
DONE_FILE = ROOT / "var" / "demo-api.json"
PHOTO_FILE = ROOT / "var" / "demo-inspection.png"
LABEL_FILE = ROOT / "var" / "demo-label-1005.pdf"
# scripts/demo_sinks.py's receivers (started by run.sh): the webhook journal, its secret, the e-mails
WEBHOOKS_DIR = ROOT / "var" / "webhooks"
MAIL_DIR = ROOT / "var" / "mail"
BOOTS_URI = "urn:epc:id:sgtin:0614141.107346.1005"
# anvil's well-known accounts, as in scripts/deploy-config.local.json (local chain only)
ACTORS = {
    "manufacturer": ("manufacturer", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
    "merchant": ("merchant", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
    "merchant2": ("merchant", "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"),
    "carrier": ("carrier", "0x90F79bf6EB2c4f870365E785982E1f101E93b906"),
    "inspector": ("inspector", "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
    "arbiter": ("arbiter", "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"),
    "auditor": ("auditor", None),
    "admin": ("admin", None),
}
CONSUMER_1 = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
CONSUMER_2 = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
# the demo consumers' e-mail addresses (off-chain only; example.com is reserved for examples)
EMAILS = {CONSUMER_1: ("consumer1@example.com", "en"), CONSUMER_2: ("consumer2@example.com", "zh")}
# what the flows below make ledger-notify send at least: merchant 1's return of 1005 end to end, merchant 2's
# two requests (one refused); e-mail for every type but return.requested
RETURN_TYPES = (
    "return.approved",
    "return.label_ready",
    "return.in_transit",
    "return.refund_paid",
    "return.delivered",
    "return.inspected",
    "return.closed",
)
EXPECTED_WEBHOOKS = len(RETURN_TYPES) + 1 + 3
EXPECTED_MAILS = len(RETURN_TYPES) + 1
POLICY = {
    "window_days": 30,
    "restocking_fee_bps": 1000,
    "fast_refund": True,
    "fast_refund_max_value": "500000000",
    "fast_refund_max_returns_90d": 3,
    "ship_by_days": 7,
    "inspect_by_days": 14,
    "dispute_window_days": 7,
    "non_returnable_categories": ["underwear", "gift_cards"],
    "accepted_reasons": ["wrong_size", "damaged", "not_as_described", "changed_mind"],
    "manual_review_reasons": ["damaged"],
    "title": "Demo Outfitters returns",
    "text": "Return unworn items within 30 days of delivery; refunds at the first carrier scan up to 500 dUSD.",
}


def write_private(path: Path, text: str) -> None:
    """Writes ``path`` readable by its owner only (0600 from its creation on: the file holds keys or tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file made before with a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def ensure_keys(store: Store) -> dict[str, str]:
    """The demo keys from var/demo-keys.json if they still verify, else new ones."""
    keys: dict[str, str] = {}
    if KEYS_FILE.exists():
        keys = json.loads(KEYS_FILE.read_text())
    for name, (role, address) in ACTORS.items():
        try:
            verify_api_key(store=store, presented=keys.get(name, ""))
        except LedgerError:
            created = create_api_key(store=store, role=Role(role), name=f"demo {name}", actor_address=address)
            keys[name] = created.plaintext
    write_private(KEYS_FILE, json.dumps(keys, indent=2) + "\n")
    return keys


def wait_for_api(client: httpx.Client, timeout: float = 30.0) -> bool:
    """Whether the API answered within ``timeout`` seconds (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get("/openapi.json").raise_for_status()
            return True
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)


def call(client: httpx.Client, method: str, path: str, auth: str, body: Any = None) -> Any:
    response = client.request(method, path, json=body, headers={"Authorization": auth}, params={"wait": "true"})
    if response.status_code >= 400:
        raise SystemExit(f"error: {method} {path} -> {response.status_code}: {response.text}")
    return response.json()


def demo_photo() -> bytes:
    """A small PNG (a 32x24 tan swatch: "the boots, unworn") made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width, height = 32, 24
    rows = b"".join(b"\x00" + bytes((196, 160, 110)) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def upload(client: httpx.Client, auth: str, name: str, data: bytes, content_type: str) -> Any:
    response = client.post("/v1/documents", files={"file": (name, data, content_type)}, headers={"Authorization": auth})
    if response.status_code >= 400:
        raise SystemExit(f"error: POST /v1/documents -> {response.status_code}: {response.text}")
    return response.json()


def run_flows(client: httpx.Client, keys: dict[str, str]) -> dict[str, Any]:
    merchant, merchant2 = f"Bearer {keys['merchant']}", f"Bearer {keys['merchant2']}"
    carrier, inspector = f"Bearer {keys['carrier']}", f"Bearer {keys['inspector']}"
    results: dict[str, Any] = {}
    for auth in (merchant, merchant2):
        version = call(client, "POST", "/v1/merchants/me/policy", auth, POLICY)
        print(f"  policy version {version.get('version')} published (tx {version['tx_hash'][:12]}...)")
    boots = "0x" + item_id(BOOTS_URI).hex()
    jacket = "0x" + item_id("urn:epc:id:sgtin:0614141.107346.1006").hex()
    sale = call(
        client,
        "POST",
        "/v1/sales",
        merchant,
        {
            "item_id": boots,
            "consumer": CONSUMER_1,
            "price": "45000000",
            "order_ref": "DEMO-1005",
            "category": "shoes",
            "consumer_email": EMAILS[CONSUMER_1][0],
            "consumer_lang": EMAILS[CONSUMER_1][1],
        },
    )
    token_boots = sale["return_token"]
    print("  item 1005 sold to consumer 1 for 45 dUSD (return token issued)")
    call(client, "POST", f"/v1/items/{boots}/delivery", carrier, {})
    print("  item 1005 delivered by the carrier: its 30-day window is open")
    approved = call(client, "POST", "/v1/returns", f"ReturnToken {token_boots}", {"reason_code": "wrong_size"})
    print(f"  consumer 1 asks to return 1005 (wrong size): {approved['outcome']}, RMA {approved.get('label_code')}")
    rma = approved["return_id"]
    label = client.get(f"/v1/returns/{rma}/label", headers={"Authorization": f"ReturnToken {token_boots}"})
    if label.status_code != 200:
        raise SystemExit(f"error: GET /v1/returns/{rma}/label -> {label.status_code}: {label.text}")
    LABEL_FILE.write_bytes(label.content)
    tracking = call(client, "GET", f"/v1/returns/{rma}/tracking", merchant)["tracking_number"]
    print(f"  consumer 1 prints the label ({LABEL_FILE.relative_to(ROOT)}): tracking number {tracking}")
    api_url = str(client.base_url).rstrip("/")
    for status, where in (("in_transit", "Shanghai drop-off point"), ("delivered", "merchant's returns dept.")):
        command = ["scan", tracking, status, "--location", where, "--api-url", api_url]
        print(f"  .venv/bin/ledger-carrier {' '.join(command[:3])} --location '{where}'")
        if carrier_simulator(command, client=client) != 0:
            raise SystemExit(f"error: the carrier simulator's {status} scan was refused")
    print("  the carrier's first scan paid consumer 1's fast refund at once; the parcel reached the merchant")
    photo = demo_photo()
    PHOTO_FILE.parent.mkdir(parents=True, exist_ok=True)
    PHOTO_FILE.write_bytes(photo)
    document = upload(client, inspector, "inspection-1005.png", photo, "image/png")
    call(
        client,
        "POST",
        f"/v1/returns/{rma}/inspection",
        inspector,
        {"passed": True, "grade": "A", "notes": "unworn, tags attached", "report_digest": document["cid"]},
    )
    print(f"  the inspector uploads a photo (CID {document['cid']}) and passes the inspection with it as report")
    results["verify"] = {
        "item_id": boots,
        "uri": BOOTS_URI,
        "label_code": approved.get("label_code"),
        "document": document["cid"],
        "return_id": rma,
        "tracking_number": tracking,
    }
    sale = call(
        client,
        "POST",
        "/v1/sales",
        merchant2,
        {
            "item_id": jacket,
            "consumer": CONSUMER_2,
            "price": "120000000",
            "order_ref": "DEMO-1006",
            "category": "outerwear",
            "consumer_email": EMAILS[CONSUMER_2][0],
            "consumer_lang": EMAILS[CONSUMER_2][1],
        },
    )
    token_jacket = sale["return_token"]
    print("  item 1006 sold by merchant 2 to consumer 2 for 120 dUSD")
    rejected = call(client, "POST", "/v1/returns", f"ReturnToken {token_jacket}", {"reason_code": "changed_mind"})
    reasons = "; ".join(r["message"] for r in rejected.get("reasons", []))
    print(f"  consumer 2 asks to return 1006 before delivery: {rejected['outcome']} ({reasons})")
    call(client, "POST", f"/v1/items/{jacket}/delivery", carrier, {})
    queued = call(
        client,
        "POST",
        "/v1/returns",
        f"ReturnToken {token_jacket}",
        {"reason_code": "damaged", "comment": "seam torn on arrival"},
    )
    print(f"  after delivery, consumer 2 reports it damaged: {queued['outcome']} (merchant 2's queue)")
    results["return_tokens"] = {"1005 (consumer 1)": token_boots, "1006 (consumer 2)": token_jacket}
    results["returns"] = {"approved": approved.get("return_id"), "queued": queued["request_id"]}
    return results


def register_webhooks(client: httpx.Client, keys: dict[str, str], url: str, secret: str) -> None:
    """Registers ``url`` (the demo receiver) for every event of both demo merchants, once: a second run finds it."""
    for name in ("merchant", "merchant2"):
        auth = f"Bearer {keys[name]}"
        mine = call(client, "GET", "/v1/webhooks", auth)
        if any(endpoint["url"] == url for endpoint in mine["data"]):
            continue
        call(client, "POST", "/v1/webhooks", auth, {"url": url, "secret": secret})
        print(f"  {name}'s webhook registered: {url} (every event type)")


def notification_counts(webhooks_dir: Path = WEBHOOKS_DIR, mail_dir: Path = MAIL_DIR) -> tuple[int, int]:
    """(distinct webhook ids received, e-mails received) so far."""
    journal = webhooks_dir / "received.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    ids = {json.loads(line)["webhook_id"] for line in lines if line.strip()}
    return len(ids), len(list(mail_dir.glob("*.eml"))) if mail_dir.exists() else 0


def wait_for_notifications(webhooks: int, mails: int, timeout: float = 30.0) -> tuple[int, int]:
    """The counts once at least ``webhooks`` and ``mails`` arrived, or at ``timeout`` (ledger-notify sends
    asynchronously, after the indexer saw each step)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = notification_counts()
        if (counts[0] >= webhooks and counts[1] >= mails) or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


def setup(usage: str) -> tuple[str, Settings, dict[str, str]] | None:
    """(the API's URL from the command line, the settings, the demo keys); None after printing ``usage`` when
    the command line is not one URL."""
    if len(sys.argv) != 2:
        print(usage, file=sys.stderr)
        return None
    settings = get_settings()
    with Store.open(settings.database_url) as store:
        keys = ensure_keys(store)
    return sys.argv[1].rstrip("/"), settings, keys


def save(done: dict[str, Any]) -> None:
    """What the flows recorded (it holds the consumers' tokens: private)."""
    write_private(DONE_FILE, json.dumps(done, indent=2) + "\n")


def main() -> int:
    found = setup(__doc__.strip().splitlines()[-1])
    if found is None:
        return 2
    url, settings, keys = found
    with httpx.Client(base_url=url, timeout=60) as client:
        if not wait_for_api(client):
            print(f"error: the API at {url} did not answer within 30 s (see var/api.log)", file=sys.stderr)
            return 1
        hook_url = os.environ.get("LEDGER_DEMO_WEBHOOK_URL")
        if hook_url:  # run.sh started the receiver (scripts/demo_sinks.py), which made the secret
            secret = (WEBHOOKS_DIR / "secret").read_text().strip()
            register_webhooks(client, keys, hook_url, secret)
        done: dict[str, Any] = json.loads(DONE_FILE.read_text()) if DONE_FILE.exists() else {}
        if DONE_FILE.exists():
            DONE_FILE.chmod(0o600)  # a file written before it was made private
        if done.get("deployment") != (ROOT / "deployments" / "31337.json").read_text():
            print("recording API demo flows")
            done = {"deployment": (ROOT / "deployments" / "31337.json").read_text(), **run_flows(client, keys)}
            save(done)
        else:
            print("API demo flows already recorded")
        if "exchanges" not in done:  # also for a demo recorded before the exchange stories existed
            from demo_exchanges import run_exchange_flows  # it imports this module's helpers

            print("recording the exchange demo: an instant exchange for the next size, a swapped unit caught")
            done["exchanges"] = run_exchange_flows(client, keys)
            save(done)
    print("\nDemo API keys (local development only; also in var/demo-keys.json):")
    for name, key in keys.items():
        print(f"  {name:<10} Authorization: Bearer {key}")
    print("Consumer return tokens (Authorization: ReturnToken <token>):")
    for name, token in {**done.get("return_tokens", {}), **done.get("exchanges", {}).get("tokens", {})}.items():
        print(f"  {name:<18} {token}")
    print(f"\nReturns portal (web pages, zh/en): {url}/   verify page: {url}/verify")
    print("Ready-made consumer links (as in the order e-mail; they open the purchase in the portal):")
    for name, token in done.get("return_tokens", {}).items():
        print(f"  {name:<18} {url}/?token={token}")
    if hook_url:
        webhooks, mails = wait_for_notifications(EXPECTED_WEBHOOKS, EXPECTED_MAILS)
        print("\nNotifications delivered by ledger-notify (log: var/notify.log):")
        print(f"  merchant webhooks: {webhooks:>3} received at {hook_url}, signatures checked")
        print(f"                     -> {(WEBHOOKS_DIR / 'received.jsonl').relative_to(ROOT)} (one JSON line each)")
        print(f"  consumer e-mails:  {mails:>3} received by the local SMTP sink -> {MAIL_DIR.relative_to(ROOT)}/*.eml")
        if webhooks < EXPECTED_WEBHOOKS or mails < EXPECTED_MAILS:
            print(
                f"  warning: expected at least {EXPECTED_WEBHOOKS} webhooks and {EXPECTED_MAILS} e-mails by now; "
                "see var/notify.log and var/sinks.log",
                file=sys.stderr,
            )
    exchanged = done.get("exchanges")
    if exchanged:
        print("\nExchanges (docs/exchanges.md):")
        print(f"  the instant exchange with its timeline: curl -H 'Authorization: Bearer {keys['merchant']}' \\")
        print(f"      {url}/v1/exchanges/{exchanged['exchange_id']}")
        print(f"  the return whose parcel held another unit: {url}/v1/verify/{exchanged['swapped_return']}")
        tokens = list(exchanged.get("tokens", {}).values())
        if len(tokens) == 2:
            print(f"  in the portal: open {url}/?token={tokens[0]} then {url}/exchanges/{exchanged['exchange_id']}")
            print(f"                 open {url}/?token={tokens[1]} then {url}/returns/{exchanged['swapped_return']}")
        print(f"  in the merchant console: {url}/merchant/exchanges (sign in with the merchant key)")
    verify = done.get("verify")
    if verify:
        manifest = json.loads((ROOT / "deployments" / "31337.json").read_text())
        ledger = manifest["contracts"]["ProvenanceLedger"]["address"]
        settings_rpc = str(settings.rpc_url).rstrip("/")
        print("\nVerify it (demo item 1005 and its return):")
        print(f"  auditor, history + verdict: curl -H 'Authorization: Bearer {keys['auditor']}' \\")
        print(f"      {url}/v1/items/{verify['item_id']}/history   (?format=csv or ?format=epcis)")
        print(f"  consumer, public check:     {url}/v1/verify/{verify['uri']}   (page: {url}/verify/{verify['uri']})")
        print(f"  consumer, return label:     {url}/v1/verify/{verify['label_code']}")
        print(f"  inspection photo:           {url}/v1/documents/{verify['document']}   (= {PHOTO_FILE.name})")
        if verify.get("tracking_number"):
            print(f"  tracking (carrier + chain): curl -H 'Authorization: Bearer {keys['merchant']}' \\")
            print(f"      {url}/v1/returns/{verify['return_id']}/tracking   (label: var/{LABEL_FILE.name})")
            print(f"  carrier simulator:          .venv/bin/ledger-carrier scan {verify['tracking_number']} delivered")
            print("      (a signed webhook; sent again it is recorded once and moves nothing: see docs/carriers.md)")
        print("  without trusting us (chain only):")
        print(f"      .venv/bin/ledger-verify --rpc-url {settings_rpc} --ledger {ledger} \\")
        print(f"          {verify['uri']} --file var/{PHOTO_FILE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
