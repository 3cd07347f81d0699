"""The API's view of the chain: contracts of the deployment and one transaction sender per signing account.

:func:`connect_chain` checks, before anything is served, that the node answers,
that the deployment manifest is for the node's chain and that the contracts
have code there; it fails with one :class:`ConfigurationError` (or
:class:`RetryableError` when the node is unreachable) that says what to do.

Invariants: there is exactly one :class:`TxSender` per signing address (a
sender owns its account's nonces, so two senders for one account would race);
senders are keyed by lowercase address; an actor without a configured key gets
:class:`NoSignerError`, never another account's sender.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3Exception

from ledger_service.chain.artifacts import Deployment, load_artifact, load_deployment
from ledger_service.chain.fallback import FallbackHTTPProvider
from ledger_service.chain.keystores import keystore_accounts
from ledger_service.chain.nonces import LocalNonceBook, NonceBook
from ledger_service.chain.reverts import RevertDecoder
from ledger_service.chain.sender import TxSender
from ledger_service.chain.tokens import TokenChecker, token_units
from ledger_service.errors import ConfigurationError, RetryableError
from ledger_service.settings import Settings

LEDGER, ESCROW, TOKEN, BATCH_ANCHOR = "ProvenanceLedger", "ReturnsEscrow", "DevStablecoin", "BatchAnchor"
EXCHANGE = "ExchangeEscrow"
RPC_TIMEOUT_S = 30.0
NO_DECIMALS_RETRY_S = 60.0
"""How long a token that did not answer ``decimals()`` (not an ERC-20) is not asked again."""


class NoSignerError(ConfigurationError):
    """The service holds no signing key for an actor's account."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"the service has no signing key for account {address}: the operator must add it to LEDGER_SIGNER_KEYS"
        )
        self.address = address


