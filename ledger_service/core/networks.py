"""Per-network deployment configuration: ``networks/<name>.toml`` (chain id, RPC URLs, confirmations, fees, roles).

One file per network the service may run on; ``LEDGER_NETWORK`` names it (default ``anvil``, the local chain of
``scripts/run.sh``). ``scripts/deploy.py`` (under brownie's own Python) reads the same files through
:func:`load_network`, which is why this module uses the standard library only.

Invariants: a loaded :class:`NetworkConfig` has at least one RPC URL, ``1 <= confirmations <= finality_depth``,
a fee cap at least the priority fee, and role holders that are addresses; any other file is refused with a
:class:`NetworkConfigError` naming the file and the key to fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = ["FeePolicy", "NetworkConfig", "NetworkConfigError", "default_fee_policy", "load_network", "network_path"]

GWEI = 10**9
NETWORK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TOP_KEYS = frozenset(
    {
        "name",
        "chain_id",
        "local",
        "rpc_urls",
        "confirmations",
        "finality_depth",
        "fees",
        "roles",
        "mint",
        "deploy_config",
    }
)
_FEE_KEYS = frozenset(
    {
        "max_fee_gwei",
        "priority_fee_gwei",
        "bump_percent",
        "stuck_after_s",
        "fee_history_blocks",
        "reward_percentile",
        "receipt_timeout_s",
    }
)


class NetworkConfigError(ValueError):
    """A network file is missing or malformed; the message names the file and what to change."""


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """How the relayer prices EIP-1559 transactions on a network (all fees in wei)."""

    max_fee_wei: int
    """Cap on maxFeePerGas: a transaction is never sent or bumped above it (a base fee above it is refused)."""
    priority_fee_wei: int
    """Smallest tip offered: the fee history's percentile is used when higher."""
    bump_percent: int
    """Raise of both fees when a stuck transaction is replaced (nodes require at least 10)."""
    stuck_after_s: float
    """A transaction without a receipt for this long is replaced with bumped fees (or sent again if dropped)."""
    fee_history_blocks: int
    """Blocks of ``eth_feeHistory`` the tip is read from."""
    reward_percentile: int
    """Percentile of those blocks' tips offered."""
    receipt_timeout_s: float
    """Longest a request waits for its transaction's receipt before answering that it is still pending."""

    def market(self, history: Mapping[str, Any]) -> tuple[int, int]:
        """(the next block's base fee, the tip to offer) from an ``eth_feeHistory`` answer asked for
        :attr:`fee_history_blocks` and ``[reward_percentile]``: the median of the blocks' tips, at least
        :attr:`priority_fee_wei`."""
        base = int(history["baseFeePerGas"][-1])
        tips = sorted(int(reward[0]) for reward in history.get("reward") or [] if reward)
        return base, max(self.priority_fee_wei, tips[len(tips) // 2] if tips else 0)

    def capped(self, base: int, tip: int) -> tuple[int, int] | None:
        """(maxFeePerGas, maxPriorityFeePerGas) of a transaction for the next block: twice its base fee plus the
        tip, within :attr:`max_fee_wei`; None when the base fee alone is above the cap (nothing may be sent)."""
        if base > self.max_fee_wei:
            return None
        max_fee = min(self.max_fee_wei, 2 * base + tip)
        return max_fee, min(tip, max_fee)


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """One network's configuration (see the module docstring)."""

    name: str
    chain_id: int
    rpc_urls: tuple[str, ...]
    """The first is asked; the next ones are fallbacks, in order."""
    confirmations: int
    """Blocks on top of a transaction's block (its own included) before the service reports it done."""
    finality_depth: int
    """Blocks after which the indexer takes a block as final (LEDGER_FINALITY_DEPTH unless that is set)."""
    fees: FeePolicy
    local: bool = False
    """A local development chain: anvil's public keys are acceptable there (never with production settings)."""
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Role holders the deploy grants, by role name."""
    mint: dict[str, int] = field(default_factory=dict)
    """Development stablecoin minted at deploy (local chains only), by address."""
    deploy_config: Path | None = None
    """A deploy JSON (``roles`` and ``mint``) used instead of the two tables above."""


def default_fee_policy() -> FeePolicy:
    """The policy of a network file whose [fees] table is empty."""
    return _fees({}, Path("[fees]"))


def network_path(networks_dir: Path, name: str) -> Path:
    """The file of network ``name`` (:class:`NetworkConfigError` for a name that is not one)."""
    if not NETWORK_NAME.match(name):
        raise NetworkConfigError(
            f"LEDGER_NETWORK={name!r} is not a network name: lower-case letters, digits, - and _ (the file "
            "networks/<name>.toml)"
        )
    return networks_dir / f"{name}.toml"


def load_network(networks_dir: Path, name: str) -> NetworkConfig:
    """Reads and checks ``<networks_dir>/<name>.toml``."""
    path = network_path(networks_dir, name)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in networks_dir.glob("*.toml")) if networks_dir.is_dir() else []
        raise NetworkConfigError(
            f"no network file {path} for LEDGER_NETWORK={name!r}; known networks: {', '.join(known) or 'none'} "
            "(set LEDGER_NETWORKS_DIR if the files are elsewhere)"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NetworkConfigError(f"{path} is not valid TOML: {exc}") from None
    return _parse(raw, path, name)


def _parse(raw: dict[str, Any], path: Path, name: str) -> NetworkConfig:
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise NetworkConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if raw.get("name", name) != name:
        raise NetworkConfigError(f"{path}: name = {raw['name']!r} but the file is for network {name!r}")
    chain_id = _int(raw, "chain_id", path, low=1)
    urls = raw.get("rpc_urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise NetworkConfigError(f"{path}: rpc_urls must be a non-empty list of JSON-RPC URLs (the first is asked)")
    for url in urls:
        if not re.match(r"^https?://[^\s/]+", url):
            raise NetworkConfigError(f"{path}: rpc_urls: {url!r} is not an http:// or https:// URL")
    confirmations = _int(raw, "confirmations", path, low=1, default=1)
    finality = _int(raw, "finality_depth", path, low=1, default=max(12, confirmations))
    if confirmations > finality:
        raise NetworkConfigError(f"{path}: confirmations ({confirmations}) must not exceed finality_depth ({finality})")
    local = raw.get("local", False)
    if not isinstance(local, bool):
        raise NetworkConfigError(f"{path}: local must be true or false")
    deploy_config = raw.get("deploy_config")
    if deploy_config is not None and not isinstance(deploy_config, str):
        raise NetworkConfigError(f"{path}: deploy_config must be the path of a deploy JSON file")
    return NetworkConfig(
        name=name,
        chain_id=chain_id,
        rpc_urls=tuple(urls),
        confirmations=confirmations,
        finality_depth=finality,
        fees=_fees(raw.get("fees", {}), path),
        local=local,
        roles=_roles(raw.get("roles", {}), path),
        mint=_mint(raw.get("mint", {}), path),
        deploy_config=(path.parent / deploy_config).resolve() if deploy_config else None,
    )


def _fees(raw: object, path: Path) -> FeePolicy:
    if not isinstance(raw, dict):
        raise NetworkConfigError(f"{path}: [fees] must be a table")
    unknown = set(raw) - _FEE_KEYS
    if unknown:
        raise NetworkConfigError(f"{path}: unknown key(s) in [fees] {sorted(unknown)}; allowed: {sorted(_FEE_KEYS)}")
    max_fee = _gwei(raw, "max_fee_gwei", path, default="100")
    priority = _gwei(raw, "priority_fee_gwei", path, default="0.001")
    if max_fee < priority or max_fee <= 0:
        raise NetworkConfigError(f"{path}: fees.max_fee_gwei must be positive and at least fees.priority_fee_gwei")
    return FeePolicy(
        max_fee_wei=max_fee,
        priority_fee_wei=priority,
        bump_percent=_int(raw, "bump_percent", path, low=10, high=1000, default=25, where="fees."),
        stuck_after_s=_seconds(raw, "stuck_after_s", path, default=60.0),
        fee_history_blocks=_int(raw, "fee_history_blocks", path, low=1, high=1024, default=10, where="fees."),
        reward_percentile=_int(raw, "reward_percentile", path, low=0, high=100, default=50, where="fees."),
        receipt_timeout_s=_seconds(raw, "receipt_timeout_s", path, default=120.0),
    )


def _roles(raw: object, path: Path) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise NetworkConfigError(f"{path}: [roles] must be a table of role name = [addresses]")
    roles: dict[str, tuple[str, ...]] = {}
    for role, members in raw.items():
        if not isinstance(members, list) or not all(isinstance(m, str) and _ADDRESS.match(m) for m in members):
            raise NetworkConfigError(f"{path}: roles.{role} must be a list of addresses (0x + 40 hex digits)")
        roles[role] = tuple(members)
    return roles


def _mint(raw: object, path: Path) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise NetworkConfigError(f'{path}: [mint] must be a table of "address" = amount')
    for address, amount in raw.items():
        if not _ADDRESS.match(address) or isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise NetworkConfigError(f"{path}: mint.{address} must be an address with a positive integer amount")
    return dict(raw)


def _int(
    raw: dict[str, Any],
    key: str,
    path: Path,
    *,
    low: int,
    high: int | None = None,
    default: int | None = None,
    where: str = "",
) -> int:
    value = raw.get(key, default)
    if value is None:
        raise NetworkConfigError(f"{path}: {where}{key} is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise NetworkConfigError(f"{path}: {where}{key} must be an integer {bound}, got {value!r}")
    return value


def _gwei(raw: dict[str, Any], key: str, path: Path, *, default: str) -> int:
    value = raw.get(key, default)
    try:
        amount = Decimal(str(value)) if not isinstance(value, bool) else Decimal("NaN")
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise NetworkConfigError(f"{path}: fees.{key} must be a non-negative number of gwei, got {value!r}")
    return int(amount * GWEI)


def _seconds(raw: dict[str, Any], key: str, path: Path, *, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
        raise NetworkConfigError(f"{path}: fees.{key} must be a number of seconds above 0, got {value!r}")
    return float(value)
