// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IBatchAnchor} from "./interfaces/IBatchAnchor.sol";
import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {ITransitProofs} from "./interfaces/ITransitProofs.sol";
import {EpcisCodes} from "./EpcisCodes.sol";
import {EscrowBook} from "./EscrowBook.sol";
import {Roles} from "./Roles.sol";

/**
 * @title TransitProofs
 * @notice The step from Authorized to InTransit, by a carrier's own call ({ReturnsEscrow-markInTransit}) or
 * by the Merkle proof of a scan its carrier batched ({markInTransitByProof}, rules in {ITransitProofs}).
 *
 * Invariant: both ways make the same change (state, inspectBy, item event, fast refund), once per return.
 */
abstract contract TransitProofs is EscrowBook, ITransitProofs {
    constructor(IProvenanceLedger ledger_) EscrowBook(ledger_) {}

    /// @inheritdoc ITransitProofs
    function markInTransitByProof(
        bytes32 returnId,
        IBatchAnchor anchor,
        IBatchAnchor.ScanLeaf calldata scan,
        bytes32 root,
        bytes32[] calldata proof
    ) external nonReentrant {
        if (!_ledger.hasRole(Roles.BATCH_ANCHOR, address(anchor))) revert EscrowUnknownBatchAnchor(address(anchor));
        ReturnRecord storage r = _load(returnId);
        _expect(r, returnId, ReturnState.Authorized);
        if (scan.itemId != r.itemId) revert EscrowScanWrongItem(returnId, scan.itemId);
        if (scan.bizTransaction != returnId) revert EscrowScanWrongReturn(returnId, scan.bizTransaction);
        if (!_isTransitScan(scan.bizStep, scan.disposition)) revert EscrowScanWrongStep(scan.bizStep, scan.disposition);
        address submitter = scan.submitter;
        if (!_ledger.hasRole(Roles.CARRIER, submitter)) revert EscrowBatchNotCarrier(submitter);
        uint64 anchoredAt = anchor.anchorOf(submitter, root).anchoredAt;
        if (anchoredAt == 0) revert EscrowBatchNotAnchored(submitter, root);
        // The anchor, not the scanner's clock, is what the deadline is held to.
        if (anchoredAt > r.shipBy) revert EscrowDeadlinePassed(returnId, r.shipBy);
        uint256 authorizedAt = r.shipBy - uint256(_policy(r.merchant, r.policyVersion).shipByDays) * 1 days;
        if (scan.time < authorizedAt || scan.time > anchoredAt) {
            revert EscrowScanOutOfWindow(returnId, scan.time, authorizedAt, anchoredAt);
        }
        if (!anchor.verifyScan(scan, root, proof)) revert EscrowScanNotInBatch(root);
        _inTransit(r, returnId, submitter, scan.bizStep, scan.location, scan.document, root);
    }

    /// @dev Opens the inspection period, records the item event in `actor`'s name and pays a fast refund.
    function _inTransit(
        ReturnRecord storage r,
        bytes32 returnId,
        address actor,
        uint8 bizStep,
        bytes32 location,
        bytes32 document,
        bytes32 evidence
    ) internal {
        uint40 inspectBy = uint40(block.timestamp + uint256(_policy(r.merchant, r.policyVersion).inspectByDays) * 1 days);
        r.inspectBy = inspectBy;
        _transitionBy(actor, r, returnId, ReturnState.InTransit, inspectBy, evidence);
        _recordItemEventBy(actor, r.itemId, returnId, bizStep, EpcisCodes.IN_TRANSIT, location, document);
        if (r.fastRefund) _settle(r, returnId, _refundAfterFee(r));
    }

    function _isTransitScan(uint8 bizStep, uint8 disposition) private pure returns (bool) {
        bool carrierStep = bizStep == EpcisCodes.DEPARTING ||
            bizStep == EpcisCodes.ARRIVING ||
            bizStep == EpcisCodes.TRANSPORTING;
        return carrierStep && disposition == EpcisCodes.IN_TRANSIT;
    }
}
