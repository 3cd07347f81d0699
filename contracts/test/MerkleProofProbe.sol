// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/**
 * @title MerkleProofProbe
 * @notice Test-only: exposes OpenZeppelin's `MerkleProof` on raw leaf hashes, so the service's Merkle
 * code (ledger_service/core/merkle.py) can be checked against the on-chain verifier, multiproofs included.
 */
contract MerkleProofProbe {
    /// @notice `MerkleProof.processProof`: the root implied by `leaf` and its sibling path.
    function processProof(bytes32[] calldata proof, bytes32 leaf) external pure returns (bytes32) {
        return MerkleProof.processProofCalldata(proof, leaf);
    }

    /// @notice `MerkleProof.processMultiProof`: the root implied by `leaves`, `proof` and `proofFlags`.
    function processMultiProof(
        bytes32[] calldata proof,
        bool[] calldata proofFlags,
        bytes32[] calldata leaves
    ) external pure returns (bytes32) {
        return MerkleProof.processMultiProofCalldata(proof, proofFlags, leaves);
    }
}
