"""Merkle trees in OpenZeppelin's StandardMerkleTree format (npm ``@openzeppelin/merkle-tree``), pure.

The format, so that a proof made here verifies with OpenZeppelin's ``MerkleProof`` on-chain and with
``StandardMerkleTree.verify`` off-chain:

- a leaf is ``keccak256(keccak256(abi.encode(values)))`` (hashed twice, so no leaf can pass for an
  inner node);
- inner nodes hash their two children in sorted order: ``keccak256(min(a, b) ++ max(a, b))``;
- leaves are sorted by hash (the library's default ``sortLeaves``), and the tree is an array of
  ``2n - 1`` nodes, the root at index 0, the children of node ``i`` at ``2i + 1`` and ``2i + 2``,
  the sorted leaves from the end backwards (leaf ``k`` of the sorted order at ``2n - 2 - k``);
- a proof is the sibling hashes from the leaf up; a multiproof is the library's
  ``{leaves, proof, proofFlags}``, leaves in descending tree index.

Invariants: :func:`make_tree` of ``n >= 1`` leaves has ``2n - 1`` nodes and every inner node is the
pair hash of its children; a proof from :meth:`StandardTree.proof` or :meth:`StandardTree.multi_proof`
processes back to the root. Tests compare every function with the npm library and with ``MerkleProof``.

We write it rather than use a PyPI port (``multiproof``, ``murky-tree``): those encode each leaf with
eth_abi's generic encoder and are untyped, while a batch's leaves are a fixed tuple of static words that
:func:`abi_encode_static` lays out directly (the batcher and the indexer hash every scan).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger_service.core.keccak import keccak_256

FORMAT = "standard-v1"
"""The ``format`` of the library's tree dump (:meth:`StandardTree.dump`)."""


def hash_pair(a: bytes, b: bytes) -> bytes:
    """An inner node: keccak256 of the two children, the smaller first (``MerkleProof``'s commutative hash)."""
    return keccak_256(a + b if a <= b else b + a).digest()


def leaf_hash(encoded: bytes) -> bytes:
    """A StandardMerkleTree leaf from its values' ``abi.encode``: keccak256 of keccak256 of it."""
    return keccak_256(keccak_256(encoded).digest()).digest()


def _word(kind: str, value: object) -> bytes:
    if kind == "bytes32":
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"a bytes32 value must be 32 bytes, got {value!r}")
        return value
    if kind == "address":
        if not isinstance(value, bytes) or len(value) != 20:
            raise ValueError(f"an address value must be 20 bytes, got {value!r}")
        return bytes(12) + value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"a bool value must be a bool, got {value!r}")
        return int(value).to_bytes(32, "big")
    if kind.startswith("uint"):
        bits = int(kind[4:] or "256")
        if bits % 8 or not 8 <= bits <= 256:
            raise ValueError(f"not an ABI type: {kind}")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise ValueError(f"a {kind} value must be an integer in [0, 2**{bits}), got {value!r}")
        return value.to_bytes(32, "big")
    raise ValueError(f"unsupported leaf type {kind!r} (bytes32, address, bool and uint<N> are)")


def abi_encode_static(types: Sequence[str], values: Sequence[object]) -> bytes:
    """``abi.encode`` of static values: one 32-byte word each, in order.

    Types: ``bytes32`` (32 bytes), ``address`` (20 bytes), ``bool`` and ``uint<N>`` (int). Raises
    ValueError on another type, a value of the wrong kind or size, or a count that differs.
    """
    if len(types) != len(values):
        raise ValueError(f"{len(values)} values for {len(types)} types")
    return b"".join(_word(kind, value) for kind, value in zip(types, values, strict=True))


def _parent(index: int) -> int:
    return (index - 1) // 2


def _sibling(index: int) -> int:
    return index + 1 if index % 2 else index - 1


