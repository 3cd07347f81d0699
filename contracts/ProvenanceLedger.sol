// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IProvenanceLedger} from "./interfaces/IProvenanceLedger.sol";
import {EpcisCodes} from "./EpcisCodes.sol";
import {Roles} from "./Roles.sol";

/**
 * @title ProvenanceLedger
 * @notice Registers items by GS1 URI and keeps each item's EPCIS history as a
 * hash chain (see {IProvenanceLedger} for the exact hashing). Holds every role
 * assignment of the system; which role may record which bizStep is enforced
 * here (table in {EpcisCodes}).
 *
 * Invariants: an item's `count` equals the number of {ItemEventRecorded}
 * events emitted for it and `head` is the eventHash of the last one; no event
 * is appended after a `destroying` event.
 */
contract ProvenanceLedger is IProvenanceLedger, AccessControl {
    bytes32 public constant MANUFACTURER_ROLE = Roles.MANUFACTURER;
    bytes32 public constant MERCHANT_ROLE = Roles.MERCHANT;
    bytes32 public constant CARRIER_ROLE = Roles.CARRIER;
    bytes32 public constant INSPECTOR_ROLE = Roles.INSPECTOR;
    bytes32 public constant ARBITER_ROLE = Roles.ARBITER;
    bytes32 public constant RECORDER_ROLE = Roles.RECORDER;
    bytes32 public constant CONSUMER_AGENT_ROLE = Roles.CONSUMER_AGENT;
    bytes32 public constant EXCHANGE_ROLE = Roles.EXCHANGE;
    bytes32 public constant BATCH_ANCHOR_ROLE = Roles.BATCH_ANCHOR;

    /// @notice Longest accepted GS1 URI, in bytes.
    uint256 public constant MAX_URI_LENGTH = 256;
    /// @notice Most events accepted by one {recordEvents} call, and most items by one {registerItems} call.
    uint256 public constant MAX_BATCH = 256;

    struct Item {
        bytes32 head;
        address merchant;
        uint64 count;
        bool destroyed;
        // The last event's codes share the slot that every append writes anyway.
        uint8 lastBizStep;
        uint8 lastDisposition;
    }

    mapping(bytes32 itemId => Item) private _items;
    mapping(address merchant => mapping(address seller => bool)) private _sellers;

    /**
     * @param admin Account that grants and revokes roles (DEFAULT_ADMIN_ROLE).
     */
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /**
     * @notice Registers an item and records its `commissioning` event (seq 0).
     * @param uri The item's GS1 URI (EPC URI or Digital Link); itemId = keccak256(bytes(uri)).
     * @param gtin The item's GTIN-14 as a number (0 if none).
     * @param merchant The merchant of record, who sells the item and funds its refunds.
     * @param metadataDigest Digest of the item's metadata document, or zero.
     * @param location Where it was commissioned (see {EventInput}).
     * @return itemId The new item's id.
     *
     * Requirements: caller has MANUFACTURER_ROLE; `merchant` has MERCHANT_ROLE;
     * the URI is 1..MAX_URI_LENGTH bytes and not yet registered.
     *
     * Emits an {ItemRegistered} and an {ItemEventRecorded} event.
     */
    function registerItem(
        string calldata uri,
        uint64 gtin,
        address merchant,
        bytes32 metadataDigest,
        bytes32 location
    ) external onlyRole(Roles.MANUFACTURER) returns (bytes32 itemId) {
        return _register(uri, gtin, merchant, metadataDigest, location);
    }

    /**
     * @notice Registers several items in one transaction, each exactly as {registerItem} would.
     * @dev One failure reverts the whole batch; an item named twice in the batch is refused as already
     * registered, like a second {registerItem}.
     *
     * Requirements: caller has MANUFACTURER_ROLE; 1..MAX_BATCH registrations; each as {registerItem}.
     *
     * Emits an {ItemRegistered} and an {ItemEventRecorded} event per registration, in order.
     */
    function registerItems(ItemRegistration[] calldata registrations) external onlyRole(Roles.MANUFACTURER) {
        uint256 n = registrations.length;
        if (n == 0 || n > MAX_BATCH) revert ProvenanceInvalidBatch(n);
        for (uint256 i = 0; i < n; ++i) {
            ItemRegistration calldata r = registrations[i];
            _register(r.uri, r.gtin, r.merchant, r.metadataDigest, r.location);
        }
    }

    /**
     * @notice Appends one event, recorded by the caller, to an item's history.
     * @return eventHash The new head of the item's hash chain.
     *
     * Requirements: the item is registered and not destroyed; the codes are in
     * the table; the caller's role may record `bizStep`; `commissioning` and
     * `retail_selling` are reserved (registration and ReturnsEscrow record them).
     *
     * Emits an {ItemEventRecorded} event.
     */
    function recordEvent(EventInput calldata input) external returns (bytes32 eventHash) {
        Item storage item = _load(input.itemId);
        _checkDirectStep(item, input.itemId, msg.sender, input.bizStep);
        return _append(item, msg.sender, input);
    }

    /**
     * @notice Appends several events, all recorded by the caller, in one transaction.
     * @dev Same rules as {recordEvent} for each event; one failure reverts the whole batch.
     *
     * Requirements: 1..MAX_BATCH events.
     *
     * Emits one {ItemEventRecorded} event per input, in order.
     */
    function recordEvents(EventInput[] calldata inputs) external {
        uint256 n = inputs.length;
        if (n == 0 || n > MAX_BATCH) revert ProvenanceInvalidBatch(n);
        for (uint256 i = 0; i < n; ++i) {
            EventInput calldata input = inputs[i];
            Item storage item = _load(input.itemId);
            _checkDirectStep(item, input.itemId, msg.sender, input.bizStep);
            _append(item, msg.sender, input);
        }
    }

    /// @inheritdoc IProvenanceLedger
    function recordEventFor(
        address actor,
        EventInput calldata input
    ) external onlyRole(Roles.RECORDER) returns (bytes32 eventHash) {
        Item storage item = _load(input.itemId);
        if (input.bizStep == EpcisCodes.RETAIL_SELLING) {
            if (!isSeller(item.merchant, actor)) revert ProvenanceNotMerchantOfRecord(input.itemId, actor);
        } else {
            _checkStepRole(item, input.itemId, actor, input.bizStep);
        }
        return _append(item, actor, input);
    }

    /**
     * @notice Hands an item over to another merchant of record (e.g. wholesale to a retailer).
     *
     * Requirements: caller is the current merchant of record; `newMerchant` has MERCHANT_ROLE.
     *
     * Emits a {MerchantOfRecordChanged} event.
     */
    function transferMerchantOfRecord(bytes32 itemId, address newMerchant) external {
        Item storage item = _load(itemId);
        address previous = item.merchant;
        if (msg.sender != previous) revert ProvenanceNotMerchantOfRecord(itemId, msg.sender);
        if (!hasRole(Roles.MERCHANT, newMerchant)) revert ProvenanceNotMerchant(newMerchant);
        item.merchant = newMerchant;
        emit MerchantOfRecordChanged(itemId, previous, newMerchant);
    }

    /**
     * @notice Allows (or stops allowing) `seller` to record sales of the caller's items.
     *
     * Requirements: caller has MERCHANT_ROLE.
     *
     * Emits a {SellerSet} event.
     */
    function setSeller(address seller, bool allowed) external onlyRole(Roles.MERCHANT) {
        _sellers[msg.sender][seller] = allowed;
        emit SellerSet(msg.sender, seller, allowed);
    }

    /// @inheritdoc IProvenanceLedger
    function merchantOf(bytes32 itemId) external view returns (address) {
        return _items[itemId].merchant;
    }

    /// @inheritdoc IProvenanceLedger
    function isSeller(address merchant, address account) public view returns (bool) {
        return merchant != address(0) && (account == merchant || _sellers[merchant][account]);
    }

    /**
     * @notice The stored head, count, merchant of record and destroyed flag of an item (zeros if unknown).
     */
    function itemOf(bytes32 itemId) external view returns (ItemRecord memory) {
        Item storage item = _items[itemId];
        return ItemRecord(item.head, item.count, item.merchant, item.destroyed);
    }

    /// @inheritdoc IProvenanceLedger
    function lastStepOf(bytes32 itemId) external view returns (uint8 bizStep, uint8 disposition) {
        Item storage item = _items[itemId];
        return (item.lastBizStep, item.lastDisposition);
    }

    /**
     * @notice Computes an eventHash exactly as the contract does, for auditors and tests.
     */
    function computeEventHash(
        bytes32 prevHash,
        bytes32 itemId,
        uint64 seq,
        uint8 bizStep,
        uint8 disposition,
        address actor,
        bytes32 location,
        bytes32 document,
        bytes32 bizTransaction,
        uint64 timestamp
    ) external pure returns (bytes32) {
        bytes32 dataHash = keccak256(abi.encode(location, document, bizTransaction));
        return keccak256(abi.encode(prevHash, itemId, seq, bizStep, disposition, actor, dataHash, timestamp));
    }

    function _register(
        string calldata uri,
        uint64 gtin,
        address merchant,
        bytes32 metadataDigest,
        bytes32 location
    ) private returns (bytes32 itemId) {
        uint256 length = bytes(uri).length;
        if (length == 0 || length > MAX_URI_LENGTH) revert ProvenanceInvalidUri(length);
        if (!hasRole(Roles.MERCHANT, merchant)) revert ProvenanceNotMerchant(merchant);
        itemId = keccak256(bytes(uri));
        Item storage item = _items[itemId];
        if (item.count != 0) revert ProvenanceItemAlreadyRegistered(itemId);
        item.merchant = merchant;
        emit ItemRegistered(itemId, msg.sender, merchant, uri, gtin, metadataDigest);
        _append(
            item,
            msg.sender,
            EventInput(itemId, EpcisCodes.COMMISSIONING, EpcisCodes.ACTIVE, location, metadataDigest, bytes32(0))
        );
    }

    function _load(bytes32 itemId) private view returns (Item storage item) {
        item = _items[itemId];
        if (item.count == 0) revert ProvenanceItemUnknown(itemId);
    }

    function _checkDirectStep(Item storage item, bytes32 itemId, address actor, uint8 bizStep) private view {
        if (bizStep == EpcisCodes.COMMISSIONING || bizStep == EpcisCodes.RETAIL_SELLING) {
            revert ProvenanceStepReserved(bizStep);
        }
        _checkStepRole(item, itemId, actor, bizStep);
    }

    /// @dev Carrier steps need CARRIER_ROLE, `inspecting` INSPECTOR_ROLE; the other steps need
    /// MANUFACTURER_ROLE, or MERCHANT_ROLE held by the item's merchant of record or one of its sellers.
    function _checkStepRole(Item storage item, bytes32 itemId, address actor, uint8 bizStep) private view {
        if (bizStep == 0 || bizStep > EpcisCodes.MAX_BIZ_STEP) revert ProvenanceUnknownBizStep(bizStep);
        bool allowed;
        if (bizStep == EpcisCodes.DEPARTING || bizStep == EpcisCodes.ARRIVING || bizStep == EpcisCodes.TRANSPORTING) {
            allowed = hasRole(Roles.CARRIER, actor);
        } else if (bizStep == EpcisCodes.INSPECTING) {
            allowed = hasRole(Roles.INSPECTOR, actor);
        } else if (bizStep != EpcisCodes.COMMISSIONING && bizStep != EpcisCodes.RETAIL_SELLING) {
            if (hasRole(Roles.MANUFACTURER, actor)) {
                allowed = true;
            } else if (hasRole(Roles.MERCHANT, actor)) {
                if (!isSeller(item.merchant, actor)) revert ProvenanceNotMerchantOfRecord(itemId, actor);
                allowed = true;
            }
        }
        if (!allowed) revert ProvenanceStepNotAllowed(actor, bizStep);
    }

    function _append(Item storage item, address actor, EventInput memory input) private returns (bytes32 eventHash) {
        if (item.destroyed) revert ProvenanceItemDestroyed(input.itemId);
        if (input.disposition == 0 || input.disposition > EpcisCodes.MAX_DISPOSITION) {
            revert ProvenanceUnknownDisposition(input.disposition);
        }
        uint64 seq = item.count;
        bytes32 prevHash = item.head;
        uint64 timestamp = uint64(block.timestamp);
        bytes32 dataHash = keccak256(abi.encode(input.location, input.document, input.bizTransaction));
        eventHash = keccak256(
            abi.encode(prevHash, input.itemId, seq, input.bizStep, input.disposition, actor, dataHash, timestamp)
        );
        item.head = eventHash;
        item.count = seq + 1;
        item.lastBizStep = input.bizStep;
        item.lastDisposition = input.disposition;
        if (input.bizStep == EpcisCodes.DESTROYING) item.destroyed = true;
        emit ItemEventRecorded(
            input.itemId,
            actor,
            seq,
            input.bizStep,
            input.disposition,
            input.location,
            input.document,
            input.bizTransaction,
            timestamp,
            prevHash,
            eventHash
        );
    }
}
