// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title EpcisCodes
 * @notice The fixed code table for GS1 EPCIS 2.0 / CBV 2.0 business steps and
 * dispositions as stored on-chain. Codes are stable: a code is never reused or
 * renumbered; new ones are appended. Code 0 is invalid for both.
 *
 * The off-chain mirror is `ledger_service/codes.py`; a test checks that both
 * tables agree.
 *
 * | code | bizStep          | who may record it                 |
 * |------|------------------|-----------------------------------|
 * | 1    | commissioning    | manufacturer, only by registering |
 * | 2    | packing          | manufacturer, merchant            |
 * | 3    | shipping         | manufacturer, merchant            |
 * | 4    | receiving        | manufacturer, merchant            |
 * | 5    | retail_selling   | merchant of record or its seller, |
 * |      |                  | only through ReturnsEscrow        |
 * | 6    | departing        | carrier                           |
 * | 7    | arriving         | carrier                           |
 * | 8    | transporting     | carrier                           |
 * | 9    | inspecting       | inspector                         |
 * | 10   | repairing        | manufacturer, merchant            |
 * | 11   | stocking         | manufacturer, merchant            |
 * | 12   | destroying       | manufacturer, merchant            |
 * | 13   | decommissioning  | manufacturer, merchant            |
 * | 14   | holding          | manufacturer, merchant            |
 *
 * Dispositions: 1 active, 2 in_progress, 3 in_transit, 4 sellable_accessible,
 * 5 sellable_not_accessible, 6 retail_sold, 7 returned, 8 damaged,
 * 9 conformant, 10 non_conformant, 11 recalled, 12 destroyed, 13 inactive.
 *
 * "merchant" means MERCHANT_ROLE held by the item's merchant of record or by a
 * seller it set ({ProvenanceLedger-setSeller}); a merchant cannot record
 * events on another merchant's items. Any MANUFACTURER_ROLE holder may.
 *
 * Conventions: delivery to the consumer is `arriving` + `retail_sold` by a
 * carrier; a return is `receiving` (merchant) or `arriving` (carrier) +
 * `returned` with the return's id as business transaction; a recall is
 * `holding` + `recalled`. No event is accepted after `destroying`.
 */
library EpcisCodes {
    uint8 internal constant COMMISSIONING = 1;
    uint8 internal constant PACKING = 2;
    uint8 internal constant SHIPPING = 3;
    uint8 internal constant RECEIVING = 4;
    uint8 internal constant RETAIL_SELLING = 5;
    uint8 internal constant DEPARTING = 6;
    uint8 internal constant ARRIVING = 7;
    uint8 internal constant TRANSPORTING = 8;
    uint8 internal constant INSPECTING = 9;
    uint8 internal constant REPAIRING = 10;
    uint8 internal constant STOCKING = 11;
    uint8 internal constant DESTROYING = 12;
    uint8 internal constant DECOMMISSIONING = 13;
    uint8 internal constant HOLDING = 14;
    uint8 internal constant MAX_BIZ_STEP = 14;

    uint8 internal constant ACTIVE = 1;
    uint8 internal constant IN_PROGRESS = 2;
    uint8 internal constant IN_TRANSIT = 3;
    uint8 internal constant SELLABLE_ACCESSIBLE = 4;
    uint8 internal constant SELLABLE_NOT_ACCESSIBLE = 5;
    uint8 internal constant RETAIL_SOLD = 6;
    uint8 internal constant RETURNED = 7;
    uint8 internal constant DAMAGED = 8;
    uint8 internal constant CONFORMANT = 9;
    uint8 internal constant NON_CONFORMANT = 10;
    uint8 internal constant RECALLED = 11;
    uint8 internal constant DESTROYED = 12;
    uint8 internal constant INACTIVE = 13;
    uint8 internal constant MAX_DISPOSITION = 13;
}
