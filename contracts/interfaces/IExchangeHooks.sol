// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IReturnsEscrow} from "./IReturnsEscrow.sol";

/**
 * @title IExchangeHooks
 * @notice What ExchangeEscrow reads from and asks of ReturnsEscrow, which keeps every sale and
 * return: an exchange is a return of the original item, and the replacement's release is its sale.
 */
interface IExchangeHooks {
    /**
     * @notice Opens a return of the item's current sale for an exchange, depositing `amount`
     * (the refunded price difference, possibly zero) from `merchant`, without fast refund or restocking fee.
     * @return returnId The return's id, which is also the exchange's id.
     *
     * Requirements: caller has EXCHANGE_ROLE; as {ReturnsEscrow-authorizeReturn} for `merchant`, except
     * that `amount` may be zero.
     *
     * Emits a {IReturnsEscrow-ReturnAuthorized} event.
     */
    function openExchangeReturn(bytes32 itemId, address merchant, uint96 amount) external returns (bytes32 returnId);

    /**
     * @notice Records the sale of `replacementId` to the return's consumer at `price`, bound to the
     * return's policy version, with the return id as order reference, recorded by `actor`.
     *
     * Requirements: caller has EXCHANGE_ROLE; the return exists; the replacement's merchant of record
     * is the return's merchant; it has no current sale; `actor` may sell it.
     *
     * Emits a {IReturnsEscrow-SaleRecorded} event and an item event (`retail_selling`, `retail_sold`).
     */
    function recordExchangeSale(
        bytes32 replacementId,
        bytes32 returnId,
        uint96 price,
        bytes32 location,
        address actor
    ) external;

    /// @notice The stored return (all zero with state None if unknown).
    function returnOf(bytes32 returnId) external view returns (IReturnsEscrow.ReturnRecord memory);

    /// @notice The item's current sale (all zero if it was never sold).
    function saleOf(bytes32 itemId) external view returns (IReturnsEscrow.SaleRecord memory);

    /// @notice The id of return number `index` (0-based) of sale `saleSeq` of an item.
    function returnIdOf(bytes32 itemId, uint32 saleSeq, uint8 index) external view returns (bytes32);
}
