// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title DevStablecoin
 * @notice A 6-decimal ERC-20 for local chains and tests only. The owner mints.
 */
contract DevStablecoin is ERC20, Ownable {
    constructor(address owner_) ERC20("Dev USD", "dUSD") Ownable(owner_) {}

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /**
     * @notice Mints `amount` (in 1e-6 units) to `to`.
     *
     * Requirements: caller is the owner.
     */
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
