"""BatchAnchor: who may anchor a scan batch, what an anchor records and emits, and scan proofs against it.

Leaves and proofs are computed here the way contracts/interfaces/IBatchAnchor.sol states them
(OpenZeppelin's StandardMerkleTree: double-hashed abi.encode leaves, sorted-pair hashing), without
the service's code.
"""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import BatchAnchor, chain, web3
from conftest import IN_TRANSIT, LOCATION, TRANSPORTING, ZERO32, item_id, item_uri
from eth_abi.abi import encode
from test_provenance_ledger import revert_message

ROOT = b"\x5a" * 32
DIGEST = b"\xd1" * 32
LEAF_TYPES = ["bytes32", "uint64", "bytes32", "uint8", "uint8", "bytes32", "bytes32", "bytes32", "uint64", "address"]


@pytest.fixture(scope="module")
def anchor(ledger: Any, admin: Any) -> Any:
    return BatchAnchor.deploy(ledger, {"from": admin})


def scan(n: int, submitter: Any, *, seq: int = 0, time: int = 1_700_000_000) -> tuple[Any, ...]:
    """A ScanLeaf of item n: an in-transit carrier scan."""
    return (item_id(item_uri(n)), seq, ZERO32, TRANSPORTING, IN_TRANSIT, LOCATION, ZERO32, ZERO32, time, str(submitter))


def leaf(values: tuple[Any, ...]) -> bytes:
    return bytes(web3.keccak(web3.keccak(encode(LEAF_TYPES, list(values)))))


def pair(a: bytes, b: bytes) -> bytes:
    return bytes(web3.keccak(min(a, b) + max(a, b)))


