"""The service's one settings object, read from the environment and `.env`.

Every variable is prefixed ``LEDGER_`` (e.g. ``LEDGER_RPC_URL``). No other
module reads the environment.

Signing keys: the API signs each actor's transactions with the key of that
actor's on-chain account (``LEDGER_SIGNER_KEYS``, JSON ``{address: key}``) and
consumer actions with the relayer's key (``LEDGER_RELAYER_KEY``, the account
holding CONSUMER_AGENT_ROLE). In development both default to anvil's
well-known keys of the accounts in ``scripts/deploy-config.local.json``; with
``LEDGER_ENVIRONMENT=production`` any of anvil's well-known keys is refused.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger_service.core.networks import NetworkConfig, NetworkConfigError, load_network

ANVIL_ACCOUNTS: tuple[tuple[str, str], ...] = (
    (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ),
    (
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
    (
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    ),
    (
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    ),
    (
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    ),
    (
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    ),
    (
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    ),
    (
        "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    ),
    (
        "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    ),
    (
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    ),
)
"""anvil's default accounts (mnemonic "test test ... junk"): (address, private key) by index. Public
knowledge: anyone can sign with these keys, so they are for a local chain only."""

DEV_SIGNER_ACCOUNTS = (1, 2, 3, 4, 5, 8)
"""Indexes in :data:`ANVIL_ACCOUNTS` of scripts/deploy-config.local.json's actors: manufacturer, merchant,
carrier, inspector, arbiter, second merchant."""
DEV_RELAYER_ACCOUNT = 9
"""Index in :data:`ANVIL_ACCOUNTS` of the CONSUMER_AGENT_ROLE account of scripts/deploy-config.local.json."""

DEV_CARRIER_ACCOUNT = 3
"""Index in :data:`ANVIL_ACCOUNTS` of scripts/deploy-config.local.json's carrier (the local carrier's account)."""
DEV_CARRIER_SECRET = "whsec_bG9jYWwtY2Fycmllci1kZXZlbG9wbWVudC1vbmx5"  # noqa: S105 (public, development only)
"""The local carrier's webhook secret in development (``whsec_`` + base64 of "local-carrier-development-only"):
public, like anvil's keys, so refused in production."""
CARRIER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"

DEV_WEBHOOK_SECRETS_KEY = "bWVyY2hhbnQtd2ViaG9vay1zZWNyZXRzLWRldi1vbmx5"  # public, development only
"""The development key sealing merchants' webhook secrets at rest (base64 of "merchant-webhook-secrets-dev-only"):
public, like anvil's keys, so refused in production."""
MIN_SECRETS_KEY_BYTES = 32

NETWORKS_DIR = Path(__file__).resolve().parent.parent / "networks"
"""The checkout's network files (networks/<name>.toml)."""

IDEMPOTENCY_LEASE_S = 300
"""A claimed Idempotency-Key whose request is still unfinished after this long (its process died) is taken over by a
retry; records live at least this long."""

_WELL_KNOWN_KEYS = frozenset(key[2:].lower() for _, key in ANVIL_ACCOUNTS)


def is_well_known_key(key: str) -> bool:
    """Whether ``key`` (hex, with or without 0x) is one of anvil's public development keys."""
    return key.lower().removeprefix("0x") in _WELL_KNOWN_KEYS


def _dev_signer_keys() -> dict[str, SecretStr]:
    return {ANVIL_ACCOUNTS[i][0]: SecretStr(ANVIL_ACCOUNTS[i][1]) for i in DEV_SIGNER_ACCOUNTS}


_WELL_KNOWN_OWNERS = {key[2:].lower(): address for address, key in ANVIL_ACCOUNTS}


def _address_of_key(key: str, where: str) -> str:
    known = _WELL_KNOWN_OWNERS.get(key.lower().removeprefix("0x"))
    if known is not None:  # anvil's published keys: no need to derive (saves ~1 s at every CLI start)
        return known
    from eth_account import Account  # imported when keys are given: ~0.5 s that most commands never need

    try:
        return str(Account.from_key(key).address)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: not a private key (expected 0x + 64 hex digits)") from None


