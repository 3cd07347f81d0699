"""ledger_service.core.merkle is OpenZeppelin's StandardMerkleTree: the same trees and proofs as npm's
@openzeppelin/merkle-tree, and proofs that OpenZeppelin's MerkleProof accepts on-chain."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_service.core import merkle
from ledger_service.core.merkle import MultiProof, StandardTree
from tests.ledger_service.core.conftest import Anchoring, OzMerkleTree

TYPES = ("bytes32", "address", "uint8", "uint64", "uint256", "bool")


def _value(kind: str) -> st.SearchStrategy[Any]:
    if kind == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if kind == "address":
        return st.binary(min_size=20, max_size=20)
    if kind == "bool":
        return st.booleans()
    return st.integers(0, 2 ** int(kind[4:]) - 1)


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 40) -> tuple[list[str], list[list[Any]]]:
    """A leaf encoding and 1..max_rows rows of values of it (duplicates allowed, as the library allows)."""
    encoding = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4))
    row = st.tuples(*(_value(kind) for kind in encoding)).map(list)
    return encoding, draw(st.lists(row, min_size=1, max_size=max_rows))


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    return str(value)


def _hex(items: Any) -> list[str]:
    return ["0x" + item.hex() for item in items]


def _tree(encoding: list[str], rows: list[list[Any]]) -> StandardTree:
    return StandardTree.of([merkle.leaf_hash(merkle.abi_encode_static(encoding, row)) for row in rows])


def test_the_readme_example_root() -> None:
    # The root printed by @openzeppelin/merkle-tree's README for its two-value example.
    rows: list[list[object]] = [
        [bytes.fromhex("11" * 20), 5 * 10**18],
        [bytes.fromhex("22" * 20), 25 * 10**17],
    ]
    root = _tree(["address", "uint256"], rows).root
    assert root.hex() == "d4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


@settings(max_examples=60, deadline=None)
@given(table=tables(), data=st.data())
def test_every_proof_and_multiproof_reaches_the_root(table: tuple[list[str], list[list[Any]]], data: Any) -> None:
    encoding, rows = table
    tree = _tree(encoding, rows)
    assert len(tree.tree) == 2 * len(rows) - 1
    assert merkle.is_valid_tree(tree.tree)
    for v in range(len(rows)):
        assert merkle.process_proof(tree.leaf(v), tree.proof(v)) == tree.root
    chosen = data.draw(st.lists(st.integers(0, len(rows) - 1), unique=True))
    multi = tree.multi_proof(chosen)
    assert sorted(multi.leaves) == sorted(tree.leaf(v) for v in chosen)
    assert merkle.process_multi_proof(multi) == tree.root


@settings(max_examples=40, deadline=None)
@given(table=tables(), index=st.integers(0, 39), flip=st.integers(0, 255))
def test_an_altered_leaf_or_proof_does_not_reach_the_root(
    table: tuple[list[str], list[list[Any]]], index: int, flip: int
) -> None:
    encoding, rows = table
    tree = _tree(encoding, rows)
    v = index % len(rows)
    leaf = bytearray(tree.leaf(v))
    leaf[flip % 32] ^= 1 + flip % 255
    assert merkle.process_proof(bytes(leaf), tree.proof(v)) != tree.root
    proof = tree.proof(v)
    if proof:
        node = bytearray(proof[0])
        node[0] ^= 0x80
        assert merkle.process_proof(tree.leaf(v), [bytes(node), *proof[1:]]) != tree.root
        broken = list(tree.tree)
        broken[1] = bytes(b ^ 0xFF for b in broken[1])
        assert not merkle.is_valid_tree(broken)


def test_malformed_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one leaf"):
        merkle.make_tree([])
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.make_tree([b"\x01" * 31])
    tree = StandardTree.of([bytes([i]) * 32 for i in range(5)])
    with pytest.raises(ValueError, match="not a leaf"):
        merkle.get_proof(tree.tree, 0)
    with pytest.raises(ValueError, match="twice"):
        merkle.get_multi_proof(tree.tree, [len(tree.tree) - 1, len(tree.tree) - 1])
    with pytest.raises(ValueError, match="do not fit"):
        merkle.process_multi_proof(MultiProof((tree.leaf(0),), (), (True,)))
    with pytest.raises(ValueError, match="consume more"):
        merkle.process_multi_proof(MultiProof((tree.leaf(0),), (tree.leaf(1),), (True,)))
    with pytest.raises(ValueError, match="uint8"):
        merkle.abi_encode_static(["uint8"], [256])
    with pytest.raises(ValueError, match="unsupported"):
        merkle.abi_encode_static(["string"], ["x"])
    with pytest.raises(ValueError, match="2 values for 1 types"):
        merkle.abi_encode_static(["bool"], [True, False])


def test_an_empty_multiproof_is_the_root_itself() -> None:
    tree = StandardTree.of([bytes([i]) * 32 for i in range(3)])
    multi = tree.multi_proof([])
    assert multi == MultiProof((), (tree.root,), ())
    assert merkle.process_multi_proof(multi) == tree.root


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), data=st.data())
def test_the_same_tree_and_proofs_as_openzeppelin_merkle_tree(
    oz_merkle_tree: OzMerkleTree, table: tuple[list[str], list[list[Any]]], data: Any
) -> None:
    encoding, rows = table
    subsets = [data.draw(st.lists(st.integers(0, len(rows) - 1), unique=True, max_size=len(rows))) for _ in range(2)]
    reference = oz_merkle_tree.ask(
        {"values": [[_json(v) for v in row] for row in rows], "encoding": encoding, "multi": subsets}
    )
    assert "error" not in reference, reference
    tree = _tree(encoding, rows)
    assert "0x" + tree.root.hex() == reference["root"]
    assert _hex(tree.tree) == reference["tree"]
    assert list(tree.tree_indices) == reference["treeIndices"]
    assert [("0x" + tree.leaf(v).hex()) for v in range(len(rows))] == reference["leafHashes"]
    assert [_hex(tree.proof(v)) for v in range(len(rows))] == reference["proofs"]
    for subset, theirs in zip(subsets, reference["multiProofs"], strict=True):
        ours = tree.multi_proof(subset)
        assert {"leaves": _hex(ours.leaves), "proof": _hex(ours.proof), "proofFlags": list(ours.proof_flags)} == theirs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables())
def test_our_dump_loads_in_openzeppelin_merkle_tree_and_our_proofs_verify_there(
    oz_merkle_tree: OzMerkleTree, table: tuple[list[str], list[list[Any]]]
) -> None:
    encoding, rows = table
    tree = _tree(encoding, rows)
    dump = tree.dump([[_json(v) for v in row] for row in rows], encoding)
    answer = oz_merkle_tree.ask({"dump": dump, "proofs": [_hex(tree.proof(v)) for v in range(len(rows))]})
    assert answer == {"root": "0x" + tree.root.hex(), "verified": [True] * len(rows)}


def test_the_reference_refuses_a_dump_with_a_wrong_node(oz_merkle_tree: OzMerkleTree) -> None:
    # The other half of the test above: the reference does check what it loads.
    rows: list[list[Any]] = [[i] for i in range(4)]
    tree = _tree(["uint256"], rows)
    dump = tree.dump([[str(i)] for i in range(4)], ["uint256"])
    nodes = dump["tree"]
    assert isinstance(nodes, list)
    nodes[1] = "0x" + "00" * 32
    assert "error" in oz_merkle_tree.ask({"dump": dump, "proofs": [[]] * 4})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(max_rows=24), data=st.data())
def test_openzeppelin_merkle_proof_accepts_our_proofs_on_chain(
    anchoring: Anchoring, table: tuple[list[str], list[list[Any]]], data: Any
) -> None:
    encoding, rows = table
    tree = _tree(encoding, rows)
    probe = anchoring.probe.functions
    for v in range(len(rows)):
        assert probe.processProof(tree.proof(v), tree.leaf(v)).call() == tree.root
    chosen = data.draw(st.lists(st.integers(0, len(rows) - 1), unique=True, min_size=1))
    multi = tree.multi_proof(chosen)
    assert probe.processMultiProof(list(multi.proof), list(multi.proof_flags), list(multi.leaves)).call() == tree.root
