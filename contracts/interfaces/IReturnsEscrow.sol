// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IReturnsEscrow
 * @notice Types, events and errors of the returns escrow.
 *
 * Lifecycle of a return (every other transition reverts with
 * {EscrowInvalidState}):
 *
 *   Authorized --consumer cancels---------------------------> Cancelled
 *   Authorized --merchant reclaims after shipBy-------------> Expired
 *   Authorized --carrier scans by shipBy--------------------> InTransit   (fast refund: consumer paid now)
 *   Authorized --proof of a batched carrier scan------------> InTransit   (same; {ITransitProofs})
 *   InTransit  --carrier or merchant------------------------> Received
 *   InTransit  --carrier or merchant scans another unit-----> Disputed    (unit mismatch)
 *   InTransit, Received --consumer claims after inspectBy---> ConsumerClaimed (full deposit)
 *   Received   --inspector passes by inspectBy--------------> Accepted    (consumer paid, fee to merchant)
 *   Received   --inspector fails by inspectBy---------------> Rejected    (dispute window opens)
 *   Received   --inspector scans another unit by inspectBy--> Disputed    (unit mismatch)
 *   Rejected   --consumer disputes by disputeBy-------------> Disputed
 *   Rejected   --merchant reclaims after disputeBy----------> Reclaimed
 *   Disputed   --arbiter splits the deposit-----------------> Resolved
 *
 * A deadline D allows the "by D" action while block.timestamp <= D and the
 * "after D" action once block.timestamp > D. Money: each return's deposit is
 * paid out exactly once ({EscrowSettled}), consumer + merchant amounts = deposit.
 * After a fast refund the return still goes through the lifecycle, with no
 * further payout. "consumer" actions may also be sent by a CONSUMER_AGENT_ROLE
 * holder acting for the consumer; payouts always go to the consumer address.
 * An exchange (ExchangeEscrow) is a return of the original whose deposit is the
 * refunded price difference, possibly zero.
 */
interface IReturnsEscrow {
    enum ReturnState {
        None,
        Authorized,
        Cancelled,
        Expired,
        InTransit,
        Received,
        Accepted,
        Rejected,
        Disputed,
        Resolved,
        Reclaimed,
        ConsumerClaimed
    }

    /// @notice A merchant's return policy; durations in days.
    /// @param windowDays Days from delivery within which a return may be requested (checked off-chain).
    /// @param restockingFeeBps Fee kept by the merchant on a refund, in basis points (at most 5000).
    /// @param fastRefund Whether the consumer may be refunded at the first carrier scan.
    /// @param fastRefundMaxValue Largest refund eligible for fast refund (0: no limit), in token units.
    /// @param fastRefundMaxReturns90d Most returns by one consumer in 90 days for fast refund (0: no limit; checked off-chain).
    /// @param shipByDays Days after authorization by which the carrier must scan the parcel.
    /// @param inspectByDays Days after the first scan by which the merchant must inspect.
    /// @param disputeWindowDays Days after a failed inspection in which the consumer may dispute.
    /// @param documentDigest Digest of the full policy document (categories, reasons, wording).
    struct Policy {
        uint16 windowDays;
        uint16 restockingFeeBps;
        bool fastRefund;
        uint96 fastRefundMaxValue;
        uint16 fastRefundMaxReturns90d;
        uint16 shipByDays;
        uint16 inspectByDays;
        uint16 disputeWindowDays;
        bytes32 documentDigest;
    }

    /// @notice A return as stored.
    struct ReturnRecord {
        bytes32 itemId;
        address consumer;
        uint96 amount;
        address merchant;
        uint40 shipBy;
        uint40 inspectBy;
        ReturnState state;
        bool fastRefund;
        address token;
        uint40 disputeBy;
        uint16 feeBps;
        bool settled;
        uint32 policyVersion;
    }

    /// @notice A sale as stored: the item's current sale.
    struct SaleRecord {
        address consumer;
        uint40 soldAt;
        uint32 policyVersion;
        uint8 returnCount;
        bool returnOpen;
        bool closed;
        address token;
        uint96 price;
        address merchant;
        uint32 saleSeq;
    }

    /// @notice A merchant published version `version` of its return policy.
    event PolicyPublished(address indexed merchant, uint32 indexed version, Policy policy, uint64 publishedAt);

    /// @notice The item's sale was recorded, bound to the merchant's policy version in force.
    event SaleRecorded(
        bytes32 indexed itemId,
        address indexed merchant,
        address indexed consumer,
        uint32 saleSeq,
        address token,
        uint96 price,
        uint32 policyVersion,
        bytes32 orderRef,
        uint64 soldAt
    );

