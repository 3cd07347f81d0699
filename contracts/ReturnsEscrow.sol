// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {EpcisCodes} from "./EpcisCodes.sol";
import {Roles} from "./Roles.sol";
import {TransitProofs} from "./TransitProofs.sol";

/**
 * @title ReturnsEscrow
 * @notice Sales bound to a policy version, the return lifecycle and the ERC-20
 * escrow of each authorized return's refund (lifecycle in {IReturnsEscrow}),
 * with the unit-level check at receiving and inspection. Physical steps of a
 * return are also recorded in the item's history in the {ProvenanceLedger},
 * with the return id as business transaction. The bookkeeping it shares with
 * exchanges (sales, deposits, payouts) is in {EscrowBook}; the first carrier
 * scan proved from a scan batch is in {TransitProofs}.
 *
 * Invariants: for every token, this contract's balance equals the sum of the
 * deposits of returns not yet settled; a return is settled at most once and
 * its two payouts add up to its deposit; an item has at most one open return.
 */
contract ReturnsEscrow is TransitProofs {
    constructor(IProvenanceLedger ledger_) TransitProofs(ledger_) {}

    /**
     * @notice Records the sale of an item to `consumer`, bound to the merchant's current policy.
     * @param orderRef Digest of the merchant's order reference (recorded as business transaction).
     * @param location Where it was sold (see {IProvenanceLedger-EventInput}).
     *
     * Requirements: the item is registered; caller is its merchant of record or
     * a seller it set; the merchant has a policy; the item has no current sale
     * (or its last sale came back by a return); consumer and price non-zero,
     * token a contract.
     *
     * Emits a {SaleRecorded} event, and an item event (`retail_selling`, `retail_sold`).
     */
    function recordSale(
        bytes32 itemId,
        address consumer,
        address token,
        uint96 price,
        bytes32 orderRef,
        bytes32 location
    ) external {
        address merchant = _ledger.merchantOf(itemId);
        if (merchant == address(0)) revert EscrowItemUnknown(itemId);
        if (!_ledger.isSeller(merchant, msg.sender)) revert EscrowNotSeller(itemId, msg.sender);
        uint32 version = currentPolicyVersion(merchant);
        if (version == 0) revert EscrowPolicyMissing(merchant);
        if (consumer == address(0)) revert EscrowSaleInvalid("consumer");
        if (token.code.length == 0) revert EscrowSaleInvalid("token");
        if (price == 0) revert EscrowSaleInvalid("price");
        _recordSale(itemId, merchant, consumer, token, price, version, orderRef, location, msg.sender);
    }

    /**
     * @notice Authorizes a return of the item's current sale and deposits the refund in escrow.
     * @param amount Refund deposited, in token units (at most the sale price).
     * @param fastRefund Pay the consumer at the first carrier scan (the bound policy must allow it).
     * @return returnId keccak256(abi.encode(chainid, this, itemId, saleSeq, index of the return in the sale)).
     *
     * Requirements: caller is the sale's merchant and has approved `amount` of
     * the sale's token; no open return for the item.
     *
     * Emits a {ReturnAuthorized} event.
     */
    function authorizeReturn(
        bytes32 itemId,
        uint96 amount,
        bool fastRefund
    ) external nonReentrant returns (bytes32 returnId) {
        return _authorize(itemId, msg.sender, amount, fastRefund, false);
    }

    /**
     * @notice The consumer withdraws a return before it ships; the deposit goes back to the merchant.
     *
     * Requirements: caller is the return's consumer or holds CONSUMER_AGENT_ROLE; state Authorized.
     *
     * Emits a {ReturnStateChanged} and an {EscrowSettled} event.
     */
    function cancelReturn(bytes32 returnId) external nonReentrant {
        ReturnRecord storage r = _load(returnId);
        _requireConsumer(r, returnId);
        _expect(r, returnId, ReturnState.Authorized);
        _transition(r, returnId, ReturnState.Cancelled, 0, bytes32(0));
        _close(r.itemId, false);
        _settle(r, returnId, 0);
    }

    /**
     * @notice First carrier scan: the parcel is on its way back. With fast refund the consumer is paid now.
     * @param location Where the parcel was scanned.
     *
     * Requirements: caller has CARRIER_ROLE; state Authorized; not after shipBy.
     *
     * Emits a {ReturnStateChanged} event (deadline = inspectBy), an item event
     * (`transporting`, `in_transit`) and, with fast refund, an {EscrowSettled} event.
     */
    function markInTransit(bytes32 returnId, bytes32 location) external nonReentrant {
        _requireRole(Roles.CARRIER, msg.sender);
        ReturnRecord storage r = _load(returnId);
        _expect(r, returnId, ReturnState.Authorized);
        if (block.timestamp > r.shipBy) revert EscrowDeadlinePassed(returnId, r.shipBy);
        _inTransit(r, returnId, msg.sender, EpcisCodes.TRANSPORTING, location, bytes32(0), bytes32(0));
    }

    /**
     * @notice The parcel reached the merchant (scanned by the carrier or received by the merchant).
     *
     * Requirements: caller has CARRIER_ROLE or is the return's merchant; state InTransit.
     *
     * Emits a {ReturnStateChanged} event and an item event (`arriving` by a
     * carrier or `receiving` by the merchant, disposition `returned`).
     */
    function markReceived(bytes32 returnId, bytes32 location) external {
        _received(returnId, location, bytes32(0));
    }

    /**
     * @notice As {markReceived}, with the item id of the EPC scanned on the unit that arrived. A unit
     * other than the one sold (another serial, another merchant's item, an EPC not on the ledger)
     * is recorded as a mismatch and the return goes to the arbiter (state Disputed).
     *
     * Requirements: as {markReceived}; `scannedItemId` non-zero.
     *
     * Emits what {markReceived} emits or, on a mismatch, a {ReturnUnitMismatch} and a
     * {ReturnStateChanged} event, and an item event on the scanned unit when the ledger knows it.
     */
    function markReceivedUnit(bytes32 returnId, bytes32 location, bytes32 scannedItemId) external {
        if (scannedItemId == bytes32(0)) revert EscrowUnitNotScanned(returnId);
        _received(returnId, location, scannedItemId);
    }

    /**
     * @notice Records the inspection result. Pass: the consumer is refunded less the restocking fee
     * (unless already paid by fast refund). Fail: the consumer may dispute within the policy's window.
     * @param report Digest of the inspection report (required).
     *
     * Requirements: caller has INSPECTOR_ROLE; state Received; not after
     * inspectBy unless the deposit was already paid.
     *
     * Emits a {ReturnStateChanged} event, an item event (`inspecting`,
     * `conformant` or `non_conformant`) and, when it pays, an {EscrowSettled} event.
     */
    function recordInspection(bytes32 returnId, bool passed, bytes32 report, bytes32 location) external nonReentrant {
        _inspect(returnId, passed, report, location, bytes32(0));
    }

    /**
     * @notice As {recordInspection}, with the item id of the EPC scanned on the inspected unit. A unit
     * other than the one sold is recorded as a mismatch and the return goes to the arbiter; nothing is paid.
     *
     * Requirements: as {recordInspection}; `scannedItemId` non-zero.
     *
     * Emits what {recordInspection} emits or, on a mismatch, a {ReturnUnitMismatch} and a
     * {ReturnStateChanged} event, and an item event on the scanned unit when the ledger knows it.
     */
    function recordInspectionUnit(
        bytes32 returnId,
        bool passed,
        bytes32 report,
        bytes32 location,
        bytes32 scannedItemId
    ) external nonReentrant {
        if (scannedItemId == bytes32(0)) revert EscrowUnitNotScanned(returnId);
        _inspect(returnId, passed, report, location, scannedItemId);
    }

    /// @dev `scanned` zero: no unit scanned (the old entry point), taken as the unit sold.
    function _received(bytes32 returnId, bytes32 location, bytes32 scanned) private {
        ReturnRecord storage r = _load(returnId);
        uint8 bizStep = EpcisCodes.RECEIVING;
        if (msg.sender != r.merchant) {
            _requireRole(Roles.CARRIER, msg.sender);
            bizStep = EpcisCodes.ARRIVING;
        }
        _expect(r, returnId, ReturnState.InTransit);
        if (scanned != bytes32(0) && scanned != r.itemId) {
            _unitMismatch(r, returnId, scanned, bizStep, EpcisCodes.RETURNED, location, bytes32(0));
            return;
        }
        _transition(r, returnId, ReturnState.Received, 0, bytes32(0));
        _recordItemEvent(r.itemId, returnId, bizStep, EpcisCodes.RETURNED, location, bytes32(0));
    }

    function _inspect(bytes32 returnId, bool passed, bytes32 report, bytes32 location, bytes32 scanned) private {
        _requireRole(Roles.INSPECTOR, msg.sender);
        ReturnRecord storage r = _load(returnId);
        _expect(r, returnId, ReturnState.Received);
        if (report == bytes32(0)) revert EscrowReportMissing(returnId);
        if (!r.settled && block.timestamp > r.inspectBy) revert EscrowDeadlinePassed(returnId, r.inspectBy);
        bytes32 itemId = r.itemId;
        if (scanned != bytes32(0) && scanned != itemId) {
            _unitMismatch(r, returnId, scanned, EpcisCodes.INSPECTING, EpcisCodes.NON_CONFORMANT, location, report);
            return;
        }
        if (passed) {
            _transition(r, returnId, ReturnState.Accepted, 0, report);
            _close(itemId, true);
        } else {
            uint40 disputeBy;
            if (r.settled) {
                _close(itemId, true);
            } else {
                disputeBy = uint40(block.timestamp + uint256(_policy(r.merchant, r.policyVersion).disputeWindowDays) * 1 days);
                r.disputeBy = disputeBy;
            }
            _transition(r, returnId, ReturnState.Rejected, disputeBy, report);
        }
        _recordItemEvent(itemId, returnId, EpcisCodes.INSPECTING, passed ? EpcisCodes.CONFORMANT : EpcisCodes.NON_CONFORMANT, location, report);
        if (passed && !r.settled) _settle(r, returnId, _refundAfterFee(r));
    }

    /**
     * @notice The consumer disputes a failed inspection; an arbiter will split the deposit.
     * @param evidence Digest of the consumer's evidence, or zero.
     *
     * Requirements: caller is the return's consumer or holds CONSUMER_AGENT_ROLE; state Rejected with the
     * deposit unpaid; not after disputeBy.
     *
     * Emits a {ReturnStateChanged} event.
     */
    function dispute(bytes32 returnId, bytes32 evidence) external {
        ReturnRecord storage r = _load(returnId);
        _requireConsumer(r, returnId);
        _expect(r, returnId, ReturnState.Rejected);
        if (r.settled) revert EscrowAlreadySettled(returnId);
        if (block.timestamp > r.disputeBy) revert EscrowDeadlinePassed(returnId, r.disputeBy);
        _transition(r, returnId, ReturnState.Disputed, 0, evidence);
    }

    /**
     * @notice An arbiter resolves a dispute: `consumerAmount` to the consumer, the rest to the merchant.
     * @param ruling Digest of the arbiter's ruling, or zero.
     *
     * Requirements: caller has ARBITER_ROLE; state Disputed; consumerAmount <= deposit.
     *
     * Emits a {ReturnStateChanged} and an {EscrowSettled} event.
     */
    function resolveDispute(bytes32 returnId, uint96 consumerAmount, bytes32 ruling) external nonReentrant {
        _requireRole(Roles.ARBITER, msg.sender);
        ReturnRecord storage r = _load(returnId);
        _expect(r, returnId, ReturnState.Disputed);
        if (consumerAmount > r.amount) revert EscrowInvalidAmount(consumerAmount, r.amount);
        // A fast-refunded return reaches Disputed only by a unit mismatch: the ruling records the outcome,
        // the deposit is already paid.
        if (r.settled && consumerAmount != 0) revert EscrowAlreadySettled(returnId);
        _transition(r, returnId, ReturnState.Resolved, 0, ruling);
        _close(r.itemId, true);
        if (!r.settled) _settle(r, returnId, consumerAmount);
    }

    /**
     * @notice The merchant takes the deposit back: a return never shipped by shipBy (-> Expired),
     * or a failed inspection not disputed by disputeBy (-> Reclaimed).
     *
     * Requirements: caller is the return's merchant; state Authorized after
     * shipBy, or Rejected (unpaid) after disputeBy.
     *
     * Emits a {ReturnStateChanged} and an {EscrowSettled} event.
     */
    function reclaim(bytes32 returnId) external nonReentrant {
        ReturnRecord storage r = _load(returnId);
        if (msg.sender != r.merchant) revert EscrowNotMerchant(returnId, msg.sender);
        ReturnState state = r.state;
        if (state == ReturnState.Authorized) {
            if (block.timestamp <= r.shipBy) revert EscrowDeadlineNotReached(returnId, r.shipBy);
            _transition(r, returnId, ReturnState.Expired, 0, bytes32(0));
            _close(r.itemId, false);
        } else if (state == ReturnState.Rejected) {
            if (r.settled) revert EscrowAlreadySettled(returnId);
            if (block.timestamp <= r.disputeBy) revert EscrowDeadlineNotReached(returnId, r.disputeBy);
            _transition(r, returnId, ReturnState.Reclaimed, 0, bytes32(0));
            _close(r.itemId, true);
        } else {
            revert EscrowInvalidState(returnId, state);
        }
        _settle(r, returnId, 0);
    }

    /**
     * @notice The consumer takes the whole deposit when the merchant did not inspect by inspectBy.
     *
     * Requirements: caller is the return's consumer or holds CONSUMER_AGENT_ROLE; state InTransit or
     * Received; after inspectBy; deposit unpaid.
     *
     * Emits a {ReturnStateChanged} and an {EscrowSettled} event.
     */
    function claimUninspected(bytes32 returnId) external nonReentrant {
        ReturnRecord storage r = _load(returnId);
        _requireConsumer(r, returnId);
        if (r.state != ReturnState.InTransit && r.state != ReturnState.Received) revert EscrowInvalidState(returnId, r.state);
        if (r.settled) revert EscrowAlreadySettled(returnId);
        if (block.timestamp <= r.inspectBy) revert EscrowDeadlineNotReached(returnId, r.inspectBy);
        _transition(r, returnId, ReturnState.ConsumerClaimed, 0, bytes32(0));
        _close(r.itemId, true);
        _settle(r, returnId, r.amount);
    }

    /// @dev The return goes to the arbiter with the scanned id as evidence; the scanned unit's own history
    /// shows where it turned up, when the ledger knows it and the actor may record on it.
    function _unitMismatch(
        ReturnRecord storage r,
        bytes32 returnId,
        bytes32 scanned,
        uint8 bizStep,
        uint8 disposition,
        bytes32 location,
        bytes32 document
    ) private {
        IProvenanceLedger.ItemRecord memory unit = _ledger.itemOf(scanned);
        emit ReturnUnitMismatch(returnId, r.itemId, scanned, unit.merchant, msg.sender, bizStep, uint64(block.timestamp));
        _transition(r, returnId, ReturnState.Disputed, 0, scanned);
        bool allowed = bizStep != EpcisCodes.RECEIVING || _ledger.isSeller(unit.merchant, msg.sender);
        if (unit.count != 0 && !unit.destroyed && allowed) {
            _recordItemEvent(scanned, returnId, bizStep, disposition, location, document);
        }
    }
}
