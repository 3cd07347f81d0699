// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {IReturnsEscrow} from "./interfaces/IReturnsEscrow.sol";
import {Roles} from "./Roles.sol";

/**
 * @title ReturnPolicies
 * @notice Versioned return policies per merchant. Versions start at 1, are
 * append-only and never change once published, so a sale bound to a version
 * keeps the terms it was sold under.
 */
abstract contract ReturnPolicies is IReturnsEscrow {
    /// @notice Highest restocking fee a policy may set, in basis points.
    uint16 public constant MAX_RESTOCKING_FEE_BPS = 5000;
    /// @notice Longest return window, in days.
    uint16 public constant MAX_WINDOW_DAYS = 365;
    /// @notice Longest ship-by, inspect-by and dispute period, in days.
    uint16 public constant MAX_PERIOD_DAYS = 90;

    IProvenanceLedger internal immutable _ledger;
    mapping(address merchant => Policy[]) private _policies;

    constructor(IProvenanceLedger ledger_) {
        _ledger = ledger_;
    }

    /**
     * @notice Publishes a new version of the caller's return policy; later sales are bound to it.
     * @return version The new version number (1 for the first policy).
     *
     * Requirements: caller has MERCHANT_ROLE; 1 <= windowDays <= MAX_WINDOW_DAYS;
     * restockingFeeBps <= MAX_RESTOCKING_FEE_BPS; ship-by, inspect-by and dispute
     * periods in 1..MAX_PERIOD_DAYS.
     *
     * Emits a {PolicyPublished} event.
     */
    function publishPolicy(Policy calldata policy) external returns (uint32 version) {
        _requireRole(Roles.MERCHANT, msg.sender);
        if (policy.windowDays == 0 || policy.windowDays > MAX_WINDOW_DAYS) revert EscrowPolicyInvalid("windowDays");
        if (policy.restockingFeeBps > MAX_RESTOCKING_FEE_BPS) revert EscrowPolicyInvalid("restockingFeeBps");
        if (!_validPeriod(policy.shipByDays)) revert EscrowPolicyInvalid("shipByDays");
        if (!_validPeriod(policy.inspectByDays)) revert EscrowPolicyInvalid("inspectByDays");
        if (!_validPeriod(policy.disputeWindowDays)) revert EscrowPolicyInvalid("disputeWindowDays");
        Policy[] storage versions = _policies[msg.sender];
        versions.push(policy);
        version = uint32(versions.length);
        emit PolicyPublished(msg.sender, version, policy, uint64(block.timestamp));
    }

    /**
     * @notice The merchant's current policy version (0 if it has none).
     */
    function currentPolicyVersion(address merchant) public view returns (uint32) {
        return uint32(_policies[merchant].length);
    }

    /**
     * @notice Version `version` (1-based) of the merchant's policy.
     *
     * Requirements: the version exists.
     */
    function policyOf(address merchant, uint32 version) public view returns (Policy memory) {
        Policy[] storage versions = _policies[merchant];
        if (version == 0 || version > versions.length) revert EscrowPolicyMissing(merchant);
        return versions[version - 1];
    }

    /**
     * @notice The ledger that holds roles and item histories.
     */
    function ledger() external view returns (IProvenanceLedger) {
        return _ledger;
    }

    function _policy(address merchant, uint32 version) internal view returns (Policy storage) {
        return _policies[merchant][version - 1];
    }

    function _requireRole(bytes32 role, address account) internal view {
        if (!_ledger.hasRole(role, account)) revert EscrowMissingRole(account, role);
    }

    function _validPeriod(uint16 day) private pure returns (bool) {
        return day != 0 && day <= MAX_PERIOD_DAYS;
    }
}
