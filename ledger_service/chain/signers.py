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
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3Exception

from ledger_service.chain.artifacts import Deployment, load_artifact, load_deployment
from ledger_service.chain.reverts import RevertDecoder
from ledger_service.chain.sender import TxSender
from ledger_service.chain.tokens import TokenChecker
from ledger_service.errors import ConfigurationError, RetryableError
from ledger_service.settings import Settings

LEDGER, ESCROW, TOKEN = "ProvenanceLedger", "ReturnsEscrow", "DevStablecoin"
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
    _decimals: dict[str, int] = field(default_factory=dict, repr=False)
    _no_decimals: dict[str, float] = field(default_factory=dict, repr=False)
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


def connect_chain(settings: Settings, *, w3: Web3 | None = None) -> ChainContext:
    """Connects to ``settings.rpc_url`` and binds the deployment's contracts and the configured signers."""
    if w3 is None:
        provider = Web3.HTTPProvider(str(settings.rpc_url), request_kwargs={"timeout": RPC_TIMEOUT_S})
        w3 = Web3(provider)
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
    ledger_abi = load_artifact(LEDGER, settings.artifacts_dir).abi
    escrow_abi = load_artifact(ESCROW, settings.artifacts_dir).abi
    token_abi = load_artifact(TOKEN, settings.artifacts_dir).abi
    ledger = _bind(w3, deployment, LEDGER, ledger_abi)
    escrow = _bind(w3, deployment, ESCROW, escrow_abi)
    token = _bind(w3, deployment, TOKEN, token_abi) if TOKEN in deployment.contracts else None
    decoder = RevertDecoder((ledger_abi, escrow_abi, token_abi))
    senders = {
        address.lower(): TxSender(w3=w3, account=Account.from_key(key.get_secret_value()), decoder=decoder)
        for address, key in settings.signer_keys.items()
    }
    relayer: TxSender | None = None
    if settings.relayer_key is not None:
        account = Account.from_key(settings.relayer_key.get_secret_value())
        # one sender per account: the relayer may also be a configured signer
        relayer = senders.get(account.address.lower()) or TxSender(w3=w3, account=account, decoder=decoder)
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
