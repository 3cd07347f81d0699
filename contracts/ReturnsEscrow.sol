// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {EpcisCodes} from "./EpcisCodes.sol";
import {ReturnPolicies} from "./ReturnPolicies.sol";
import {Roles} from "./Roles.sol";

/**
 * @title ReturnsEscrow
 * @notice Sales bound to a policy version, the return lifecycle and the ERC-20
 * escrow of each authorized return's refund (lifecycle in {IReturnsEscrow}).
 * Physical steps of a return are also recorded in the item's history in the
 * {ProvenanceLedger}, with the return id as business transaction.
 *
 * Invariants: for every token, this contract's balance equals the sum of the
 * deposits of returns not yet settled; a return is settled at most once and
 * its two payouts add up to its deposit; an item has at most one open return.
 */
contract ReturnsEscrow is ReturnPolicies, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint256 private constant _BPS = 10_000;

    mapping(bytes32 itemId => SaleRecord) private _sales;
    mapping(bytes32 returnId => ReturnRecord) private _returns;

    constructor(IProvenanceLedger ledger_) ReturnPolicies(ledger_) {}

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
        SaleRecord storage sale = _sales[itemId];
        if (sale.saleSeq != 0 && !sale.closed) revert EscrowItemAlreadySold(itemId);
        uint32 saleSeq = sale.saleSeq + 1;
        _sales[itemId] = SaleRecord({
            consumer: consumer,
            soldAt: uint40(block.timestamp),
            policyVersion: version,
            returnCount: 0,
            returnOpen: false,
            closed: false,
            token: token,
            price: price,
            merchant: merchant,
            saleSeq: saleSeq
        });
        emit SaleRecorded(itemId, merchant, consumer, saleSeq, token, price, version, orderRef, uint64(block.timestamp));
        _ledger.recordEventFor(
            msg.sender,
            IProvenanceLedger.EventInput(
                itemId, EpcisCodes.RETAIL_SELLING, EpcisCodes.RETAIL_SOLD, location, bytes32(0), orderRef
            )
        );
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
        SaleRecord storage sale = _sales[itemId];
        if (sale.saleSeq == 0 || sale.closed) revert EscrowNoActiveSale(itemId);
        if (msg.sender != sale.merchant) revert EscrowNotMerchant(itemId, msg.sender);
        if (sale.returnOpen) revert EscrowReturnAlreadyOpen(itemId, returnIdOf(itemId, sale.saleSeq, sale.returnCount - 1));
        if (sale.returnCount == type(uint8).max) revert EscrowTooManyReturns(itemId);
        if (amount == 0 || amount > sale.price) revert EscrowInvalidAmount(amount, sale.price);
        Policy storage policy = _policy(sale.merchant, sale.policyVersion);
        if (fastRefund && (!policy.fastRefund || (policy.fastRefundMaxValue != 0 && amount > policy.fastRefundMaxValue))) {
            revert EscrowFastRefundNotAllowed(itemId);
        }
        returnId = returnIdOf(itemId, sale.saleSeq, sale.returnCount);
        sale.returnCount += 1;
        sale.returnOpen = true;
        uint40 shipBy = uint40(block.timestamp + uint256(policy.shipByDays) * 1 days);
        _returns[returnId] = ReturnRecord({
            itemId: itemId,
            consumer: sale.consumer,
            amount: amount,
            merchant: sale.merchant,
            shipBy: shipBy,
            inspectBy: 0,
            state: ReturnState.Authorized,
            fastRefund: fastRefund,
            token: sale.token,
            disputeBy: 0,
            feeBps: policy.restockingFeeBps,
            settled: false,
            policyVersion: sale.policyVersion
        });
        emit ReturnAuthorized(
            returnId,
            itemId,
            sale.consumer,
            sale.merchant,
            sale.token,
            amount,
            policy.restockingFeeBps,
            fastRefund,
            sale.policyVersion,
            sale.saleSeq,
            shipBy
        );
        IERC20 token = IERC20(sale.token);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert EscrowTokenTransferMismatch(address(token), amount, received);
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
        uint40 inspectBy = uint40(block.timestamp + uint256(_policy(r.merchant, r.policyVersion).inspectByDays) * 1 days);
        r.inspectBy = inspectBy;
        _transition(r, returnId, ReturnState.InTransit, inspectBy, bytes32(0));
        _recordItemEvent(r.itemId, returnId, EpcisCodes.TRANSPORTING, EpcisCodes.IN_TRANSIT, location, bytes32(0));
        if (r.fastRefund) _settle(r, returnId, _refundAfterFee(r));
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
        ReturnRecord storage r = _load(returnId);
        uint8 bizStep = EpcisCodes.RECEIVING;
        if (msg.sender != r.merchant) {
            _requireRole(Roles.CARRIER, msg.sender);
            bizStep = EpcisCodes.ARRIVING;
        }
        _expect(r, returnId, ReturnState.InTransit);
        _transition(r, returnId, ReturnState.Received, 0, bytes32(0));
        _recordItemEvent(r.itemId, returnId, bizStep, EpcisCodes.RETURNED, location, bytes32(0));
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
        _requireRole(Roles.INSPECTOR, msg.sender);
        ReturnRecord storage r = _load(returnId);
        _expect(r, returnId, ReturnState.Received);
        if (report == bytes32(0)) revert EscrowReportMissing(returnId);
        if (!r.settled && block.timestamp > r.inspectBy) revert EscrowDeadlinePassed(returnId, r.inspectBy);
        bytes32 itemId = r.itemId;
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
        _transition(r, returnId, ReturnState.Resolved, 0, ruling);
        _close(r.itemId, true);
        _settle(r, returnId, consumerAmount);
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

    /**
     * @notice The stored return (all zero with state None if unknown).
     */
    function returnOf(bytes32 returnId) external view returns (ReturnRecord memory) {
        return _returns[returnId];
    }

    /**
     * @notice The item's current sale (all zero if it was never sold).
     */
    function saleOf(bytes32 itemId) external view returns (SaleRecord memory) {
        return _sales[itemId];
    }

    /**
     * @notice The id of return number `index` (0-based) of sale `saleSeq` of an item.
     */
    function returnIdOf(bytes32 itemId, uint32 saleSeq, uint8 index) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), itemId, saleSeq, index));
    }

    function _load(bytes32 returnId) private view returns (ReturnRecord storage r) {
        r = _returns[returnId];
        if (r.state == ReturnState.None) revert EscrowUnknownReturn(returnId);
    }

    /// @dev The consumer, or a CONSUMER_AGENT_ROLE holder acting for it (payouts still go to the consumer).
    function _requireConsumer(ReturnRecord storage r, bytes32 returnId) private view {
        if (msg.sender != r.consumer && !_ledger.hasRole(Roles.CONSUMER_AGENT, msg.sender)) {
            revert EscrowNotConsumer(returnId, msg.sender);
        }
    }

    function _expect(ReturnRecord storage r, bytes32 returnId, ReturnState expected) private view {
        if (r.state != expected) revert EscrowInvalidState(returnId, r.state);
    }

    function _transition(ReturnRecord storage r, bytes32 returnId, ReturnState next, uint40 deadline, bytes32 evidence) private {
        ReturnState previous = r.state;
        r.state = next;
        emit ReturnStateChanged(returnId, next, msg.sender, previous, uint64(block.timestamp), deadline, evidence);
    }

    /// @dev Ends the item's open return; `itemCameBack` also ends the sale (the item may be sold again).
    function _close(bytes32 itemId, bool itemCameBack) private {
        SaleRecord storage sale = _sales[itemId];
        sale.returnOpen = false;
        if (itemCameBack) sale.closed = true;
    }

    function _refundAfterFee(ReturnRecord storage r) private view returns (uint256) {
        uint256 amount = r.amount;
        return amount - (amount * r.feeBps) / _BPS;
    }

    /// @dev Pays `consumerAmount` to the consumer and the rest of the deposit to the merchant, once.
    function _settle(ReturnRecord storage r, bytes32 returnId, uint256 consumerAmount) private {
        if (r.settled) revert EscrowAlreadySettled(returnId);
        r.settled = true;
        uint256 merchantAmount = r.amount - consumerAmount;
        IERC20 token = IERC20(r.token);
        emit EscrowSettled(returnId, r.consumer, r.merchant, address(token), consumerAmount, merchantAmount);
        if (consumerAmount != 0) token.safeTransfer(r.consumer, consumerAmount);
        if (merchantAmount != 0) token.safeTransfer(r.merchant, merchantAmount);
    }

    function _recordItemEvent(
        bytes32 itemId,
        bytes32 returnId,
        uint8 bizStep,
        uint8 disposition,
        bytes32 location,
        bytes32 document
    ) private {
        _ledger.recordEventFor(
            msg.sender,
            IProvenanceLedger.EventInput(itemId, bizStep, disposition, location, document, returnId)
        );
    }
}
