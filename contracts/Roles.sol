// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Roles
 * @notice Role identifiers shared by ProvenanceLedger (which holds every role
 * assignment) and ReturnsEscrow (which reads them from the ledger).
 */
library Roles {
    /// @dev Registers items and records production steps.
    bytes32 internal constant MANUFACTURER = keccak256("MANUFACTURER_ROLE");
    /// @dev Merchant of record: sells items, publishes return policies, funds refunds.
    bytes32 internal constant MERCHANT = keccak256("MERCHANT_ROLE");
    /// @dev Records transport scans and deliveries.
    bytes32 internal constant CARRIER = keccak256("CARRIER_ROLE");
    /// @dev Records inspection results.
    bytes32 internal constant INSPECTOR = keccak256("INSPECTOR_ROLE");
    /// @dev Resolves disputes over failed inspections.
    bytes32 internal constant ARBITER = keccak256("ARBITER_ROLE");
    /// @dev A service that acts for consumers it authenticated (cancel, dispute, claim); cannot redirect payouts.
    bytes32 internal constant CONSUMER_AGENT = keccak256("CONSUMER_AGENT_ROLE");
    /// @dev A contract (ReturnsEscrow) that records item events on behalf of the actor calling it.
    bytes32 internal constant RECORDER = keccak256("RECORDER_ROLE");
    /// @dev A contract (ExchangeEscrow) that opens exchange returns and records replacement sales in ReturnsEscrow.
    bytes32 internal constant EXCHANGE = keccak256("EXCHANGE_ROLE");
    /// @dev A BatchAnchor whose anchored scans ReturnsEscrow accepts as proof of a return's first carrier scan.
    bytes32 internal constant BATCH_ANCHOR = keccak256("BATCH_ANCHOR_ROLE");
}
