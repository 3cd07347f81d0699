// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IExchangeEscrow
 * @notice Types, events and errors of exchanges: a sold item swapped for another unit of the
 * same merchant (e.g. the next size).
 *
 * An exchange is a return of the original item in ReturnsEscrow (same id, same lifecycle,
 * same unit check at receiving) whose deposit is the refunded price difference, possibly zero.
 * ExchangeEscrow adds the replacement and, for an instant exchange, the collateral:
 *
 *   authorizeExchange   merchant names the replacement and the price difference
 *                       (= replacement's list price - original's sale price):
 *                       < 0: the difference is the return's deposit, paid like a refund;
 *                       > 0: the consumer's off-chain payment must be recorded before release;
 *                       instant: the original's outstanding value (sale price - refunded
 *                       difference) is deposited here as collateral
 *   recordExtraPayment  merchant records the consumer's payment of a positive difference
 *   releaseReplacement  merchant releases the replacement = records its sale to the consumer
 *                       under the original sale's policy version, business transaction the
 *                       exchange id; instant: at once; standard: once the original was
 *                       scanned in transit (return state InTransit or later)
 *   releaseCollateral   anyone, once the original was scanned in transit: collateral to the merchant
 *   claimCollateral     merchant, when the original was not shipped by shipBy (return still
 *                       Authorized after shipBy, Expired, or Cancelled): collateral to the merchant
 *
 * Money: each collateral is paid out exactly once ({ExchangeCollateralSettled}); the
 * difference deposit is paid by ReturnsEscrow like any return's deposit.
 */
interface IExchangeEscrow {
    /// @notice A merchant's exchange terms for one version of its return policy.
    /// @param windowDays Days from delivery within which an exchange may be requested (checked off-chain).
    /// @param instant Whether the merchant offers instant exchanges (replacement before the original ships).
    /// @param instantMaxValue Largest original sale price eligible for an instant exchange (0: no limit).
    /// @param documentDigest Digest of the exchange terms' document, or zero.
    struct ExchangeTerms {
        uint16 windowDays;
        bool instant;
        uint96 instantMaxValue;
        bytes32 documentDigest;
    }

    /// @notice An exchange as stored (keyed by its id, the id of its return in ReturnsEscrow).
    struct ExchangeRecord {
        bytes32 originalItemId;
        bytes32 replacementItemId;
        address merchant;
        uint96 replacementPrice;
        address token;
        int96 priceDifference;
        uint96 collateral;
        bool instant;
        bool extraPaid;
        bool released;
        bool collateralSettled;
    }

    /// @notice The merchant published exchange terms for version `policyVersion` of its return policy.
    event ExchangeTermsPublished(address indexed merchant, uint32 indexed policyVersion, ExchangeTerms terms);

    /// @notice The merchant of record set the list price of an item (0: not offered as a replacement).
    event ListPriceSet(bytes32 indexed itemId, address indexed merchant, uint96 price);

    /// @notice The merchant authorized an exchange (its return is {IReturnsEscrow-ReturnAuthorized} with the same id).
    event ExchangeAuthorized(
        bytes32 indexed exchangeId,
        bytes32 indexed originalItemId,
        bytes32 indexed replacementItemId,
        address merchant,
        address token,
        uint96 replacementPrice,
        int96 priceDifference,
        uint96 collateral,
        bool instant
    );

    /// @notice The merchant recorded the consumer's off-chain payment of the positive price difference.
    event ExchangeExtraPaymentRecorded(bytes32 indexed exchangeId, uint96 amount, bytes32 paymentRef);

    /// @notice The replacement was released: its sale to the consumer is recorded.
    event ExchangeReplacementReleased(bytes32 indexed exchangeId, bytes32 indexed replacementItemId, bool instant);

    /// @notice The collateral was paid to the merchant: `originalShipped` after the original's first carrier
    /// scan, else claimed because it was not shipped by shipBy.
    event ExchangeCollateralSettled(
        bytes32 indexed exchangeId,
        address indexed merchant,
        address token,
        uint96 amount,
        bool originalShipped
    );

    /// @notice The caller is not the merchant of this sale, item or exchange.
    error ExchangeNotMerchant(bytes32 id, address account);
    /// @notice The item has no current sale to exchange.
    error ExchangeNoActiveSale(bytes32 itemId);
    /// @notice The sale already has an open exchange.
    error ExchangeAlreadyOpen(bytes32 itemId, bytes32 exchangeId);
    /// @notice The replacement is the item being exchanged.
    error ExchangeSameItem(bytes32 itemId);
    /// @notice The replacement is not on the ledger.
    error ExchangeReplacementUnknown(bytes32 itemId);
    /// @notice The replacement was destroyed.
    error ExchangeReplacementDestroyed(bytes32 itemId);
    /// @notice The replacement's merchant of record is not the sale's merchant.
    error ExchangeReplacementNotMerchants(bytes32 itemId, address merchantOfRecord);
    /// @notice The replacement has a current sale.
    error ExchangeReplacementSold(bytes32 itemId);
    /// @notice The replacement's last event does not leave it sellable (disposition sellable_accessible or
    /// sellable_not_accessible).
    error ExchangeReplacementNotInStock(bytes32 itemId, uint8 bizStep, uint8 disposition);
    /// @notice The replacement is already named by another open exchange.
    error ExchangeReplacementReserved(bytes32 itemId, bytes32 exchangeId);
    /// @notice The merchant has not set a list price for the replacement.
    error ExchangePriceMissing(bytes32 itemId);
    /// @notice The price difference is not the replacement's list price minus the original's sale price.
    error ExchangePriceMismatch(int256 expected, int256 given);
    /// @notice The merchant published no exchange terms for the sale's policy version.
    error ExchangeTermsMissing(address merchant, uint32 policyVersion);
    /// @notice An exchange terms field is out of range.
    error ExchangeTermsInvalid(string field);
    /// @notice Exchange terms for this policy version were already published (terms never change).
    error ExchangeTermsAlreadyPublished(address merchant, uint32 policyVersion);
    /// @notice The bound exchange terms do not allow an instant exchange of this sale.
    error ExchangeInstantNotAllowed(bytes32 itemId);
    /// @notice No exchange with this id.
    error ExchangeUnknown(bytes32 exchangeId);
    /// @notice The consumer's payment of the price difference must be recorded first.
    error ExchangeExtraPaymentMissing(bytes32 exchangeId);
    /// @notice No payment to record: the difference is not positive, or it was already recorded.
    error ExchangeNoExtraPayment(bytes32 exchangeId);
    /// @notice The replacement was already released.
    error ExchangeAlreadyReleased(bytes32 exchangeId);
    /// @notice A standard exchange releases the replacement only once the original was scanned in transit.
    error ExchangeOriginalNotShipped(bytes32 exchangeId);
    /// @notice The exchange's return ended without the original shipping (cancelled or expired).
    error ExchangeEnded(bytes32 exchangeId);
    /// @notice The exchange holds no collateral to pay now (not instant, already paid, or not yet due).
    error ExchangeNoCollateral(bytes32 exchangeId);
    /// @notice The action is only possible after the deadline.
    error ExchangeDeadlineNotReached(bytes32 exchangeId, uint256 deadline);
    /// @notice The token delivered a different amount than requested.
    error ExchangeTokenTransferMismatch(address token, uint256 expected, uint256 received);
}