    /// @notice The merchant authorized a return and deposited `amount` in escrow.
    event ReturnAuthorized(
        bytes32 indexed returnId,
        bytes32 indexed itemId,
        address indexed consumer,
        address merchant,
        address token,
        uint96 amount,
        uint16 feeBps,
        bool fastRefund,
        uint32 policyVersion,
        uint32 saleSeq,
        uint64 shipBy
    );

    /// @notice A return moved from `previous` to `state`; `deadline` is the deadline the new state opens
    /// (inspectBy for InTransit, disputeBy for Rejected, else 0); `evidence` a document digest or zero.
    event ReturnStateChanged(
        bytes32 indexed returnId,
        ReturnState indexed state,
        address indexed actor,
        ReturnState previous,
        uint64 at,
        uint64 deadline,
        bytes32 evidence
    );

    /// @notice A return's deposit was paid out: `consumerAmount + merchantAmount` equals the deposit.
    event EscrowSettled(
        bytes32 indexed returnId,
        address indexed consumer,
        address indexed merchant,
        address token,
        uint256 consumerAmount,
        uint256 merchantAmount
    );

    /// @notice The unit scanned at receiving or inspection (`scannedItemId`, keccak256 of its EPC URI) is not
    /// the unit sold (`soldItemId`); `scannedMerchant` is its merchant of record (zero if not on the ledger).
    /// The return went to the arbiter (state Disputed); `bizStep` is the step that scanned it.
    event ReturnUnitMismatch(
        bytes32 indexed returnId,
        bytes32 indexed soldItemId,
        bytes32 indexed scannedItemId,
        address scannedMerchant,
        address actor,
        uint8 bizStep,
        uint64 at
    );

    /// @notice The account lacks the role this action needs.
    error EscrowMissingRole(address account, bytes32 role);
    /// @notice A policy field is out of range.
    error EscrowPolicyInvalid(string field);
    /// @notice The merchant has not published a return policy.
    error EscrowPolicyMissing(address merchant);
    /// @notice The item is not registered in the ledger.
    error EscrowItemUnknown(bytes32 itemId);
    /// @notice The caller may not sell this item.
    error EscrowNotSeller(bytes32 itemId, address account);
    /// @notice The item has a current sale that has not come back by a return.
    error EscrowItemAlreadySold(bytes32 itemId);
    /// @notice The item has no current sale that a return could refer to.
    error EscrowNoActiveSale(bytes32 itemId);
    /// @notice A sale field is invalid (zero consumer, token without code, zero price).
    error EscrowSaleInvalid(string field);
    /// @notice The caller is not the merchant of this sale or return.
    error EscrowNotMerchant(bytes32 id, address account);
    /// @notice The caller is not the consumer of this return.
    error EscrowNotConsumer(bytes32 returnId, address account);
    /// @notice The item already has an open return.
    error EscrowReturnAlreadyOpen(bytes32 itemId, bytes32 returnId);
    /// @notice The sale reached the maximum number of returns.
    error EscrowTooManyReturns(bytes32 itemId);
    /// @notice The amount is zero or larger than allowed.
    error EscrowInvalidAmount(uint256 amount, uint256 maximum);
    /// @notice Fast refund is not allowed for this return by the bound policy.
    error EscrowFastRefundNotAllowed(bytes32 itemId);
    /// @notice The token delivered a different amount than requested (fee-on-transfer tokens are not supported).
    error EscrowTokenTransferMismatch(address token, uint256 expected, uint256 received);
    /// @notice No return with this id.
    error EscrowUnknownReturn(bytes32 returnId);
    /// @notice The return is not in a state that allows this action.
    error EscrowInvalidState(bytes32 returnId, ReturnState state);
    /// @notice The deadline for this action has passed.
    error EscrowDeadlinePassed(bytes32 returnId, uint256 deadline);
    /// @notice The action is only possible after the deadline.
    error EscrowDeadlineNotReached(bytes32 returnId, uint256 deadline);
    /// @notice The deposit was already paid out.
    error EscrowAlreadySettled(bytes32 returnId);
    /// @notice An inspection needs a report digest.
    error EscrowReportMissing(bytes32 returnId);
    /// @notice A unit-level receiving or inspection call needs the scanned unit's item id.
    error EscrowUnitNotScanned(bytes32 returnId);
}
