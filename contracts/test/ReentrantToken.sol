// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title ReentrantToken
 * @notice Test-only malicious ERC-20: when `target` sends it tokens, it calls
 * `target` again with `payload` (e.g. a second payout) before finishing the
 * transfer, and records whether that nested call succeeded. Anyone may mint.
 */
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool public attacking;
    uint256 public attempts;
    bool public lastReentrySucceeded;
    bytes public lastReentryError;

    constructor() ERC20("Reentrant", "REE") {}

    /// @notice Mints test tokens to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the attack: the next transfer out of `target_` calls it with `payload_`.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == target && target != address(0) && !attacking) {
            attacking = true;
            attempts += 1;
            (bool ok, bytes memory err) = target.call(payload);
            lastReentrySucceeded = ok;
            lastReentryError = err;
            attacking = false;
        }
        super._update(from, to, value);
    }
}
