"""Deploys the contracts and writes deployments/<chainId>.json.

Run: brownie run scripts/deploy.py --network <network>

The network is LEDGER_NETWORK's file, networks/<name>.toml (default anvil): the node must serve its chain id,
its [roles] (or the deploy JSON its deploy_config names) are granted, every transaction is priced as the
relayer prices its own (EIP-1559 fees within the network's fee cap, read again for each), and a base fee above
the cap stops the deploy. DEPLOY_CONFIG, when set, names a deploy JSON that replaces the file's roles.

Deploys ProvenanceLedger (admin = deployer), ReturnsEscrow (given RECORDER_ROLE
on the ledger), ExchangeEscrow (given EXCHANGE_ROLE), BatchAnchor (reading the ledger's roles; given
BATCH_ANCHOR_ROLE, so the escrow accepts proofs of its scans) and, on a local
chain (chain id 31337 or 1337), DevStablecoin;
grants the roles and mints the dUSD listed in the network's configuration.

Invariant: the manifest describes exactly one chain. It is kept only while its
genesis hash matches the chain's block 0 and every address in it has code;
otherwise it is stale (a restarted dev chain) and the contracts are deployed
afresh, replacing it. A second run on the same chain changes nothing.

The deployer is accounts[0] (anvil's unlocked account 0 on a local chain), or
the account of the private key in DEPLOYER_PRIVATE_KEY when that is set.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brownie import (
    BatchAnchor,
    DevStablecoin,
    ExchangeEscrow,
    ProvenanceLedger,
    ReturnsEscrow,
    accounts,
    network,
    web3,
)
from brownie._config import CONFIG

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # brownie's Python does not have the service installed; this module is stdlib only
from ledger_service.core.networks import FeePolicy, NetworkConfig, NetworkConfigError, load_network  # noqa: E402

# brownie 1.22 warns about its own internal rpc.snapshot calls; not actionable here.
warnings.filterwarnings("ignore", category=FutureWarning)

NETWORKS = ROOT / "networks"
DEPLOYMENTS = ROOT / "deployments"
LOCAL_CHAIN_IDS = (31337, 1337)
GRANTABLE_ROLES = (
    "MANUFACTURER_ROLE",
    "MERCHANT_ROLE",
    "CARRIER_ROLE",
    "INSPECTOR_ROLE",
    "ARBITER_ROLE",
    "CONSUMER_AGENT_ROLE",
)
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class ConfigError(Exception):
    """The deploy config is missing or malformed; the message says where."""


def _checksum(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ConfigError(f"{where}: {value!r} is not an address (0x followed by 40 hex digits)")
    checksummed = str(web3.to_checksum_address(value))
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and value != checksummed:
        raise ConfigError(f"{where}: {value} has a wrong checksum (expected {checksummed})")
    if int(value, 16) == 0:
        raise ConfigError(f"{where}: the zero address cannot hold a role or tokens")
    return checksummed


def load_config(path: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Reads and validates the config; returns (roles, mint) with checksummed addresses."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (set DEPLOY_CONFIG to its path)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    return check_config(raw, str(path))


def check_config(raw: Any, path: str) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Validates a config's ``roles`` and ``mint`` (``path``: where they come from, for the messages)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be an object with 'roles' and 'mint'")
    unknown = set(raw) - {"roles", "mint"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: 'roles', 'mint'")
    roles_raw = raw.get("roles", {})
    mint_raw = raw.get("mint", {})
    if not isinstance(roles_raw, dict):
        raise ConfigError(f"{path}: 'roles' must be an object of role name -> list of addresses")
    if not isinstance(mint_raw, dict):
        raise ConfigError(f"{path}: 'mint' must be an object of address -> amount")
    roles: dict[str, list[str]] = {}
    for role, members in roles_raw.items():
        if role not in GRANTABLE_ROLES:
            raise ConfigError(f"{path}: unknown role {role!r}; known roles: {', '.join(GRANTABLE_ROLES)}")
        if not isinstance(members, list):
            raise ConfigError(f"{path}: roles.{role} must be a list of addresses")
        checked = [_checksum(m, f"{path}: roles.{role}[{i}]") for i, m in enumerate(members)]
        roles[role] = list(dict.fromkeys(checked))
    mint: dict[str, int] = {}
    for address, amount in mint_raw.items():
        account = _checksum(address, f"{path}: mint key")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ConfigError(f"{path}: mint.{address}: amount must be a positive integer, got {amount!r}")
        mint[account] = mint.get(account, 0) + amount
    return roles, mint


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _genesis_hash() -> str:
    return _hex(web3.eth.get_block(0)["hash"])


def _has_code(address: Any) -> bool:
    try:
        return len(web3.eth.get_code(web3.to_checksum_address(address))) > 0
    except (ValueError, TypeError):
        return False


def check_manifest(path: Path, chain_id: int, genesis: str) -> tuple[dict[str, Any] | None, str]:
    """Returns (manifest, "") if the manifest describes live contracts on this chain, else (None, why not)."""
    if not path.exists():
        return None, "no manifest"
    try:
        manifest = json.loads(path.read_text())
        contracts = manifest["contracts"]
        wanted = ["ProvenanceLedger", "ReturnsEscrow", "ExchangeEscrow", "BatchAnchor"]
        wanted += ["DevStablecoin"] if chain_id in LOCAL_CHAIN_IDS else []
        if manifest.get("chainId") != chain_id:
            return None, f"it is for chain id {manifest.get('chainId')}"
        if str(manifest.get("genesisHash", "")).lower() != genesis.lower():
            return None, f"its genesis hash {manifest.get('genesisHash')} is not this chain's {genesis}"
        for name in wanted:
            if name not in contracts:
                return None, f"it has no {name}"
        for name, entry in contracts.items():
            if not _has_code(entry["address"]):
                return None, f"{name} at {entry['address']} has no code on this chain"
            if entry.get("bytecodeHash") != _bytecode_hash(name):
                return None, f"{name} changed since it was deployed (compiled bytecode differs)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"it is unreadable ({type(exc).__name__}: {exc})"
    return manifest, ""


def _deployer() -> Any:
    key = os.environ.get("DEPLOYER_PRIVATE_KEY")
    if key:
        return accounts.add(key)
    if len(accounts) == 0:
        raise ConfigError("no unlocked account on this network; set DEPLOYER_PRIVATE_KEY")
    return accounts[0]


def tx(sender: Any, fees: FeePolicy) -> dict[str, Any]:
    """Parameters of one transaction from ``sender``, priced as the relayer prices its own: EIP-1559 fees from
    ``eth_feeHistory`` within the network's cap, read again for each transaction (a deploy spans many blocks).
    ConfigError, nothing sent, when the base fee rose above the cap meanwhile."""
    history = web3.eth.fee_history(fees.fee_history_blocks, "latest", [fees.reward_percentile])
    base, tip = fees.market(history)
    capped = fees.capped(base, tip)
    if capped is None:
        raise ConfigError(
            f"the network's base fee ({base / 1e9:.3f} gwei) rose above the fee cap ({fees.max_fee_wei / 1e9:.3f} "
            "gwei) during the deploy: nothing more was sent; run it again once the fee falls (what was deployed "
            "is redeployed, as no manifest was written) or raise fees.max_fee_gwei"
        )
    return {"from": sender, "max_fee": capped[0], "priority_fee": capped[1]}


def send(method: Any, *args: Any, sender: Any, fees: FeePolicy) -> Any:
    """Sends a transaction without brownie's per-transaction console output, its fees within the network's cap
    (:func:`tx`); returns the receipt."""
    return method.transact(*args, tx(sender, fees), silent=True)


def network_roles(net: NetworkConfig) -> tuple[dict[str, list[str]], dict[str, int], str]:
    """The roles and mint of the network's configuration (or of DEPLOY_CONFIG), and where they come from."""
    override = os.environ.get("DEPLOY_CONFIG")
    if override or net.deploy_config is not None:
        path = Path(override) if override else net.deploy_config
        assert path is not None
        roles, mint = load_config(path)
        return roles, mint, str(path)
    where = f"network file {net.name}.toml"
    roles, mint = check_config({"roles": {r: list(m) for r, m in net.roles.items()}, "mint": net.mint}, where)
    return roles, mint, where


