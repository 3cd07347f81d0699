"""Network files: the committed ones load, a malformed one is refused with the file and key to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_service.core.networks import GWEI, NetworkConfigError, load_network
from ledger_service.settings import NETWORKS_DIR


def test_the_committed_networks_load() -> None:
    anvil = load_network(NETWORKS_DIR, "anvil")
    assert (anvil.chain_id, anvil.local, anvil.confirmations) == (31337, True, 1)
    assert anvil.deploy_config is not None and anvil.deploy_config.is_file()
    sepolia = load_network(NETWORKS_DIR, "base-sepolia")
    assert (sepolia.chain_id, sepolia.local) == (84532, False)
    assert len(sepolia.rpc_urls) >= 2 and all(url.startswith("https://") for url in sepolia.rpc_urls)
    assert sepolia.fees.max_fee_wei == 2 * GWEI and sepolia.fees.priority_fee_wei == GWEI // 1000
    assert sepolia.confirmations <= sepolia.finality_depth
    assert set(sepolia.roles) >= {"MERCHANT_ROLE", "CONSUMER_AGENT_ROLE"}


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "net.toml").write_text(body)
    return tmp_path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('rpc_urls = ["http://x"]', "chain_id is required"),
        ("chain_id = 5\nrpc_urls = []", "rpc_urls must be a non-empty list"),
        ('chain_id = 5\nrpc_urls = ["ws://x"]', "not an http:// or https:// URL"),
        ('chain_id = 5\nrpc_urls = ["http://x"]\nconfirmations = 20\nfinality_depth = 3', "must not exceed"),
        ('chain_id = 5\nrpc_urls = ["http://x"]\n[fees]\nmax_fee_gwei = 1\npriority_fee_gwei = 2', "at least"),
        ('chain_id = 5\nrpc_urls = ["http://x"]\n[fees]\nbump_percent = 5', "fees.bump_percent"),
        ('chain_id = 5\nrpc_urls = ["http://x"]\n[fees]\ngas = 5', "unknown key"),
        ('chain_id = 5\nrpc_urls = ["http://x"]\n[roles]\nMERCHANT_ROLE = ["0x12"]', "roles.MERCHANT_ROLE"),
        ('chain_id = 5\nrpc_urls = ["http://x"]\nrpc = 1', "unknown key"),
        ("chain_id = = 5", "not valid TOML"),
    ],
)
def test_a_bad_file_names_the_key_to_fix(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message) as caught:
        load_network(_write(tmp_path, body), "net")
    assert "net.toml" in str(caught.value)


def test_an_unknown_network_lists_the_known_ones(tmp_path: Path) -> None:
    _write(tmp_path, 'chain_id = 5\nrpc_urls = ["http://x"]')
    with pytest.raises(NetworkConfigError, match=r"no network file .*known networks: net"):
        load_network(tmp_path, "mainnet")
    with pytest.raises(NetworkConfigError, match="not a network name"):
        load_network(tmp_path, "../etc/passwd")