@dataclass(frozen=True)
class ChainContext:
    """The node, the deployed contracts and the senders the API writes with. Thread-safe."""

    w3: Web3
    deployment: Deployment
    ledger: Contract
    escrow: Contract
    token: Contract | None
    """The deployment's DevStablecoin, if the manifest has one (sales may use any ERC-20)."""
    decoder: RevertDecoder
    senders: Mapping[str, TxSender]
    """By lowercase address."""
    relayer: TxSender | None
    """The CONSUMER_AGENT_ROLE account that sends consumers' actions (None: not configured)."""
    erc20_abi: list[dict[str, Any]]
    tokens: TokenChecker
    """The tokens sales may use (the deployment's stablecoin and LEDGER_TOKEN_ALLOWLIST), checked at sale time."""
    batch_anchor: Contract | None = None
    """The deployment's BatchAnchor, if the manifest has one (the scan batcher anchors with it)."""
    exchange: Contract | None = None
    """The deployment's ExchangeEscrow, if the manifest has one (exchanges need it)."""
    _decimals: dict[str, int] = field(default_factory=dict, repr=False)
    _no_decimals: dict[str, float] = field(default_factory=dict, repr=False)
    _symbols: dict[str, str | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def sender_for(self, address: str) -> TxSender:
        """The sender of ``address`` (any case); :class:`NoSignerError` if no key is configured for it."""
        sender = self.senders.get(address.lower())
        if sender is None:
            raise NoSignerError(to_checksum_address(address))
        return sender

    def relayer_sender(self) -> TxSender:
        """The relayer's sender; :class:`ConfigurationError` if LEDGER_RELAYER_KEY is not set."""
        if self.relayer is None:
            raise ConfigurationError(
                "consumer actions need the relayer: the operator must set LEDGER_RELAYER_KEY to the key of the "
                "account holding CONSUMER_AGENT_ROLE"
            )
        return self.relayer

    def check_sale_token(self, token: str, *, merchant: str) -> None:
        """Raises :class:`~ledger_service.chain.tokens.TokenRefusedError` unless a sale may use ``token``; keeps
        the ``decimals()`` it read (the sale's answer shows it without asking the node again)."""
        decimals = self.tokens.check(token, merchant=merchant, escrow=str(self.escrow.address))
        with self._lock:
            self._decimals[token.lower()] = decimals

    def erc20(self, address: str) -> Contract:
        """An ERC-20 token contract at ``address``."""
        return self.w3.eth.contract(address=to_checksum_address(address), abi=self.erc20_abi)

    def known_decimals(self, address: str) -> int | None:
        """The token's ``decimals()`` if already read (no I/O: safe on an event loop), else None."""
        with self._lock:
            return self._decimals.get(address.lower())

    def token_symbol(self, address: str) -> str | None:
        """The token's printable ``symbol()`` (read once per token, then cached), None if it has none; raises
        :class:`~ledger_service.errors.RetryableError` when the node cannot be reached (not cached then)."""
        key = address.lower()
        with self._lock:
            if key in self._symbols:
                return self._symbols[key]
        units = token_units(self.w3, address)
        symbol = None if units is None else units.symbol
        with self._lock:
            self._symbols[key] = symbol
        return symbol

    def token_decimals(self, address: str) -> int:
        """The token's ``decimals()`` (read once per token, then cached: an ERC-20's never changes). A token
        that did not answer is not asked again for :data:`NO_DECIMALS_RETRY_S` (ValueError meanwhile)."""
        key = address.lower()
        with self._lock:
            cached = self._decimals.get(key)
            failed_until = self._no_decimals.get(key, 0.0)
        if cached is not None:
            return cached
        if failed_until > time.monotonic():
            raise ValueError(f"token {address} did not answer decimals() (not asked again for a while)")
        try:
            value = int(self.erc20(address).functions.decimals().call())
        except (Web3Exception, ValueError, OverflowError):
            with self._lock:
                self._no_decimals[key] = time.monotonic() + NO_DECIMALS_RETRY_S
            raise
        with self._lock:
            self._decimals[key] = value
        return value


def resolve_deployment(settings: Settings, chain_id: int) -> Deployment:
    """The manifest named by LEDGER_DEPLOYMENT_FILE, else ``<deployments_dir>/<chain_id>.json``."""
    path: Path = settings.deployment_file or settings.deployments_dir / f"{chain_id}.json"
    return load_deployment(path)


def connect_chain(settings: Settings, *, w3: Web3 | None = None, nonces: NonceBook | None = None) -> ChainContext:
    """Connects to ``settings.rpc_url`` and binds the deployment's contracts and the configured signers.

    ``nonces``: the record of sent transactions the senders share with the service's other processes (the API
    passes the database's); default: one for this process only.
    """
    if w3 is None:
        # the node first, then the network's other URLs in order when it does not answer
        urls = [str(settings.rpc_url), *(str(u) for u in settings.rpc_urls if str(u) != str(settings.rpc_url))]
        kwargs: dict[str, Any] = {"request_kwargs": {"timeout": RPC_TIMEOUT_S}}
        w3 = Web3(FallbackHTTPProvider(urls, **kwargs) if len(urls) > 1 else Web3.HTTPProvider(urls[0], **kwargs))
    try:
        chain_id = int(w3.eth.chain_id)
        genesis = "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()
    except (requests.RequestException, Web3Exception, OSError) as exc:
        raise RetryableError(f"cannot reach the node at {settings.rpc_url}: {exc}") from None
    deployment = resolve_deployment(settings, chain_id)
    if deployment.chain_id != chain_id or deployment.genesis_hash.lower() != genesis:
        raise ConfigurationError(
            f"the deployment manifest is for chain {deployment.chain_id} (genesis {deployment.genesis_hash}), but "
            f"the node at {settings.rpc_url} serves chain {chain_id} (genesis {genesis}): point LEDGER_RPC_URL at "
            "that chain, or deploy again if the chain was reset"
        )
    network = settings.network_config
    if chain_id != network.chain_id:
        raise ConfigurationError(
            f"the node at {settings.rpc_url} serves chain id {chain_id}, but LEDGER_NETWORK={network.name} is chain "
            f"id {network.chain_id} (networks/{network.name}.toml): set LEDGER_NETWORK to the node's network or "
            "point LEDGER_RPC_URL at a node of that network"
        )
    ledger_abi = load_artifact(LEDGER, settings.artifacts_dir).abi
    escrow_abi = load_artifact(ESCROW, settings.artifacts_dir).abi
    token_abi = load_artifact(TOKEN, settings.artifacts_dir).abi
    ledger = _bind(w3, deployment, LEDGER, ledger_abi)
    escrow = _bind(w3, deployment, ESCROW, escrow_abi)
    token = _bind(w3, deployment, TOKEN, token_abi) if TOKEN in deployment.contracts else None
    anchor_abi = load_artifact(BATCH_ANCHOR, settings.artifacts_dir).abi
    batch_anchor = _bind(w3, deployment, BATCH_ANCHOR, anchor_abi) if BATCH_ANCHOR in deployment.contracts else None
    exchange_abi = load_artifact(EXCHANGE, settings.artifacts_dir).abi
    exchange = _bind(w3, deployment, EXCHANGE, exchange_abi) if EXCHANGE in deployment.contracts else None
    decoder = RevertDecoder((ledger_abi, escrow_abi, token_abi, anchor_abi, exchange_abi))
    from_keystores, relayer_account = keystore_accounts(settings)
    accounts = [Account.from_key(key.get_secret_value()) for key in settings.signer_keys.values()]
    book = nonces if nonces is not None else LocalNonceBook()

    def sender(account: LocalAccount) -> TxSender:
        return TxSender(
            w3=w3,
            account=account,
            decoder=decoder,
            policy=network.fees,
            confirmations=network.confirmations,
            book=book,
        )

    senders = {account.address.lower(): sender(account) for account in [*accounts, *from_keystores]}
    if settings.relayer_key is not None:
        relayer_account = Account.from_key(settings.relayer_key.get_secret_value())
    relayer: TxSender | None = None
    if relayer_account is not None:
        # one sender per account: the relayer may also be a configured signer
        relayer = senders.get(relayer_account.address.lower()) or sender(relayer_account)
    return ChainContext(
        w3=w3,
        deployment=deployment,
        ledger=ledger,
        escrow=escrow,
        token=token,
        decoder=decoder,
        senders=senders,
        relayer=relayer,
        erc20_abi=token_abi,
        tokens=TokenChecker(
            w3=w3, allowed={*settings.token_allowlist, *([str(token.address)] if token is not None else [])}
        ),
        batch_anchor=batch_anchor,
        exchange=exchange,
    )


def _bind(w3: Web3, deployment: Deployment, name: str, abi: list[dict[str, Any]]) -> Contract:
    address = cast(ChecksumAddress, deployment.address_of(name))
    try:
        code = w3.eth.get_code(address)
    except (requests.RequestException, Web3Exception, OSError) as exc:
        raise RetryableError(f"cannot reach the node: {exc}") from None
    if not code:
        raise ConfigurationError(
            f"no {name} contract at {address} on chain {deployment.chain_id}: the chain was reset or the "
            "manifest is stale; deploy again (scripts/run.sh)"
        )
    return w3.eth.contract(address=address, abi=abi)
