// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IBatchAnchor} from "./interfaces/IBatchAnchor.sol";
import {Roles} from "./Roles.sol";

/**
 * @title BatchAnchor
 * @notice Anchors Merkle roots of scan batches (see {IBatchAnchor} for the leaf format). Roles are
 * read from the ProvenanceLedger, which holds every role assignment of the system.
 *
 * Invariants: a (submitter, root) pair is anchored at most once, and only by a submitter that held
 * a scanning role at that moment; {verifyScan} accepts a scan only under a root its own submitter
 * anchored.
 */
contract BatchAnchor is IBatchAnchor {
    /// @notice Most scans one batch may declare (a tree of at most 17 levels).
    uint32 public constant MAX_BATCH_EVENTS = 65_536;

    IAccessControl private immutable _ledger;

    mapping(address submitter => mapping(bytes32 root => AnchorRecord)) private _anchors;

    /**
     * @param ledger_ The ProvenanceLedger whose roles decide who may anchor.
     */
    constructor(IAccessControl ledger_) {
        _ledger = ledger_;
    }

    /// @inheritdoc IBatchAnchor
    function anchorBatch(bytes32 root, uint32 count, bytes32 documentDigest) external {
        if (!_isScanner(msg.sender)) revert BatchAnchorNotScanner(msg.sender);
        if (root == bytes32(0) || documentDigest == bytes32(0)) revert BatchAnchorZeroCommitment(root, documentDigest);
        if (count == 0 || count > MAX_BATCH_EVENTS) revert BatchAnchorInvalidCount(count);
        AnchorRecord storage anchor = _anchors[msg.sender][root];
        if (anchor.anchoredAt != 0) revert BatchAnchorAlreadyAnchored(msg.sender, root);
        uint64 anchoredAt = uint64(block.timestamp);
        anchor.anchoredAt = anchoredAt;
        anchor.count = count;
        emit BatchAnchored(root, msg.sender, documentDigest, count, anchoredAt);
    }

    /// @inheritdoc IBatchAnchor
    function anchorOf(address submitter, bytes32 root) external view returns (AnchorRecord memory) {
        return _anchors[submitter][root];
    }

    /// @inheritdoc IBatchAnchor
    function isAnchored(address submitter, bytes32 root) public view returns (bool) {
        return _anchors[submitter][root].anchoredAt != 0;
    }

    /// @inheritdoc IBatchAnchor
    function scanLeaf(ScanLeaf calldata scan) public pure returns (bytes32) {
        // A static struct's abi.encode is its fields' words in order: the StandardMerkleTree leaf of the tuple.
        return keccak256(bytes.concat(keccak256(abi.encode(scan))));
    }

    /// @inheritdoc IBatchAnchor
    function verifyScan(ScanLeaf calldata scan, bytes32 root, bytes32[] calldata proof) external view returns (bool) {
        return isAnchored(scan.submitter, root) && MerkleProof.verifyCalldata(proof, root, scanLeaf(scan));
    }

    /// @notice The ledger whose roles this contract reads.
    function ledger() external view returns (address) {
        return address(_ledger);
    }

    /// @dev Carriers scan most often, so their role is read first.
    function _isScanner(address account) private view returns (bool) {
        return
            _ledger.hasRole(Roles.CARRIER, account) ||
            _ledger.hasRole(Roles.MANUFACTURER, account) ||
            _ledger.hasRole(Roles.MERCHANT, account);
    }
}
