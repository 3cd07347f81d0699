"""connect_chain: one sender per signing account, the relayer, and clear failures for a wrong setup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.signers import NoSignerError, connect_chain
from ledger_service.errors import ConfigurationError, RetryableError
from ledger_service.settings import ANVIL_ACCOUNTS, Settings
from tests.support.activity import write_manifest
from tests.support.chain import ARTIFACTS, Anvil, Deployed, deploy_all, free_port, start_anvil


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Anvil, Deployed, Path]]:
    node = start_anvil()
    deployed = deploy_all(node)
    manifest = write_manifest(deployed, tmp_path_factory.mktemp("signers") / "31337.json")
    yield node, deployed, manifest
    node.stop()


def settings(url: str, manifest: Path | None, **values: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=url,  # type: ignore[arg-type]
        deployment_file=manifest,
        artifacts_dir=values.pop("artifacts_dir", ARTIFACTS),  # type: ignore[arg-type]
        **values,  # type: ignore[arg-type]
    )


def test_one_sender_per_signing_account_and_the_relayer(chain: tuple[Anvil, Deployed, Path]) -> None:
    node, deployed, manifest = chain
    context = connect_chain(settings(node.url, manifest))
    assert context.chain_id == 31337
    assert context.escrow.address == deployed.escrow.address and context.token is not None
    merchant = ANVIL_ACCOUNTS[2][0]
    assert context.sender_for(merchant.lower()) is context.sender_for(merchant)
    assert context.sender_for(merchant).address == merchant
    assert context.relayer_sender().address == ANVIL_ACCOUNTS[9][0]
    with pytest.raises(NoSignerError, match=f"no signing key for account {ANVIL_ACCOUNTS[6][0]}"):
        context.sender_for(ANVIL_ACCOUNTS[6][0])
    assert context.token_decimals(deployed.token.address) == deployed.token.functions.decimals().call()


def test_the_batch_anchor_is_bound_and_a_second_anchor_of_a_root_is_refused_by_name(
    chain: tuple[Anvil, Deployed, Path],
) -> None:
    """What the scan batcher relies on to resend safely: the same root anchored twice by its submitter is
    refused with BatchAnchorAlreadyAnchored, decoded, and nothing is anchored twice."""
    node, deployed, manifest = chain
    context = connect_chain(settings(node.url, manifest))
    assert context.batch_anchor is not None and context.batch_anchor.address == deployed.anchor.address
    carrier = context.sender_for(ANVIL_ACCOUNTS[3][0])
    root, digest = b"\x05" * 32, b"\x06" * 32
    carrier.send(context.batch_anchor.functions.anchorBatch(root, 10, digest))
    with pytest.raises(ContractRevertError) as caught:
        carrier.send(context.batch_anchor.functions.anchorBatch(root, 10, digest))
    assert caught.value.error == "BatchAnchorAlreadyAnchored"
    assert caught.value.params == {"submitter": ANVIL_ACCOUNTS[3][0].lower(), "root": root}
    assert context.batch_anchor.functions.anchorOf(ANVIL_ACCOUNTS[3][0], root).call()[1] == 10


def test_a_relayer_that_is_also_a_signer_shares_its_sender(chain: tuple[Anvil, Deployed, Path]) -> None:
    node, _, manifest = chain
    context = connect_chain(settings(node.url, manifest, relayer_key=ANVIL_ACCOUNTS[2][1]))
    assert context.relayer is context.sender_for(ANVIL_ACCOUNTS[2][0])
    without = connect_chain(settings(node.url, manifest, relayer_key=""))
    with pytest.raises(ConfigurationError, match="LEDGER_RELAYER_KEY"):
        without.relayer_sender()


def test_a_missing_manifest_or_artifact_says_what_to_do(chain: tuple[Anvil, Deployed, Path], tmp_path: Path) -> None:
    node, _, manifest = chain
    with pytest.raises(ConfigurationError, match=r"deployment manifest .*31337\.json not found: deploy first"):
        connect_chain(settings(node.url, None, deployments_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="compile the contracts first"):
        connect_chain(settings(node.url, manifest, artifacts_dir=tmp_path))


def test_a_manifest_of_another_chain_is_refused(chain: tuple[Anvil, Deployed, Path], tmp_path: Path) -> None:
    node, deployed, _ = chain
    other = write_manifest(deployed, tmp_path / "other.json", genesis="0x" + "11" * 32)
    with pytest.raises(ConfigurationError, match="deploy again if the chain was reset"):
        connect_chain(settings(node.url, other))


def test_a_reset_chain_without_the_contracts_is_refused(chain: tuple[Anvil, Deployed, Path], tmp_path: Path) -> None:
    _, _, manifest = chain
    fresh = start_anvil()
    try:
        genesis = "0x" + bytes(Web3(Web3.HTTPProvider(fresh.url)).eth.get_block(0)["hash"]).hex()
        moved = json.loads(manifest.read_text()) | {"genesisHash": genesis}
        (tmp_path / "m.json").write_text(json.dumps(moved))
        with pytest.raises(ConfigurationError, match=r"no ProvenanceLedger contract at .* deploy again"):
            connect_chain(settings(fresh.url, tmp_path / "m.json"))
    finally:
        fresh.stop()


def test_an_unreachable_node_is_retryable(chain: tuple[Anvil, Deployed, Path]) -> None:
    _, _, manifest = chain
    with pytest.raises(RetryableError, match="cannot reach the node"):
        connect_chain(settings(f"http://127.0.0.1:{free_port()}", manifest))
