// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/**
 * @title IProvenanceLedger
 * @notice Item registry and per-item hash-chained history of EPCIS events.
 *
 * Hash chain of an item: event `seq` (0-based; seq 0 is the `commissioning`
 * event written by registration) has
 *   dataHash  = keccak256(abi.encode(location, document, bizTransaction))
 *   eventHash = keccak256(abi.encode(prevHash, itemId, seq, bizStep,
 *                                    disposition, actor, dataHash, timestamp))
 * with prevHash = eventHash of event seq-1 (bytes32(0) for seq 0), all types as
 * in {ItemEventRecorded}. The contract stores the head (the last eventHash) and
 * the count, so replaying the emitted events must reproduce {itemOf}.
 */
interface IProvenanceLedger is IAccessControl {
    /// @notice One event to record: what happened to which item, where, with which evidence.
    /// @param itemId keccak256 of the item's GS1 URI.
    /// @param bizStep CBV business step code (see EpcisCodes).
    /// @param disposition CBV disposition code (see EpcisCodes).
    /// @param location Read point: the SGLN `company.location.extension` in ASCII, right-padded with zeros.
    /// @param document An attached document, or zero: the sha2-256 digest inside its IPFS CID's multihash
    /// (CIDv0 = base58btc(0x1220 ++ document), as `ipfs add` gives it).
    /// @param bizTransaction Business transaction this event belongs to (order, return id), or zero.
    struct EventInput {
        bytes32 itemId;
        uint8 bizStep;
        uint8 disposition;
        bytes32 location;
        bytes32 document;
        bytes32 bizTransaction;
    }

    /// @notice One item to register with {ProvenanceLedger-registerItems}: the arguments of `registerItem`.
    /// @param uri The item's GS1 URI (EPC URI or Digital Link); itemId = keccak256(bytes(uri)).
    /// @param gtin The item's GTIN-14 as a number (0 if none).
    /// @param merchant The merchant of record.
    /// @param metadataDigest Digest of the item's metadata document, or zero (the commissioning's `document`).
    /// @param location Where it was commissioned (see {EventInput}).
    struct ItemRegistration {
        string uri;
        uint64 gtin;
        address merchant;
        bytes32 metadataDigest;
        bytes32 location;
    }

    /// @notice The stored state of an item.
    struct ItemRecord {
        bytes32 head;
        uint64 count;
        address merchant;
        bool destroyed;
    }

    /// @notice An item was registered by a manufacturer; its `commissioning` event follows.
    event ItemRegistered(
        bytes32 indexed itemId,
        address indexed manufacturer,
        address indexed merchant,
        string uri,
        uint64 gtin,
        bytes32 metadataDigest
    );

    /// @notice An event was appended to an item's hash chain.
    event ItemEventRecorded(
        bytes32 indexed itemId,
        address indexed actor,
        uint64 seq,
        uint8 bizStep,
        uint8 disposition,
        bytes32 location,
        bytes32 document,
        bytes32 bizTransaction,
        uint64 timestamp,
        bytes32 prevHash,
        bytes32 eventHash
    );

    /// @notice The merchant of record of an item changed.
    event MerchantOfRecordChanged(bytes32 indexed itemId, address indexed previousMerchant, address indexed newMerchant);

    /// @notice A merchant allowed or stopped allowing `seller` to record sales of its items.
    event SellerSet(address indexed merchant, address indexed seller, bool allowed);

    /// @notice The URI is empty or longer than the maximum.
    error ProvenanceInvalidUri(uint256 length);
    /// @notice An item with this id is already registered.
    error ProvenanceItemAlreadyRegistered(bytes32 itemId);
    /// @notice No item with this id is registered.
    error ProvenanceItemUnknown(bytes32 itemId);
    /// @notice The item was destroyed; its history is closed.
    error ProvenanceItemDestroyed(bytes32 itemId);
    /// @notice The account does not hold the merchant role.
    error ProvenanceNotMerchant(address account);
    /// @notice The caller is not the item's merchant of record.
    error ProvenanceNotMerchantOfRecord(bytes32 itemId, address account);
    /// @notice The bizStep code is not in the table.
    error ProvenanceUnknownBizStep(uint8 bizStep);
    /// @notice The disposition code is not in the table.
    error ProvenanceUnknownDisposition(uint8 disposition);
    /// @notice The actor's roles do not allow it to record this bizStep.
    error ProvenanceStepNotAllowed(address actor, uint8 bizStep);
    /// @notice This bizStep is only recorded by registration or by the returns escrow.
    error ProvenanceStepReserved(uint8 bizStep);
    /// @notice A batch is empty or larger than the maximum.
    error ProvenanceInvalidBatch(uint256 size);

    /**
     * @notice The item's merchant of record, or the zero address if unknown.
     */
    function merchantOf(bytes32 itemId) external view returns (address);

    /**
     * @notice Whether `account` may record sales for `merchant` (the merchant itself or a seller it set).
     */
    function isSeller(address merchant, address account) external view returns (bool);

    /**
     * @notice The bizStep and disposition of the item's last event (zeros if unknown).
     */
    function lastStepOf(bytes32 itemId) external view returns (uint8 bizStep, uint8 disposition);

    /**
     * @notice The stored head, count, merchant of record and destroyed flag of an item (zeros if unknown).
     */
    function itemOf(bytes32 itemId) external view returns (ItemRecord memory);

    /**
     * @notice Records an event on behalf of `actor`, who called the recorder contract.
     * @dev Only for RECORDER_ROLE (ReturnsEscrow). The actor's roles are checked as for {recordEvent}.
     */
    function recordEventFor(address actor, EventInput calldata input) external returns (bytes32 eventHash);
}