def four_leaf_tree(leaves: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """Root and each leaf's proof of a tree over four leaves (sorted, as StandardMerkleTree lays them out)."""
    a, b, c, d = sorted(leaves)
    # StandardMerkleTree puts the sorted leaves from the array's end backwards: pairs (d, c) and (b, a).
    left, right = pair(d, c), pair(b, a)
    proofs = {d: [c, right], c: [d, right], b: [a, left], a: [b, left]}
    return pair(left, right), [proofs[x] for x in leaves]


@pytest.mark.parametrize("role_holder", ["carrier", "manufacturer", "merchant"])
def test_a_scanning_role_anchors_a_batch(anchor: Any, request: Any, role_holder: str) -> None:
    submitter = request.getfixturevalue(role_holder)
    tx = anchor.anchorBatch(ROOT, 1000, DIGEST, {"from": submitter})
    event = tx.events["BatchAnchored"]
    stamp = chain[tx.block_number].timestamp
    assert dict(event) == {
        "root": "0x" + ROOT.hex(),
        "submitter": submitter.address,
        "documentDigest": "0x" + DIGEST.hex(),
        "count": 1000,
        "anchoredAt": stamp,
    }
    assert len(tx.events) == 1
    assert [int(x) for x in anchor.anchorOf(submitter, ROOT)] == [stamp, 1000]
    assert anchor.isAnchored(submitter, ROOT)


@pytest.mark.parametrize("account_name", ["inspector", "arbiter", "outsider", "admin"])
def test_an_account_without_a_scanning_role_cannot_anchor(anchor: Any, request: Any, account_name: str) -> None:
    account = request.getfixturevalue(account_name)
    with brownie.reverts(revert_message("BatchAnchorNotScanner", account)):
        anchor.anchorBatch(ROOT, 10, DIGEST, {"from": account})


def test_a_revoked_carrier_can_no_longer_anchor(anchor: Any, ledger: Any, admin: Any, carrier: Any) -> None:
    anchor.anchorBatch(ROOT, 10, DIGEST, {"from": carrier})
    ledger.revokeRole(ledger.CARRIER_ROLE(), carrier, {"from": admin})
    with brownie.reverts(revert_message("BatchAnchorNotScanner", carrier)):
        anchor.anchorBatch(b"\x01" * 32, 10, DIGEST, {"from": carrier})


@pytest.mark.parametrize(("root", "digest"), [(ZERO32, DIGEST), (ROOT, ZERO32), (ZERO32, ZERO32)])
def test_a_zero_root_or_digest_is_refused(anchor: Any, carrier: Any, root: bytes, digest: bytes) -> None:
    with brownie.reverts(revert_message("BatchAnchorZeroCommitment", root, digest)):
        anchor.anchorBatch(root, 10, digest, {"from": carrier})


@pytest.mark.parametrize("count", [0, 65_537, 2**32 - 1])
def test_an_empty_or_oversized_count_is_refused(anchor: Any, carrier: Any, count: int) -> None:
    with brownie.reverts(revert_message("BatchAnchorInvalidCount", count)):
        anchor.anchorBatch(ROOT, count, DIGEST, {"from": carrier})


@pytest.mark.parametrize("count", [1, 65_536])
def test_the_count_bounds_are_accepted(anchor: Any, carrier: Any, count: int) -> None:
    assert anchor.MAX_BATCH_EVENTS() == 65_536
    anchor.anchorBatch(ROOT, count, DIGEST, {"from": carrier})
    assert anchor.anchorOf(carrier, ROOT)[1] == count


def test_a_submitter_cannot_anchor_the_same_root_twice(anchor: Any, carrier: Any) -> None:
    anchor.anchorBatch(ROOT, 10, DIGEST, {"from": carrier})
    with brownie.reverts(revert_message("BatchAnchorAlreadyAnchored", carrier, ROOT)):
        anchor.anchorBatch(ROOT, 10, b"\x02" * 32, {"from": carrier})


def test_another_submitter_anchoring_the_same_root_neither_blocks_nor_vouches(
    anchor: Any, carrier: Any, manufacturer: Any
) -> None:
    # Copying a pending anchor's root under one's own account must not stop the real submitter.
    anchor.anchorBatch(ROOT, 10, DIGEST, {"from": manufacturer})
    assert not anchor.isAnchored(carrier, ROOT)
    anchor.anchorBatch(ROOT, 10, DIGEST, {"from": carrier})
    assert anchor.isAnchored(carrier, ROOT) and anchor.isAnchored(manufacturer, ROOT)


def test_unanchored_pairs_read_as_zero(anchor: Any, carrier: Any) -> None:
    assert [int(x) for x in anchor.anchorOf(carrier, ROOT)] == [0, 0]
    assert not anchor.isAnchored(carrier, ROOT)


def test_scan_leaf_is_the_standard_merkle_tree_leaf(anchor: Any, carrier: Any) -> None:
    values = scan(7, carrier, seq=3)
    values = (*values[:2], b"\x99" * 32, *values[3:6], b"\x44" * 32, b"\x55" * 32, *values[8:])
    assert bytes(anchor.scanLeaf(values)) == leaf(values)


def test_every_scan_of_an_anchored_batch_verifies(anchor: Any, carrier: Any) -> None:
    scans = [scan(n, carrier) for n in range(4)]
    root, proofs = four_leaf_tree([leaf(s) for s in scans])
    anchor.anchorBatch(root, 4, DIGEST, {"from": carrier})
    for values, proof in zip(scans, proofs, strict=True):
        assert anchor.verifyScan(values, root, proof)


def test_a_scan_does_not_verify_when_altered_unanchored_or_under_another_submitter(
    anchor: Any, carrier: Any, manufacturer: Any
) -> None:
    scans = [scan(n, carrier) for n in range(4)]
    root, proofs = four_leaf_tree([leaf(s) for s in scans])
    assert not anchor.verifyScan(scans[0], root, proofs[0])  # not anchored yet
    anchor.anchorBatch(root, 4, DIGEST, {"from": carrier})
    later = (*scans[0][:8], scans[0][8] + 1, scans[0][9])
    assert not anchor.verifyScan(later, root, proofs[0])
    assert not anchor.verifyScan(scans[0], root, proofs[1])
    # The same root anchored by the manufacturer does not vouch for scans naming it as their submitter.
    anchor.anchorBatch(root, 4, DIGEST, {"from": manufacturer})
    as_manufacturer = (*scans[0][:9], str(manufacturer))
    assert not anchor.verifyScan(as_manufacturer, root, proofs[0])


def test_a_batch_of_one_scan_is_its_own_root(anchor: Any, carrier: Any) -> None:
    values = scan(1, carrier)
    anchor.anchorBatch(leaf(values), 1, DIGEST, {"from": carrier})
    assert anchor.verifyScan(values, leaf(values), [])


def test_anchoring_costs_under_100_gas_per_event_at_1000_events(anchor: Any, carrier: Any, merchant: Any) -> None:
    # The target of issue #23; the merchant is the dearest role check (read third).
    assert anchor.anchorBatch(ROOT, 1000, DIGEST, {"from": carrier}).gas_used < 1000 * 100
    assert anchor.anchorBatch(ROOT, 1000, DIGEST, {"from": merchant}).gas_used < 1000 * 100