def check_network(net: NetworkConfig, chain_id: int) -> None:
    """Refuses a node of another chain than the network's, or a base fee above its cap."""
    if chain_id != net.chain_id:
        raise ConfigError(
            f"the node serves chain id {chain_id}, but network {net.name!r} is chain id {net.chain_id}: "
            "point brownie's network at the right node or set LEDGER_NETWORK"
        )
    base = int(web3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    if base > net.fees.max_fee_wei:
        raise ConfigError(
            f"the network's base fee ({base / 1e9:.3f} gwei) is above the fee cap of network {net.name!r} "
            f"({net.fees.max_fee_wei / 1e9:.3f} gwei): wait for it to fall or raise fees.max_fee_gwei"
        )


def use_chain_fees() -> None:
    """Prices transactions from the chain's base fee (EIP-1559) unless the network sets a price.

    brownie's development networks default to gas price 0, which a chain with a
    non-zero base fee (anvil's default) rejects.
    """
    settings = CONFIG.active_network["settings"]
    if settings.get("gas_price") or settings.get("max_fee") or settings.get("priority_fee"):
        return
    if web3.eth.get_block("latest").get("baseFeePerGas", 0):
        network.priority_fee("auto")


def _bytecode_hash(name: str) -> str:
    """keccak256 of the compiled creation bytecode: tells whether a deployment is of the current sources."""
    container = {
        "ProvenanceLedger": ProvenanceLedger,
        "ReturnsEscrow": ReturnsEscrow,
        "ExchangeEscrow": ExchangeEscrow,
        "BatchAnchor": BatchAnchor,
        "DevStablecoin": DevStablecoin,
    }
    return _hex(web3.keccak(hexstr=container[name].bytecode))


def _entry(name: str, contract: Any) -> dict[str, Any]:
    tx = contract.tx
    return {
        "address": contract.address,
        "block": tx.block_number,
        "txHash": tx.txid,
        "bytecodeHash": _bytecode_hash(name),
    }


def deploy(*, roles: dict[str, list[str]], mint: dict[str, int], chain_id: int, fees: FeePolicy) -> dict[str, Any]:
    """Deploys and configures everything, each transaction within the fee cap; returns the manifest (not yet
    written)."""
    deployer = _deployer()
    print(f"deployer (admin): {deployer.address}")
    ledger = ProvenanceLedger.deploy(deployer, tx(deployer, fees), silent=True)
    print(f"deployed ProvenanceLedger at {ledger.address}")
    escrow = ReturnsEscrow.deploy(ledger, tx(deployer, fees), silent=True)
    print(f"deployed ReturnsEscrow    at {escrow.address}")
    send(ledger.grantRole, ledger.RECORDER_ROLE(), escrow, sender=deployer, fees=fees)
    print("granted RECORDER_ROLE to ReturnsEscrow")
    exchanges = ExchangeEscrow.deploy(ledger, escrow, tx(deployer, fees), silent=True)
    print(f"deployed ExchangeEscrow   at {exchanges.address}")
    send(ledger.grantRole, ledger.EXCHANGE_ROLE(), exchanges, sender=deployer, fees=fees)
    print("granted EXCHANGE_ROLE to ExchangeEscrow")
    anchor = BatchAnchor.deploy(ledger, tx(deployer, fees), silent=True)
    print(f"deployed BatchAnchor      at {anchor.address}")
    send(ledger.grantRole, ledger.BATCH_ANCHOR_ROLE(), anchor, sender=deployer, fees=fees)
    print("granted BATCH_ANCHOR_ROLE to BatchAnchor (the escrow accepts proofs of its scans)")
    contracts = {
        "ProvenanceLedger": _entry("ProvenanceLedger", ledger),
        "ReturnsEscrow": _entry("ReturnsEscrow", escrow),
        "ExchangeEscrow": _entry("ExchangeEscrow", exchanges),
        "BatchAnchor": _entry("BatchAnchor", anchor),
    }
    granted: dict[str, list[str]] = {
        "DEFAULT_ADMIN_ROLE": [deployer.address],
        "RECORDER_ROLE": [escrow.address],
        "EXCHANGE_ROLE": [exchanges.address],
        "BATCH_ANCHOR_ROLE": [anchor.address],
    }
    for role, members in roles.items():
        role_id = getattr(ledger, role)()
        for member in members:
            send(ledger.grantRole, role_id, member, sender=deployer, fees=fees)
            print(f"granted {role} to {member}")
        granted[role] = members
    if chain_id in LOCAL_CHAIN_IDS:
        token = DevStablecoin.deploy(deployer, tx(deployer, fees), silent=True)
        print(f"deployed DevStablecoin   at {token.address} (dUSD, 6 decimals)")
        contracts["DevStablecoin"] = _entry("DevStablecoin", token)
        for account, amount in mint.items():
            send(token.mint, account, amount, sender=deployer, fees=fees)
            print(f"minted {amount / 10**6:,.2f} dUSD to {account}")
    elif mint:
        print(f"note: 'mint' ignored, chain id {chain_id} is not local so no DevStablecoin is deployed")
    deploy_block = min(entry["block"] for entry in contracts.values())
    deployed_at = datetime.fromtimestamp(web3.eth.get_block(deploy_block)["timestamp"], tz=UTC)
    return {
        "chainId": chain_id,
        "genesisHash": _genesis_hash(),
        "deployBlock": deploy_block,
        "deployedAt": deployed_at.isoformat().replace("+00:00", "Z"),
        "contracts": contracts,
        "roles": granted,
    }


def _write(path: Path, manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


def _print_contracts(manifest: dict[str, Any]) -> None:
    for name, entry in manifest["contracts"].items():
        print(f"  {name:<17} {entry['address']}  (block {entry['block']})")


def main() -> None:
    name = os.environ.get("LEDGER_NETWORK") or "anvil"
    try:
        net = load_network(Path(os.environ.get("LEDGER_NETWORKS_DIR") or NETWORKS), name)
        roles, mint, config_path = network_roles(net)
    except (ConfigError, NetworkConfigError) as exc:
        print(f"error: bad deploy config: {exc}", file=sys.stderr)
        sys.exit(2)
    use_chain_fees()
    chain_id = int(web3.eth.chain_id)
    try:
        check_network(net, chain_id)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    genesis = _genesis_hash()
    path = DEPLOYMENTS / f"{chain_id}.json"
    manifest, why_not = check_manifest(path, chain_id, genesis)
    if manifest is not None:
        print(f"already deployed on chain {chain_id} (manifest {path.relative_to(ROOT)}); nothing to do")
        _print_contracts(manifest)
        deployed = {role: set(members) for role, members in manifest.get("roles", {}).items()}
        if any(set(members) - deployed.get(role, set()) for role, members in roles.items()):
            print(f"note: {config_path} lists roles not in the manifest; delete the manifest to deploy afresh")
        return
    if path.exists():
        print(f"stale manifest {path.relative_to(ROOT)} replaced: {why_not}")
    print(f"deploying on chain {chain_id} (genesis {genesis}) with config {config_path}")
    try:
        manifest = deploy(roles=roles, mint=mint, chain_id=chain_id, fees=net.fees)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    _write(path, manifest)
    print(f"wrote {path.relative_to(ROOT)} (deploy block {manifest['deployBlock']})")
    _print_contracts(manifest)