class CarrierSettings(BaseModel):
    """One carrier the service takes tracking webhooks from (an entry of ``LEDGER_CARRIERS``)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    kind: Literal["local"] = Field(
        default="local", description="The adapter: local (tracking numbers we issue, scans from ledger-carrier)"
    )
    account: str = Field(
        description="The carrier's on-chain account (CARRIER_ROLE): its key in LEDGER_SIGNER_KEYS signs the scans "
        "its webhooks lead to"
    )
    webhook_secret: SecretStr = Field(
        description="The Standard Webhooks secret its deliveries are signed with: whsec_ + base64 of >= 16 bytes"
    )

    @field_validator("account")
    @classmethod
    def _account_is_address(cls, value: str) -> str:
        from eth_utils.address import is_address, to_checksum_address

        if not is_address(value):
            raise ValueError(f"{value!r} is not an account address (0x + 40 hex digits)")
        return str(to_checksum_address(value))

    @field_validator("webhook_secret")
    @classmethod
    def _secret_decodes(cls, value: SecretStr) -> SecretStr:
        import base64
        import binascii

        text = value.get_secret_value().removeprefix("whsec_")
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a carrier's webhook_secret must be whsec_ followed by base64") from None
        if len(raw) < 16:
            raise ValueError("a carrier's webhook_secret must hold at least 16 bytes (24 base64 characters)")
        return value


def _dev_carriers() -> dict[str, CarrierSettings]:
    return {
        "local": CarrierSettings(
            account=ANVIL_ACCOUNTS[DEV_CARRIER_ACCOUNT][0], webhook_secret=SecretStr(DEV_CARRIER_SECRET)
        )
    }


class Settings(BaseSettings):
    """Typed configuration with defaults for a local development run (anvil + SQLite)."""

    # hide_input_in_errors: a validation error must never print the keys it was given
    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "production"] = "development"
    network: str = Field(
        default="anvil",
        description="The network the service runs on: the file networks/<name>.toml (chain id, RPC URLs, "
        "confirmations, fee policy, role holders); LEDGER_RPC_URL(S) and LEDGER_FINALITY_DEPTH, when set, take "
        "precedence over its values",
    )
    networks_dir: Path = Field(default=NETWORKS_DIR, description="Folder of the network files")
    rpc_url: AnyHttpUrl = Field(default=AnyHttpUrl("http://127.0.0.1:8545"), description="JSON-RPC URL of the chain")
    database_url: str = Field(
        default="sqlite:///var/ledger.sqlite3",
        description="SQLAlchemy URL of the index: sqlite:///path or postgresql+psycopg://...",
    )
    database_pool_size: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="PostgreSQL connections each ledger-api worker keeps open to the index: its requests use that "
        "many at once without opening a new one (a new server process each, which costs the server more than a "
        "read); past it up to 10 more are opened for one use. The server's max_connections must hold this plus 10 "
        "for each worker of every replica, plus 15 for each other process",
    )
    deployments_dir: Path = Field(default=Path("deployments"), description="Folder of <chainId>.json manifests")
    deployment_file: Path | None = Field(default=None, description="Manifest to use instead of <chainId>.json")
    artifacts_dir: Path = Field(default=Path("build/contracts"), description="Compiled contract artifacts")
    finality_depth: int = Field(default=12, ge=1, le=10_000, description="Blocks after which a block is final")
    # completeness of the node's eth_getLogs answers (ledger_service/indexer/completeness.py)
    rpc_urls: Annotated[list[AnyHttpUrl], NoDecode] = Field(
        default_factory=list,
        description="JSON-RPC URLs of the chain, comma-separated or a JSON list: the first is LEDGER_RPC_URL "
        "unless that is set too; the next one is asked again when an answer of the first looks incomplete",
    )
    bloom_check: bool = Field(
        default=True,
        description="Check each fetched block's logsBloom for logs of our contracts that the answer lacks "
        "(fetches every block's header)",
    )
    reconcile: bool = Field(
        default=True,
        description="Compare each batch's items with the contract's itemOf at the batch's last block "
        "(one batched JSON-RPC request per batch)",
    )
    reconcile_window: int = Field(
        default=128,
        ge=0,
        le=1_000_000,
        description="Reconcile only batches ending at most this many blocks below the head: a full node keeps the "
        "state of about the last 128 blocks; older batches (most of a backfill) rely on the bloom and hash-chain "
        "checks (and the receipts proof when on); raise it against an archive node",
    )
    receipts_proof: bool = Field(
        default=False,
        description="Prove each block that may hold our logs with its receipts (eth_getBlockReceipts) against "
        "its receiptsRoot: nothing left out goes unseen there, at the cost of every receipt of those blocks",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(default=False, description="Log one JSON object per line instead of text")
    # ---- secrets: log file, idempotency records, return tokens, revocation (ledger_service/logs.py, access/)
    log_file: Path | None = Field(
        default=None, description="File the service logs to (created with mode 0600) instead of stderr"
    )
    idempotency_ttl_s: int = Field(
        default=24 * 3600,
        ge=IDEMPOTENCY_LEASE_S,
        le=30 * 24 * 3600,
        description="How long an Idempotency-Key is remembered (and its answer replayed), in seconds; older records "
        "are purged",
    )
    idempotency_purge_interval_s: float = Field(
        default=300.0, gt=0, le=24 * 3600, description="How often the API purges expired idempotency records, in s"
    )
    return_token_ttl_s: int = Field(
        default=730 * 24 * 3600,
        ge=3600,
        le=10 * 365 * 24 * 3600,
        description="How long a return token works after its sale, in seconds (default 730 days: longer than the "
        "longest return window a policy may set, 365 days, plus its ship-by, inspect-by and dispute periods, 90 "
        "days each, plus the delivery)",
    )
    analytics_refresh_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="How often each API worker folds new sales and returns into the analytics rollups, in "
        "seconds: the dashboards' figures are at most this old (a refresh reads only what changed)",
    )
    revocation_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=10.0,
        description="How often each API worker looks for revoked credentials, in seconds: a key revoked by "
        "`ledger-admin keys revoke` (or by another worker) is refused by every worker within this delay",
    )

    signer_keys: dict[str, SecretStr] = Field(
        default_factory=_dev_signer_keys,
        description="Private keys the API signs with, by checksummed address (env: JSON {address: key})",
    )
    relayer_key: SecretStr | None = Field(
        default=SecretStr(ANVIL_ACCOUNTS[DEV_RELAYER_ACCOUNT][1]),
        description="Key of the CONSUMER_AGENT_ROLE account that sends consumers' actions; none: no relaying",
    )
    signer_keystores: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(),
        description="Encrypted keystores (Web3 Secret Storage JSON, `ledger-keystore create`) of accounts the API "
        "signs with, beside LEDGER_SIGNER_KEYS (env: comma-separated paths or a JSON list); set: "
        "LEDGER_SIGNER_KEYS defaults to none",
    )
    relayer_keystore: Path | None = Field(
        default=None,
        description="Encrypted keystore of the CONSUMER_AGENT_ROLE account, instead of LEDGER_RELAYER_KEY (which "
        "then defaults to none)",
    )
    keystore_passphrase_file: Path | None = Field(
        default=None, description="File whose first line is the keystores' passphrase (readable by the service only)"
    )
    keystore_passphrase: SecretStr | None = Field(
        default=None, description="The keystores' passphrase, when not in LEDGER_KEYSTORE_PASSPHRASE_FILE"
    )
    # ---- carriers (ledger_service/logistics/)
    carriers: dict[str, CarrierSettings] = Field(
        default_factory=_dev_carriers,
        description="Carriers whose tracking webhooks POST /v1/carriers/{name}/webhooks takes, by name (env: JSON "
        '{"name": {"kind": "local", "account": "0x...", "webhook_secret": "whsec_..."}}); development: the local '
        "carrier with the deployment's carrier account and a public secret; production: none unless set",
    )
    carrier_webhook_max_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest carrier webhook body accepted, in bytes (413 above)",
    )
    # ---- sale tokens
    token_allowlist: tuple[str, ...] = Field(
        default=(),
        description="ERC-20 tokens sales may use besides the deployment's stablecoin, by address (env: JSON "
        "list); each must also answer decimals(), totalSupply(), balanceOf() and allowance() when a sale uses it",
    )
    api_key: SecretStr | None = Field(
        default=None, description="The API key ledger-capture sends (an actor's key: its account signs the events)"
    )
    api_host: str = Field(default="127.0.0.1", description="Interface the API listens on")
    api_port: int = Field(default=8000, ge=1, le=65_535, description="TCP port of the API")
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="Address people reach the service at, printed in label QR codes (unset: http://api_host:api_port)",
    )
    wait_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Longest a ?wait=true write waits for the indexer, in seconds"
    )
    documents_dir: Path = Field(
        default=Path("var/documents"), description="Folder of the embedded content-addressed document store"
    )
    ipfs_api_url: AnyHttpUrl | None = Field(
        default=None,
        description="Kubo node's HTTP RPC API (e.g. http://127.0.0.1:5001); set: documents go there, not to disk",
    )
    document_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024, description="Largest document accepted, in bytes"
    )
    document_content_types: tuple[str, ...] = Field(
        default=(
            "application/pdf",
            "image/jpeg",
            "image/png",
            "image/webp",
            "text/plain",
            "text/csv",
            "application/json",
        ),
        description="Media types POST /v1/documents accepts (env: JSON list)",
    )
    document_quota_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        le=1024**4,
        description="Bytes of new documents one credential (API key, or return token) may upload per UTC day",
    )
    verify_rate_limit: str = Field(
        default="60/minute",
        description="Requests per client address to the public /v1/verify endpoint ('limits' syntax, e.g. 60/minute)",
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of ledger-api, under a supervisor that replaces a dead one: 1 in development; "
        "in production about "
        "one per CPU core (each worker has its own caches: a revoked key stops working in every worker within "
        "LEDGER_REVOCATION_POLL_S; per-process rate limits count per worker)",
    )
    # Request limits, applied before any parsing or handler code (api.limits), and the proxies trusted for
    # X-Forwarded-For (api.main passes them to uvicorn).
    api_json_max_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest JSON request body accepted, in bytes (413 above; uploads have document_max_bytes)",
    )
    epcis_capture_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="Largest EPCIS document POST /v1/epcis/capture accepts, in bytes (413 above): a 1,000-event "
        "document with sensor data fits; split larger loads into several documents",
    )
    epcis_capture_max_events: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most events one captured EPCIS document may hold (422 above)"
    )
    epcis_capture_lease_s: float = Field(
        default=30.0,
        ge=15.0,
        le=3600.0,
        description="A running capture job whose process sent no heartbeat (every 5 s) for this long is taken for "
        "dead: reconciled with the chain and failed, so that its document can be sent again",
    )
    epcis_capture_batch_scans: bool = Field(
        default=False,
        description="EPCIS capture sends the events that may be batched (observations: a batchable bizStep and "
        "disposition with a read point; docs/batching.md) to ledger-batcher instead of a transaction each, when "
        "the deployment has a BatchAnchor and the service holds the capturing account's key. Off by default: a "
        "batched event is not an item event; the EPCIS query interface serves it once its batch is anchored and "
        "applied by the indexer, with its Merkle proof; turn it on where scan volume matters more",
    )
    api_json_max_depth: int = Field(
        default=32, ge=2, le=200, description="Deepest nesting of arrays and objects a JSON request body may have"
    )
    api_max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request head accepted (request line and headers), in bytes (431 above)",
    )
    api_max_headers: int = Field(default=100, ge=10, le=1000, description="Most request headers accepted (431 above)")
    api_eligibility_shortcut: bool = Field(
        default=True,
        description="Answer plain, cached-credential GET /v1/items/{id}/eligibility reads before FastAPI's routing "
        "(api/fastpath.py; same answers, less CPU); false: FastAPI answers every request",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Addresses or CIDR networks of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto "
        "are believed (env: comma-separated or a JSON list); empty: none, the client is the TCP peer",
    )
    verify_global_rate_limit: str = Field(
        default="20/second;600/minute",
        description="Requests to the public /v1/verify endpoint from all clients together, per worker process "
        "('limits' syntax), beside the per-address verify_rate_limit",
    )
    assistant_rate_limit: str = Field(
        default="30/minute",
        description="Messages per client address to the public POST /v1/assistant/messages ('limits' syntax)",
    )
    assistant_global_rate_limit: str = Field(
        default="20/second;600/minute",
        description="Messages to POST /v1/assistant/messages from all clients together, per worker process "
        "('limits' syntax), beside the per-address assistant_rate_limit",
    )

    # observability (ledger_service/metrics/, api/observability.py)
    metrics_dir: Path | None = Field(
        default=None,
        description="Folder where ledger-api's worker processes keep their Prometheus metrics (emptied at each "
        "start); unset: a new temporary folder per start",
    )
    indexer_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="TCP port on which `ledger-indexer follow` serves its Prometheus metrics at /metrics (unset: "
        "not served)",
    )
    batcher_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="TCP port on which `ledger-batcher` serves its Prometheus metrics at /metrics (unset: not served)",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface the indexer's and the batcher's metrics ports listen on"
    )
    ready_max_lag_blocks: int = Field(
        default=30,
        ge=0,
        le=1_000_000,
        description="/readyz answers 503 while the index is more than this many blocks behind the node",
    )
    ready_timeout_s: float = Field(
        default=2.0, gt=0, le=30, description="Longest /readyz waits for the database or the node, in seconds"
    )
    index_freshness_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often each API worker runs /readyz's checks for the X-Index-Block and X-Index-Stale headers",
    )

    # notifications out (ledger-notify, ledger_service/notify/)
    notify_retry_for_s: int = Field(
        default=86_400, ge=1, description="How long a failing delivery is retried before it is dead-lettered"
    )
    notify_backoff_base_s: float = Field(
        default=5.0, gt=0, description="First retry delay; each further one doubles, up to notify_backoff_cap_s"
    )
    notify_backoff_cap_s: float = Field(default=3600.0, gt=0, description="Longest delay between two retries")
    notify_poll_s: float = Field(default=0.2, gt=0, le=60, description="How often ledger-notify looks for work")
    notify_concurrency: int = Field(default=64, ge=1, le=4096, description="Deliveries in flight per worker")
    notify_per_target: int = Field(
        default=8, ge=1, le=1024, description="Deliveries in flight per webhook endpoint (a slow one cannot take all)"
    )
    notify_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Longest wait for a receiver's answer")
    notify_lease_s: int = Field(
        default=60,
        ge=1,
        description="How long a claimed delivery is another worker's; a worker killed mid-send leaves it due again "
        "then (keep it above notify_timeout_s)",
    )
    notify_window_notice_days: int = Field(
        default=3, ge=1, le=60, description="Days before a return window closes that the consumer is told"
    )
    notify_window_scan_s: float = Field(default=300.0, gt=0, description="Seconds between two return-window scans")
    batch_max_scans: int = Field(
        default=1000,
        ge=1,
        le=65_536,
        description="Scans in one anchored batch: ledger-batcher seals a batch when it has this many (at most "
        "65,536, BatchAnchor's limit)",
    )
    batch_seal_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Longest a scan waits in an open batch: ledger-batcher seals a batch this long after its first "
        "scan was acknowledged, full or not",
    )
    batch_poll_s: float = Field(default=0.2, gt=0, le=60, description="How often ledger-batcher looks for work")
    batch_give_up_refusals: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="Refusals of one batch's anchor by the BatchAnchor contract (a revert; a node that does not "
        "answer does not count) after which ledger-batcher gives up on the batch, once batch_give_up_s has passed "
        "since the first refusal too: the batch is marked failed with the reason and the later batches go on",
    )
    batch_give_up_s: float = Field(
        default=3600.0,
        ge=0,
        le=30 * 86_400,
        description="Shortest time, from a batch's first refusal by the contract, before ledger-batcher gives up on "
        "it (time to restore a revoked scanning role: the LedgerScanBatchStuck alert fires after 15 minutes)",
    )
    batch_document_wait_s: int = Field(
        default=86_400,
        ge=60,
        le=365 * 86_400,
        description="How long, by the chain's clock (the newest indexed block's time against the anchor's block "
        "time), the indexer waits for an anchored batch's document that the document store does not hold before "
        'it refuses the batch ("document not available within ...") so that the later batches go on; a document '
        "published after that is not applied by this index (docs/batching.md, The give-up rule of the index)",
    )
    batch_scan_max_age_s: int = Field(
        default=7 * 86_400,
        ge=3_600,
        le=100 * 365 * 86_400,
        description="Oldest a batched scan's time may be against its anchor's block time: the indexer refuses a "
        "batch with an older scan, and POST /v1/scans (and EPCIS capture's batching) refuses a scan older than this "
        "less a margin for its batch to be anchored (a day, or half of this if that is less); a week by default: "
        "an offline scanner's backlog, not a scan backdated by months (up to a century: no limit in practice)",
    )
    batch_transit_proofs: bool = Field(
        default=True,
        description="ledger-batcher proves each final batch's in-transit carrier scans that name an authorized "
        "return (markInTransitByProof: the return goes in transit, a fast refund is paid); off: carriers send "
        "markInTransit themselves",
    )
    scans_max_per_request: int = Field(
        default=1000, ge=1, le=10_000, description="Most scans one POST /v1/scans may carry (422 above)"
    )
    smtp_host: str | None = Field(default=None, description="SMTP server of the consumers' e-mails (unset: none sent)")
    smtp_port: int = Field(default=25, ge=1, le=65_535, description="Its port")
    smtp_from: str = Field(default="returns@localhost", description="The e-mails' From address")
    webhook_secrets_key: SecretStr = Field(
        default=SecretStr(DEV_WEBHOOK_SECRETS_KEY),
        description="Key (base64 of at least 32 random bytes) that seals merchants' webhook signing secrets at rest "
        "(AES-256-GCM): the database alone does not reveal them; production: required, the development one refused",
    )

    @field_validator("webhook_secrets_key")
    @classmethod
    def _secrets_key_is_long_enough(cls, value: SecretStr) -> SecretStr:
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except ValueError:
            raw = b""
        if len(raw) < MIN_SECRETS_KEY_BYTES:
            raise ValueError(
                f"LEDGER_WEBHOOK_SECRETS_KEY must be the base64 of at least {MIN_SECRETS_KEY_BYTES} random bytes "
                '(e.g. python -c "import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())")'
            )
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_request(self) -> Settings:
        if self.notify_lease_s <= self.notify_timeout_s:
            raise ValueError(
                f"LEDGER_NOTIFY_LEASE_S ({self.notify_lease_s}) must be longer than LEDGER_NOTIFY_TIMEOUT_S "
                f"({self.notify_timeout_s}): a delivery still being sent would be claimed again"
            )
        return self

    @property
    def public_base_url(self) -> str:
        """The service's public address without a trailing slash."""
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return f"http://{self.api_host}:{self.api_port}"

    @field_validator("trusted_proxies", "rpc_urls", "signer_keystores", mode="before")
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (expected e.g. 10.0.0.5 or 10.0.0.0/24)"
                ) from None
        return value

    _network: NetworkConfig | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _network_fills_the_defaults(self) -> Settings:
        try:
            network = load_network(self.networks_dir, self.network)
        except NetworkConfigError as exc:
            raise ValueError(str(exc)) from None
        self._network = network
        if not self.rpc_urls and "rpc_url" not in self.model_fields_set:
            self.rpc_urls = [AnyHttpUrl(url) for url in network.rpc_urls]
        if self.rpc_urls and "rpc_url" not in self.model_fields_set:
            self.rpc_url = self.rpc_urls[0]
        if "finality_depth" not in self.model_fields_set:
            self.finality_depth = network.finality_depth
        return self

    @property
    def network_config(self) -> NetworkConfig:
        """The configuration of LEDGER_NETWORK (read when the settings were)."""
        if self._network is None:  # only a model_construct()ed object skips the validators
            self._network = load_network(self.networks_dir, self.network)
        return self._network

    @property
    def fallback_rpc_url(self) -> str | None:
        """The URL asked again when an answer of ``rpc_url`` looks incomplete: the first other one of rpc_urls."""
        primary = str(self.rpc_url)
        return next((str(url) for url in self.rpc_urls if str(url) != primary), None)

    @field_validator(
        "verify_rate_limit", "verify_global_rate_limit", "assistant_rate_limit", "assistant_global_rate_limit"
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse_many  # the library the API's limiter uses: the same grammar

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"not a rate limit: {value!r} (expected e.g. '60/minute', '10/second;60/minute' or '1000 per hour')"
            ) from None
        return value

    @field_validator("token_allowlist")
    @classmethod
    def _tokens_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from eth_utils.address import is_address, is_checksum_address, to_checksum_address

        for address in value:
            mixed_case = address[2:] not in (address[2:].lower(), address[2:].upper())
            if not is_address(address) or (mixed_case and not is_checksum_address(address)):
                raise ValueError(f"{address!r} is not a token address (0x + 40 hex digits, checksummed if mixed case)")
        return tuple(to_checksum_address(address) for address in value)

    @field_validator("signer_keys")
    @classmethod
    def _keys_match_addresses(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        from eth_utils.address import is_address, to_checksum_address

        checked: dict[str, SecretStr] = {}
        for address, key in value.items():
            if not is_address(address):
                raise ValueError(f"{address!r} is not an address")
            owner = _address_of_key(key.get_secret_value(), f"the key given for {address}")
            if owner.lower() != address.lower():
                raise ValueError(f"the key given for {address} belongs to {owner}")
            checked[to_checksum_address(address)] = key
        return checked

    @field_validator("relayer_key")
    @classmethod
    def _relayer_is_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            _address_of_key(value.get_secret_value(), "relayer_key")
            return value
        return None

    @field_validator("carriers")
    @classmethod
    def _carrier_names(cls, value: dict[str, CarrierSettings]) -> dict[str, CarrierSettings]:
        import re

        for name in value:
            if not re.match(CARRIER_NAME, name):
                raise ValueError(f"carrier name {name!r}: lower-case letters, digits, - and _, at most 32 characters")
        return value

    @model_validator(mode="after")
    def _keystores_replace_the_development_keys(self) -> Settings:
        if self.signer_keystores and "signer_keys" not in self.model_fields_set:
            self.signer_keys = {}
        if self.relayer_keystore is not None and "relayer_key" not in self.model_fields_set:
            self.relayer_key = None
        if (self.signer_keystores or self.relayer_keystore) and not (
            self.keystore_passphrase_file or self.keystore_passphrase
        ):
            raise ValueError(
                "the keystores of LEDGER_SIGNER_KEYSTORES / LEDGER_RELAYER_KEYSTORE are encrypted: set "
                "LEDGER_KEYSTORE_PASSPHRASE_FILE to a file holding their passphrase (or LEDGER_KEYSTORE_PASSPHRASE)"
            )
        return self

    @model_validator(mode="after")
    def _no_public_keys_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        for name, url in [
            *(("LEDGER_RPC_URL(S)", u) for u in (self.rpc_url, *self.rpc_urls)),
            ("LEDGER_PUBLIC_URL", self.public_url),
        ]:
            if url is not None and url.scheme == "http" and not _is_local_host(url.host or ""):
                raise ValueError(
                    f"{name} {url} is plain http to a public address: anyone on the way can read and change what "
                    "is sent. With LEDGER_ENVIRONMENT=production use https:// (plain http only to localhost or a "
                    "private network address)"
                )
        public = [address for address, key in self.signer_keys.items() if is_well_known_key(key.get_secret_value())]
        if public:
            raise ValueError(
                "LEDGER_SIGNER_KEYS holds anvil's well-known development keys for "
                f"{', '.join(public)}; anyone can sign with them. With LEDGER_ENVIRONMENT=production set "
                "LEDGER_SIGNER_KEYS to a JSON object {address: private key} of the service's own accounts"
            )
        if self.relayer_key is not None and is_well_known_key(self.relayer_key.get_secret_value()):
            raise ValueError(
                "LEDGER_RELAYER_KEY is anvil's well-known development key; anyone can sign with it. With "
                "LEDGER_ENVIRONMENT=production set LEDGER_RELAYER_KEY to the key of the account holding "
                "CONSUMER_AGENT_ROLE (or to an empty value to disable consumer actions through the API)"
            )
        if "carriers" not in self.model_fields_set:
            self.carriers = {}  # the development default's secret is public: no carrier unless configured
        public_secrets = [
            name
            for name, carrier in self.carriers.items()
            if carrier.webhook_secret.get_secret_value() == DEV_CARRIER_SECRET
        ]
        if public_secrets:
            raise ValueError(
                f"LEDGER_CARRIERS gives carrier {', '.join(public_secrets)} the public development webhook secret; "
                "anyone could sign its scans. With LEDGER_ENVIRONMENT=production give each carrier its own "
                "webhook_secret (whsec_ + base64 of 32 random bytes)"
            )
        if self.webhook_secrets_key.get_secret_value() == DEV_WEBHOOK_SECRETS_KEY:
            raise ValueError(
                "LEDGER_WEBHOOK_SECRETS_KEY is the public development key; anyone with the database could read the "
                "merchants' webhook secrets. With LEDGER_ENVIRONMENT=production set it to the base64 of 32 random "
                "bytes, kept outside the database"
            )
        return self


def _is_local_host(host: str) -> bool:
    """Whether ``host`` is this machine or a private network address (plain http acceptable there)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()


def settings_for_command(prog: str, *, database_url: str | None = None) -> Settings | None:
    """The environment's settings for command ``prog`` (with its ``--database-url``, if given); None after
    printing the first problem on stderr when they are invalid (the command then exits with its usage code)."""
    import sys

    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"{prog}: configuration error: {exc.errors()[0]['msg']}", file=sys.stderr)
        return None
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings
