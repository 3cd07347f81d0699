// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IBatchAnchor} from "./IBatchAnchor.sol";

/**
 * @title ITransitProofs
 * @notice A return's first carrier scan proved from a Merkle-anchored scan batch instead of sent as a
 * transaction (docs/batching.md), so a carrier that only batches its scans still triggers the fast refund.
 *
 * The scan must be a carrier step (`departing`, `arriving` or `transporting`) with disposition `in_transit`
 * of the return's item, name the return as its business transaction, and sit under a root that its
 * submitter, a CARRIER_ROLE holder, anchored on a BatchAnchor holding BATCH_ANCHOR_ROLE; its time lies
 * between the return's authorization and the anchor, and the anchor is not after shipBy. The escrow then does
 * what {IReturnsEscrow}'s `markInTransit` does, in the submitter's name, with the root as the state change's
 * evidence. A scan names one return and a return goes in transit once, so no scan pays twice.
 */
interface ITransitProofs {
    /// @notice `anchor` does not hold BATCH_ANCHOR_ROLE: its anchors prove nothing to the escrow.
    error EscrowUnknownBatchAnchor(address anchor);
    /// @notice `submitter` has not anchored a batch with this root.
    error EscrowBatchNotAnchored(address submitter, bytes32 root);
    /// @notice The batch's submitter does not hold CARRIER_ROLE.
    error EscrowBatchNotCarrier(address submitter);
    /// @notice The proof does not lead from the scan's leaf to the root.
    error EscrowScanNotInBatch(bytes32 root);
    /// @notice The scan is of another item than the return's.
    error EscrowScanWrongItem(bytes32 returnId, bytes32 itemId);
    /// @notice The scan names another business transaction than the return.
    error EscrowScanWrongReturn(bytes32 returnId, bytes32 bizTransaction);
    /// @notice The scan is not a carrier step with disposition `in_transit`.
    error EscrowScanWrongStep(uint8 bizStep, uint8 disposition);
    /// @notice The scan's time is before the return's authorization or after its batch's anchor.
    error EscrowScanOutOfWindow(bytes32 returnId, uint64 time, uint256 earliest, uint256 latest);

    /**
     * @notice The return's first carrier scan, proved from a batch: the parcel is on its way back. With fast
     * refund the consumer is paid now. Anyone may send the proof; the scan's submitter is the actor.
     * @param anchor The BatchAnchor the batch was anchored on.
     * @param scan The scan's leaf values, as in the batch document.
     * @param root The batch's Merkle root (the batch is (scan.submitter, root)).
     * @param proof The scan's Merkle proof (OpenZeppelin's `MerkleProof` format).
     *
     * Requirements: `anchor` holds BATCH_ANCHOR_ROLE; the return is Authorized; the scan is of its item,
     * names it as business transaction, is a carrier step with `in_transit`; the submitter holds
     * CARRIER_ROLE and anchored `root`, not after shipBy; the proof holds; authorization <= scan time <=
     * anchor time.
     *
     * Emits a {IReturnsEscrow-ReturnStateChanged} event (actor the submitter, deadline inspectBy, evidence
     * the root), an item event (the scan's step, `in_transit`, its read point and document) and, with fast
     * refund, an {IReturnsEscrow-EscrowSettled} event.
     */
    function markInTransitByProof(
        bytes32 returnId,
        IBatchAnchor anchor,
        IBatchAnchor.ScanLeaf calldata scan,
        bytes32 root,
        bytes32[] calldata proof
    ) external;
}
