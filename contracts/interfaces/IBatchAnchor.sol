// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IBatchAnchor
 * @notice Merkle-batched anchoring of high-volume observation scans (docs/batching.md).
 *
 * A submitter holding a scanning role (carrier, manufacturer or merchant, as recorded in the
 * ProvenanceLedger) anchors a batch: the Merkle root of its scans, their count and the sha2-256
 * digest of the batch document that lists them (the digest inside the document's IPFS CID, as
 * for {IProvenanceLedger-EventInput}'s `document`). Nothing is stored per scan: the chain holds
 * one commitment per batch, the document holds the scans, and a scan is proved by a Merkle proof.
 *
 * Merkle format: OpenZeppelin's StandardMerkleTree (the npm package merkle-tree of OpenZeppelin),
 * leaves sorted, sorted-pair hashing, with the leaf of a scan
 *   leaf = keccak256(bytes.concat(keccak256(abi.encode(itemId, seq, prevHash, bizStep,
 *          disposition, location, document, bizTransaction, time, submitter))))
 * (the fields of {ScanLeaf}, in order), so a proof verifies with OpenZeppelin's `MerkleProof`
 * here and off-chain with any library implementing that format.
 *
 * Anchors are kept per (submitter, root): a root anchored by one account neither blocks nor
 * vouches for the same root sent by another, so copying a pending transaction's root gains nothing.
 * Which steps may be batched, and every per-scan role check, are the indexer's to enforce: the
 * contract only checks that the submitter may scan at all, and the submitter is accountable for
 * what it anchored.
 */
interface IBatchAnchor {
    /// @notice One batched scan, as hashed into its Merkle leaf.
    /// @param itemId keccak256 of the item's GS1 URI.
    /// @param seq The scan's 0-based number in the item's chain of batched scans.
    /// @param prevHash The leaf hash of the item's previous batched scan (zero for seq 0).
    /// @param bizStep CBV business step code (see EpcisCodes; observation steps only).
    /// @param disposition CBV disposition code (see EpcisCodes).
    /// @param location Read point, encoded as in {IProvenanceLedger-EventInput}.
    /// @param document An attached document's sha2-256 digest, or zero.
    /// @param bizTransaction Business transaction (e.g. a return id), or zero.
    /// @param time When the scan happened (Unix seconds, the scanner's clock).
    /// @param submitter The account that anchored the scan's batch.
    struct ScanLeaf {
        bytes32 itemId;
        uint64 seq;
        bytes32 prevHash;
        uint8 bizStep;
        uint8 disposition;
        bytes32 location;
        bytes32 document;
        bytes32 bizTransaction;
        uint64 time;
        address submitter;
    }

    /// @notice The stored record of an anchored batch (zeros if not anchored).
    /// @param anchoredAt Block timestamp of the anchoring transaction.
    /// @param count Number of scans the submitter declared.
    struct AnchorRecord {
        uint64 anchoredAt;
        uint32 count;
    }

    /// @notice A batch of `count` scans with Merkle root `root` was anchored by `submitter`; the scans are
    /// in the document whose sha2-256 digest is `documentDigest`.
    event BatchAnchored(
        bytes32 indexed root,
        address indexed submitter,
        bytes32 indexed documentDigest,
        uint32 count,
        uint64 anchoredAt
    );

    /// @notice The account holds none of the scanning roles (carrier, manufacturer, merchant).
    error BatchAnchorNotScanner(address account);
    /// @notice The root or the document digest is zero.
    error BatchAnchorZeroCommitment(bytes32 root, bytes32 documentDigest);
    /// @notice The event count is zero or larger than the maximum.
    error BatchAnchorInvalidCount(uint256 count);
    /// @notice This submitter already anchored this root.
    error BatchAnchorAlreadyAnchored(address submitter, bytes32 root);

    /**
     * @notice Anchors a batch of scans recorded by the caller.
     *
     * Requirements: the caller holds CARRIER_ROLE, MANUFACTURER_ROLE or MERCHANT_ROLE on the ledger;
     * `root` and `documentDigest` are not zero; 1 <= `count` <= MAX_BATCH_EVENTS; the caller has not
     * anchored `root` before.
     *
     * Emits a {BatchAnchored} event.
     */
    function anchorBatch(bytes32 root, uint32 count, bytes32 documentDigest) external;

    /// @notice The record of `root` as anchored by `submitter` (zeros if it was not).
    function anchorOf(address submitter, bytes32 root) external view returns (AnchorRecord memory);

    /// @notice Whether `submitter` anchored `root`.
    function isAnchored(address submitter, bytes32 root) external view returns (bool);

    /// @notice The Merkle leaf of a scan (see the format above).
    function scanLeaf(ScanLeaf calldata scan) external pure returns (bytes32);

    /**
     * @notice Whether `scan` is in a batch with Merkle root `root` that `scan.submitter` anchored, by
     * `proof` (OpenZeppelin's `MerkleProof` format: the sibling hashes from the leaf up).
     */
    function verifyScan(ScanLeaf calldata scan, bytes32 root, bytes32[] calldata proof) external view returns (bool);
}
