// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {IReturnsEscrow} from "./interfaces/IReturnsEscrow.sol";
import {IExchangeEscrow} from "./interfaces/IExchangeEscrow.sol";
import {IExchangeHooks} from "./interfaces/IExchangeHooks.sol";
import {EpcisCodes} from "./EpcisCodes.sol";
import {ReturnPolicies} from "./ReturnPolicies.sol";
import {Roles} from "./Roles.sol";

/**
 * @title ExchangeEscrow
 * @notice Exchanges of sold items for another unit of the merchant's (lifecycle in {IExchangeEscrow}):
 * exchange terms per policy version, list prices, the replacement's release and the instant
 * exchange's collateral. The original's return, its deposit and its unit check stay in
 * ReturnsEscrow, which needs EXCHANGE_ROLE for this contract.
 *
 * Invariants: for every token, this contract's balance equals the collateral of exchanges not
 * yet settled; a collateral is paid at most once; a replacement is released at most once and
 * named by at most one open exchange.
 */
contract ExchangeEscrow is IExchangeEscrow, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Longest exchange window, in days.
    uint16 public constant MAX_WINDOW_DAYS = 365;

    IProvenanceLedger private immutable _ledger;
    IExchangeHooks private immutable _escrow;

    mapping(address merchant => mapping(uint32 policyVersion => ExchangeTerms)) private _terms;
    mapping(bytes32 itemId => uint96) private _listPrices;
    mapping(bytes32 exchangeId => ExchangeRecord) private _exchanges;
    mapping(bytes32 replacementId => bytes32 exchangeId) private _reservedBy;

    constructor(IProvenanceLedger ledger_, IExchangeHooks escrow_) {
        _ledger = ledger_;
        _escrow = escrow_;
    }

    /**
     * @notice Publishes the caller's exchange terms for version `policyVersion` of its return policy.
     *
     * Requirements: caller has MERCHANT_ROLE; the policy version exists; no terms for it yet;
     * 1 <= windowDays <= MAX_WINDOW_DAYS.
     *
     * Emits an {ExchangeTermsPublished} event.
     */
    function publishExchangeTerms(uint32 policyVersion, ExchangeTerms calldata terms) external {
        if (!_ledger.hasRole(Roles.MERCHANT, msg.sender)) revert ExchangeNotMerchant(bytes32(0), msg.sender);
        if (policyVersion == 0 || policyVersion > ReturnPolicies(address(_escrow)).currentPolicyVersion(msg.sender)) {
            revert ExchangeTermsMissing(msg.sender, policyVersion);
        }
        if (_terms[msg.sender][policyVersion].windowDays != 0) revert ExchangeTermsAlreadyPublished(msg.sender, policyVersion);
        if (terms.windowDays == 0 || terms.windowDays > MAX_WINDOW_DAYS) revert ExchangeTermsInvalid("windowDays");
        _terms[msg.sender][policyVersion] = terms;
        emit ExchangeTermsPublished(msg.sender, policyVersion, terms);
    }

    /**
     * @notice Sets the list price (in the unit of the sale tokens) of items the caller is merchant of record of.
     *
     * Requirements: caller is the merchant of record of every item (or a seller it set).
     *
     * Emits a {ListPriceSet} event per item.
     */
    function setListPrices(bytes32[] calldata itemIds, uint96 price) external {
        for (uint256 i = 0; i < itemIds.length; ++i) {
            bytes32 itemId = itemIds[i];
            address merchant = _ledger.merchantOf(itemId);
            if (!_ledger.isSeller(merchant, msg.sender)) revert ExchangeNotMerchant(itemId, msg.sender);
            _listPrices[itemId] = price;
            emit ListPriceSet(itemId, merchant, price);
        }
    }

    /**
     * @notice Authorizes the exchange of the item's current sale for `replacementId`.
     * @param priceDifference The replacement's list price minus the original's sale price.
     * @param instant Release the replacement before the original ships, against collateral.
     * @return exchangeId The id of the exchange and of its return in ReturnsEscrow.
     *
     * Requirements: caller is the sale's merchant, has approved the refunded difference to ReturnsEscrow
     * and the collateral to this contract; no open return for the item; the replacement is another
     * item of the merchant's, not destroyed, not sold, in stock, not named by another open exchange, with
     * a list price matching `priceDifference`; exchange terms for the sale's policy version (allowing
     * instant, if asked).
     *
     * Emits an {ExchangeAuthorized} event (and ReturnsEscrow a {IReturnsEscrow-ReturnAuthorized} event).
     */
    function authorizeExchange(
        bytes32 itemId,
        bytes32 replacementId,
        int96 priceDifference,
        bool instant
    ) external nonReentrant returns (bytes32 exchangeId) {
        IReturnsEscrow.SaleRecord memory sale = _checkSale(itemId);
        uint96 price = _checkReplacement(itemId, replacementId, sale.merchant);
        _checkTerms(sale, itemId, price, priceDifference, instant);
        uint96 refund = priceDifference < 0 ? uint96(-priceDifference) : 0;
        exchangeId = _escrow.openExchangeReturn(itemId, msg.sender, refund);
        uint96 collateral = instant ? sale.price - refund : 0;
        _exchanges[exchangeId] = ExchangeRecord({
            originalItemId: itemId,
            replacementItemId: replacementId,
            merchant: sale.merchant,
            replacementPrice: price,
            token: sale.token,
            priceDifference: priceDifference,
            collateral: collateral,
            instant: instant,
            extraPaid: false,
            released: false,
            collateralSettled: collateral == 0
        });
        _reservedBy[replacementId] = exchangeId;
        _emitAuthorized(exchangeId, _exchanges[exchangeId]);
        if (collateral != 0) _pull(IERC20(sale.token), collateral);
    }

    /**
     * @notice Records that the consumer paid the positive price difference (off-chain, as sales are paid).
     * @param paymentRef Digest of the merchant's payment reference.
     *
     * Requirements: caller is the exchange's merchant; positive difference not yet recorded; the
     * exchange's return did not end unshipped.
     *
     * Emits an {ExchangeExtraPaymentRecorded} event.
     */
    function recordExtraPayment(bytes32 exchangeId, bytes32 paymentRef) external {
        ExchangeRecord storage x = _loadAsMerchant(exchangeId);
        if (x.priceDifference <= 0 || x.extraPaid) revert ExchangeNoExtraPayment(exchangeId);
        if (_ended(_escrow.returnOf(exchangeId))) revert ExchangeEnded(exchangeId);
        x.extraPaid = true;
        emit ExchangeExtraPaymentRecorded(exchangeId, uint96(x.priceDifference), paymentRef);
    }

    /**
     * @notice Releases the replacement: records its sale to the consumer under the original's policy version.
     * @param location Where the replacement is sold from.
     *
     * Requirements: caller is the exchange's merchant; not yet released; a positive difference paid;
     * the return not ended unshipped; a standard exchange's original scanned in transit; the
     * replacement still in stock and unsold.
     *
     * Emits an {ExchangeReplacementReleased} event (and ReturnsEscrow a {IReturnsEscrow-SaleRecorded} event
     * and the replacement's `retail_selling` item event, business transaction the exchange id).
     */
    function releaseReplacement(bytes32 exchangeId, bytes32 location) external nonReentrant {
        ExchangeRecord storage x = _loadAsMerchant(exchangeId);
        if (x.released) revert ExchangeAlreadyReleased(exchangeId);
        if (x.priceDifference > 0 && !x.extraPaid) revert ExchangeExtraPaymentMissing(exchangeId);
        IReturnsEscrow.ReturnRecord memory r = _escrow.returnOf(exchangeId);
        if (_ended(r)) revert ExchangeEnded(exchangeId);
        if (!x.instant && !_shipped(r)) revert ExchangeOriginalNotShipped(exchangeId);
        bytes32 replacementId = x.replacementItemId;
        _requireInStock(replacementId);
        x.released = true;
        emit ExchangeReplacementReleased(exchangeId, replacementId, x.instant);
        _escrow.recordExchangeSale(replacementId, exchangeId, x.replacementPrice, location, msg.sender);
    }

    /**
     * @notice Pays an instant exchange's collateral to the merchant once the original was scanned in transit.
     *
     * Requirements: collateral unpaid; the exchange's return reached InTransit (or a later state).
     *
     * Emits an {ExchangeCollateralSettled} event.
     */
    function releaseCollateral(bytes32 exchangeId) external nonReentrant {
        ExchangeRecord storage x = _load(exchangeId);
        if (x.collateralSettled || !_shipped(_escrow.returnOf(exchangeId))) revert ExchangeNoCollateral(exchangeId);
        _payCollateral(x, exchangeId, true);
    }

    /**
     * @notice The merchant takes an instant exchange's collateral when the original was not shipped by shipBy.
     *
     * Requirements: caller is the exchange's merchant; collateral unpaid; the return Cancelled, Expired,
     * or still Authorized after shipBy.
     *
     * Emits an {ExchangeCollateralSettled} event.
     */
    function claimCollateral(bytes32 exchangeId) external nonReentrant {
        ExchangeRecord storage x = _loadAsMerchant(exchangeId);
        if (x.collateralSettled) revert ExchangeNoCollateral(exchangeId);
        IReturnsEscrow.ReturnRecord memory r = _escrow.returnOf(exchangeId);
        if (r.state == IReturnsEscrow.ReturnState.Authorized) {
            if (block.timestamp <= r.shipBy) revert ExchangeDeadlineNotReached(exchangeId, r.shipBy);
        } else if (!_ended(r)) {
            revert ExchangeNoCollateral(exchangeId);
        }
        _payCollateral(x, exchangeId, false);
    }

    /// @notice The stored exchange (all zero if unknown).
    function exchangeOf(bytes32 exchangeId) external view returns (ExchangeRecord memory) {
        return _exchanges[exchangeId];
    }

    /// @notice The merchant's exchange terms for a policy version (all zero if none).
    function exchangeTermsOf(address merchant, uint32 policyVersion) external view returns (ExchangeTerms memory) {
        return _terms[merchant][policyVersion];
    }

    /// @notice An item's list price (0 if not set).
    function listPriceOf(bytes32 itemId) external view returns (uint96) {
        return _listPrices[itemId];
    }

    /// @notice Whether the item is in stock: its last event leaves it sellable.
    function inStock(bytes32 itemId) public view returns (bool) {
        (, uint8 disposition) = _ledger.lastStepOf(itemId);
        return disposition == EpcisCodes.SELLABLE_ACCESSIBLE || disposition == EpcisCodes.SELLABLE_NOT_ACCESSIBLE;
    }

    function _checkSale(bytes32 itemId) private view returns (IReturnsEscrow.SaleRecord memory sale) {
        sale = _escrow.saleOf(itemId);
        if (sale.saleSeq == 0 || sale.closed) revert ExchangeNoActiveSale(itemId);
        if (msg.sender != sale.merchant) revert ExchangeNotMerchant(itemId, msg.sender);
        if (sale.returnOpen) {
            bytes32 open = _escrow.returnIdOf(itemId, sale.saleSeq, sale.returnCount - 1);
            if (_exchanges[open].merchant != address(0)) revert ExchangeAlreadyOpen(itemId, open);
        }
    }

    function _checkTerms(
        IReturnsEscrow.SaleRecord memory sale,
        bytes32 itemId,
        uint96 price,
        int96 priceDifference,
        bool instant
    ) private view {
        int256 expected = int256(uint256(price)) - int256(uint256(sale.price));
        if (expected != priceDifference) revert ExchangePriceMismatch(expected, priceDifference);
        ExchangeTerms storage terms = _terms[sale.merchant][sale.policyVersion];
        if (terms.windowDays == 0) revert ExchangeTermsMissing(sale.merchant, sale.policyVersion);
        if (instant && (!terms.instant || (terms.instantMaxValue != 0 && sale.price > terms.instantMaxValue))) {
            revert ExchangeInstantNotAllowed(itemId);
        }
    }

    function _emitAuthorized(bytes32 exchangeId, ExchangeRecord storage x) private {
        emit ExchangeAuthorized(
            exchangeId,
            x.originalItemId,
            x.replacementItemId,
            x.merchant,
            x.token,
            x.replacementPrice,
            x.priceDifference,
            x.collateral,
            x.instant
        );
    }

    /// @dev Every bad replacement gets its own error, in the order a merchant would fix them; returns its list price.
    function _checkReplacement(bytes32 itemId, bytes32 replacementId, address merchant) private view returns (uint96 price) {
        if (replacementId == itemId) revert ExchangeSameItem(itemId);
        IProvenanceLedger.ItemRecord memory unit = _ledger.itemOf(replacementId);
        if (unit.count == 0) revert ExchangeReplacementUnknown(replacementId);
        if (unit.destroyed) revert ExchangeReplacementDestroyed(replacementId);
        if (unit.merchant != merchant) revert ExchangeReplacementNotMerchants(replacementId, unit.merchant);
        _requireInStock(replacementId);
        bytes32 holder = _reservedBy[replacementId];
        if (holder != bytes32(0)) {
            ExchangeRecord storage other = _exchanges[holder];
            if (!other.released && !_ended(_escrow.returnOf(holder))) revert ExchangeReplacementReserved(replacementId, holder);
        }
        price = _listPrices[replacementId];
        if (price == 0) revert ExchangePriceMissing(replacementId);
    }

    function _requireInStock(bytes32 itemId) private view {
        IReturnsEscrow.SaleRecord memory sale = _escrow.saleOf(itemId);
        if (sale.saleSeq != 0 && !sale.closed) revert ExchangeReplacementSold(itemId);
        if (!inStock(itemId)) {
            (uint8 bizStep, uint8 disposition) = _ledger.lastStepOf(itemId);
            revert ExchangeReplacementNotInStock(itemId, bizStep, disposition);
        }
    }

    function _load(bytes32 exchangeId) private view returns (ExchangeRecord storage x) {
        x = _exchanges[exchangeId];
        if (x.merchant == address(0)) revert ExchangeUnknown(exchangeId);
    }

    function _loadAsMerchant(bytes32 exchangeId) private view returns (ExchangeRecord storage x) {
        x = _load(exchangeId);
        if (msg.sender != x.merchant) revert ExchangeNotMerchant(exchangeId, msg.sender);
    }

    /// @dev The original was scanned in transit: the return is past Authorized and did not end unshipped.
    function _shipped(IReturnsEscrow.ReturnRecord memory r) private pure returns (bool) {
        return r.state >= IReturnsEscrow.ReturnState.InTransit;
    }

    /// @dev The return ended without the original shipping.
    function _ended(IReturnsEscrow.ReturnRecord memory r) private pure returns (bool) {
        return r.state == IReturnsEscrow.ReturnState.Cancelled || r.state == IReturnsEscrow.ReturnState.Expired;
    }

    function _payCollateral(ExchangeRecord storage x, bytes32 exchangeId, bool originalShipped) private {
        x.collateralSettled = true;
        emit ExchangeCollateralSettled(exchangeId, x.merchant, x.token, x.collateral, originalShipped);
        IERC20(x.token).safeTransfer(x.merchant, x.collateral);
    }

    function _pull(IERC20 token, uint96 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert ExchangeTokenTransferMismatch(address(token), amount, received);
    }
}
