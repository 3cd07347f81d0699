// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {IExchangeHooks} from "./interfaces/IExchangeHooks.sol";
import {EpcisCodes} from "./EpcisCodes.sol";
import {ReturnPolicies} from "./ReturnPolicies.sol";
import {Roles} from "./Roles.sol";

/**
 * @title EscrowBook
 * @notice The bookkeeping that refunds and exchanges share: sales, the opening and funding of a
 * return, the one payout of its deposit, state changes and item events, and the hooks through
 * which ExchangeEscrow opens exchange returns and records replacement sales. {ReturnsEscrow}
 * adds the return lifecycle on top.
 */
abstract contract EscrowBook is ReturnPolicies, ReentrancyGuardTransient, IExchangeHooks {
    using SafeERC20 for IERC20;

    uint256 private constant _BPS = 10_000;

    mapping(bytes32 itemId => SaleRecord) internal _sales;
    mapping(bytes32 returnId => ReturnRecord) internal _returns;

    constructor(IProvenanceLedger ledger_) ReturnPolicies(ledger_) {}

    /// @inheritdoc IExchangeHooks
    function recordExchangeSale(
        bytes32 replacementId,
        bytes32 returnId,
        uint96 price,
        bytes32 location,
        address actor
    ) external {
        _requireRole(Roles.EXCHANGE, msg.sender);
        ReturnRecord storage r = _load(returnId);
        if (_ledger.merchantOf(replacementId) != r.merchant) revert EscrowNotSeller(replacementId, r.merchant);
        if (price == 0) revert EscrowSaleInvalid("price");
        _recordSale(replacementId, r.merchant, r.consumer, r.token, price, r.policyVersion, returnId, location, actor);
    }

    function _recordSale(
        bytes32 itemId,
        address merchant,
        address consumer,
        address token,
        uint96 price,
        uint32 version,
        bytes32 orderRef,
        bytes32 location,
        address actor
    ) internal {
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
            actor,
            IProvenanceLedger.EventInput(
                itemId, EpcisCodes.RETAIL_SELLING, EpcisCodes.RETAIL_SOLD, location, bytes32(0), orderRef
            )
        );
    }

    /// @inheritdoc IExchangeHooks
    function openExchangeReturn(bytes32 itemId, address merchant, uint96 amount) external nonReentrant returns (bytes32) {
        _requireRole(Roles.EXCHANGE, msg.sender);
        return _authorize(itemId, merchant, amount, false, true);
    }

    /// @dev An exchange's deposit is the refunded price difference: no restocking fee is kept from it.
    function _authorize(
        bytes32 itemId,
        address merchant,
        uint96 amount,
        bool fastRefund,
        bool exchange
    ) internal returns (bytes32 returnId) {
        SaleRecord storage sale = _sales[itemId];
        if (sale.saleSeq == 0 || sale.closed) revert EscrowNoActiveSale(itemId);
        if (merchant != sale.merchant) revert EscrowNotMerchant(itemId, merchant);
        if (sale.returnOpen) revert EscrowReturnAlreadyOpen(itemId, returnIdOf(itemId, sale.saleSeq, sale.returnCount - 1));
        if (sale.returnCount == type(uint8).max) revert EscrowTooManyReturns(itemId);
        if ((amount == 0 && !exchange) || amount > sale.price) revert EscrowInvalidAmount(amount, sale.price);
        Policy storage policy = _policy(sale.merchant, sale.policyVersion);
        if (fastRefund && (!policy.fastRefund || (policy.fastRefundMaxValue != 0 && amount > policy.fastRefundMaxValue))) {
            revert EscrowFastRefundNotAllowed(itemId);
        }
        returnId = returnIdOf(itemId, sale.saleSeq, sale.returnCount);
        uint16 feeBps = exchange ? 0 : policy.restockingFeeBps;
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
            feeBps: feeBps,
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
            feeBps,
            fastRefund,
            sale.policyVersion,
            sale.saleSeq,
            shipBy
        );
        IERC20 token = IERC20(sale.token);
        if (amount == 0) return returnId;
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(merchant, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert EscrowTokenTransferMismatch(address(token), amount, received);
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

    function _load(bytes32 returnId) internal view returns (ReturnRecord storage r) {
        r = _returns[returnId];
        if (r.state == ReturnState.None) revert EscrowUnknownReturn(returnId);
    }

    /// @dev The consumer, or a CONSUMER_AGENT_ROLE holder acting for it (payouts still go to the consumer).
    function _requireConsumer(ReturnRecord storage r, bytes32 returnId) internal view {
        if (msg.sender != r.consumer && !_ledger.hasRole(Roles.CONSUMER_AGENT, msg.sender)) {
            revert EscrowNotConsumer(returnId, msg.sender);
        }
    }

    function _expect(ReturnRecord storage r, bytes32 returnId, ReturnState expected) internal view {
        if (r.state != expected) revert EscrowInvalidState(returnId, r.state);
    }

    function _transition(ReturnRecord storage r, bytes32 returnId, ReturnState next, uint40 deadline, bytes32 evidence) internal {
        _transitionBy(msg.sender, r, returnId, next, deadline, evidence);
    }

    /// @dev As {_transition}, in the name of `actor` (a proved scan's submitter, not the proof's sender).
    function _transitionBy(
        address actor,
        ReturnRecord storage r,
        bytes32 returnId,
        ReturnState next,
        uint40 deadline,
        bytes32 evidence
    ) internal {
        ReturnState previous = r.state;
        r.state = next;
        emit ReturnStateChanged(returnId, next, actor, previous, uint64(block.timestamp), deadline, evidence);
    }

    /// @dev Ends the item's open return; `itemCameBack` also ends the sale (the item may be sold again).
    function _close(bytes32 itemId, bool itemCameBack) internal {
        SaleRecord storage sale = _sales[itemId];
        sale.returnOpen = false;
        if (itemCameBack) sale.closed = true;
    }

    function _refundAfterFee(ReturnRecord storage r) internal view returns (uint256) {
        uint256 amount = r.amount;
        return amount - (amount * r.feeBps) / _BPS;
    }

    /// @dev Pays `consumerAmount` to the consumer and the rest of the deposit to the merchant, once.
    function _settle(ReturnRecord storage r, bytes32 returnId, uint256 consumerAmount) internal {
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
    ) internal {
        _recordItemEventBy(msg.sender, itemId, returnId, bizStep, disposition, location, document);
    }

    function _recordItemEventBy(
        address actor,
        bytes32 itemId,
        bytes32 returnId,
        uint8 bizStep,
        uint8 disposition,
        bytes32 location,
        bytes32 document
    ) internal {
        _ledger.recordEventFor(actor, IProvenanceLedger.EventInput(itemId, bizStep, disposition, location, document, returnId));
    }
}