def make_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The node array over ``leaves`` in the given order (the library's ``makeMerkleTree``).

    Raises ValueError when there are no leaves or a leaf is not 32 bytes.
    """
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    if any(len(leaf) != 32 for leaf in leaves):
        raise ValueError("a Merkle leaf is 32 bytes")
    size = 2 * len(leaves) - 1
    tree = [b""] * size
    tree[size - len(leaves) :] = reversed(leaves)
    for i in range(size - len(leaves) - 1, -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def is_valid_tree(tree: Sequence[bytes]) -> bool:
    """Whether ``tree`` is a node array whose every inner node is the pair hash of its children."""
    if not tree or any(len(node) != 32 for node in tree):
        return False
    size = len(tree)
    for i in range(size):
        left = 2 * i + 1
        if left + 1 < size:
            if tree[i] != hash_pair(tree[left], tree[left + 1]):
                return False
        elif left < size:
            return False  # an inner node with one child: not a tree the library builds
    return True


def _check_leaf_index(tree: Sequence[bytes], index: int) -> None:
    if not 0 <= index < len(tree) or 2 * index + 1 < len(tree):
        raise ValueError(f"tree index {index} is not a leaf of a tree of {len(tree)} nodes")


def get_proof(tree: Sequence[bytes], index: int) -> list[bytes]:
    """The proof of the leaf at tree ``index``: its siblings from the bottom up."""
    _check_leaf_index(tree, index)
    proof = []
    while index > 0:
        proof.append(tree[_sibling(index)])
        index = _parent(index)
    return proof


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``leaf`` and its ``proof`` imply (``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


@dataclass(frozen=True, slots=True)
class MultiProof:
    """The library's multiproof of several leaves at once (``MerkleProof.multiProofVerify``'s arguments)."""

    leaves: tuple[bytes, ...]
    proof: tuple[bytes, ...]
    proof_flags: tuple[bool, ...]


def get_multi_proof(tree: Sequence[bytes], indices: Sequence[int]) -> MultiProof:
    """The multiproof of the leaves at tree ``indices`` (the library's ``getMultiProof``).

    Raises ValueError on an index that is not a leaf or one given twice.
    """
    for index in indices:
        _check_leaf_index(tree, index)
    ordered = sorted(indices, reverse=True)
    if len(set(ordered)) != len(ordered):
        raise ValueError("cannot prove a leaf twice in one multiproof")
    stack = list(ordered)
    proof: list[bytes] = []
    flags: list[bool] = []
    head = 0  # the stack is consumed from the front and grows at the back
    while head < len(stack) and stack[head] > 0:
        j = stack[head]
        head += 1
        s = _sibling(j)
        if head < len(stack) and stack[head] == s:
            flags.append(True)
            head += 1
        else:
            flags.append(False)
            proof.append(tree[s])
        stack.append(_parent(j))
    if not ordered:
        proof.append(tree[0])
    return MultiProof(tuple(tree[i] for i in ordered), tuple(proof), tuple(flags))


def process_multi_proof(multi: MultiProof) -> bytes:
    """The root a multiproof implies (``MerkleProof.processMultiProof``). Raises ValueError if malformed."""
    if len(multi.leaves) + len(multi.proof) != len(multi.proof_flags) + 1:
        raise ValueError("the multiproof's leaves, proof and flags do not fit together")
    stack = list(multi.leaves)
    proof = list(multi.proof)
    head = proof_head = 0
    for flag in multi.proof_flags:
        if head >= len(stack):
            raise ValueError("the multiproof's flags consume more nodes than it has")
        a = stack[head]
        head += 1
        if flag:
            if head >= len(stack):
                raise ValueError("the multiproof's flags consume more nodes than it has")
            b = stack[head]
            head += 1
        else:
            if proof_head >= len(proof):
                raise ValueError("the multiproof's flags consume more proof hashes than it has")
            b = proof[proof_head]
            proof_head += 1
        stack.append(hash_pair(a, b))
    if len(stack) - head + len(proof) - proof_head != 1:
        raise ValueError("the multiproof does not reduce to one root")
    return stack[-1] if head < len(stack) else proof[proof_head]


@dataclass(frozen=True, slots=True)
class StandardTree:
    """A StandardMerkleTree over leaf hashes given in value order (leaves sorted by hash, as the library does).

    ``tree_indices[v]`` is where the ``v``-th value's leaf sits in ``tree``.
    """

    tree: tuple[bytes, ...]
    tree_indices: tuple[int, ...]

    @classmethod
    def of(cls, leaves: Sequence[bytes]) -> StandardTree:
        """The tree over these leaf hashes (value ``v``'s leaf is ``leaves[v]``). Raises ValueError if empty."""
        order = sorted(range(len(leaves)), key=leaves.__getitem__)
        tree = make_tree([leaves[v] for v in order])
        indices = [0] * len(leaves)
        for position, value_index in enumerate(order):
            indices[value_index] = len(tree) - 1 - position
        return cls(tuple(tree), tuple(indices))

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf(self, value_index: int) -> bytes:
        """The leaf hash of the ``value_index``-th value."""
        return self.tree[self.tree_indices[value_index]]

    def proof(self, value_index: int) -> list[bytes]:
        """The proof of the ``value_index``-th value's leaf."""
        return get_proof(self.tree, self.tree_indices[value_index])

    def multi_proof(self, value_indices: Sequence[int]) -> MultiProof:
        """The multiproof of several values' leaves (its leaves in descending tree index, as the library's)."""
        return get_multi_proof(self.tree, [self.tree_indices[v] for v in value_indices])

    def dump(self, values: Sequence[Sequence[object]], leaf_encoding: Sequence[str]) -> dict[str, object]:
        """The library's ``standard-v1`` dump, which ``StandardMerkleTree.load`` in JavaScript reads.

        ``values`` are the leaves' values as JSON values, in value order (the library writes
        bytes32 and address as ``0x`` hex, integers as decimal strings).
        """
        if len(values) != len(self.tree_indices):
            raise ValueError(f"{len(values)} values for a tree of {len(self.tree_indices)} leaves")
        return {
            "format": FORMAT,
            "leafEncoding": list(leaf_encoding),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {"value": list(value), "treeIndex": index}
                for value, index in zip(values, self.tree_indices, strict=True)
            ],
        }


class BatchTrees:
    """The trees of anchored batches, each built once from its leaf hashes (``0x`` hex, in value order) when a
    proof of one of its leaves is first asked for: a history or a query answer proves several scans of a batch."""

    def __init__(self, leaves: Mapping[tuple[int, int], Sequence[str]]) -> None:
        self._leaves = leaves
        self._trees: dict[tuple[int, int], StandardTree | None] = {}

    def proof(self, batch: tuple[int, int], value_index: int) -> tuple[str, ...]:
        """The ``0x`` hex proof of value ``value_index`` of ``batch``; empty when the batch's leaves are unknown or
        hold no such value."""
        if batch not in self._trees:
            leaves = self._leaves.get(batch, ())
            self._trees[batch] = StandardTree.of([bytes.fromhex(leaf[2:]) for leaf in leaves]) if leaves else None
        tree = self._trees[batch]
        if tree is None or not 0 <= value_index < len(tree.tree_indices):
            return ()
        return tuple("0x" + node.hex() for node in tree.proof(value_index))
