"""Batched scans in: checks a carrier's or manufacturer's observation scans and queues them for anchoring.

:func:`accept_scans` is the whole of ``POST /v1/scans``: every scan is checked against the rules the indexer will
apply to its batch (a batchable step and disposition, the item registered and not destroyed, the submitter's
on-chain roles allow the step on that item, a read point the leaf can hold, a time not in the future and not
older than the indexer's tolerance allows, less a margin: :func:`accepted_age_s`) and the
request is refused whole, with every reason, if one breaks them; otherwise all are queued in one transaction
(``store/scan_queue.py``) and each gets its receipt. No chain call: ledger-batcher anchors the batches.

A scan accepted here can still be refused by the indexer when the facts change before its batch is anchored
(the submitter loses its role, the item is destroyed); its receipt names the batch, whose state says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger_service.access import Actor
from ledger_service.core import batch_document
from ledger_service.core.batch_document import BATCHABLE_DISPOSITIONS, BATCHABLE_STEPS, MAX_URI_BYTES
from ledger_service.core.codes import BizStep, step_refusal
from ledger_service.core.hashchain import item_id as uri_item_id
from ledger_service.errors import ConfigurationError, InvalidRequestError, NotFoundError
from ledger_service.store import Store
from ledger_service.store.scan_queue import QueuedScan, Receipt, enqueue_scans, scan_facts

MAX_REASONS = 20
"""A refused request names this many problems in full (and how many more there were)."""

ZERO_HASH = "0x" + "00" * 32
_STEPS = {step.cbv: int(step) for step in BATCHABLE_STEPS}
_DISPOSITIONS = {disposition.cbv: int(disposition) for disposition in BATCHABLE_DISPOSITIONS}

ANCHOR_MARGIN_S = 86_400
"""Time left for an accepted scan's batch to be sealed and anchored before the indexer's age limit would refuse it."""


def accepted_age_s(max_age_s: int) -> int:
    """The oldest scan (seconds before now) that may be queued when the indexer refuses a batch holding a scan
    dated more than ``max_age_s`` before its anchor's block: less a margin (a day, or half ``max_age_s`` if less)
    for the batch to be anchored, so a scan acknowledged today is not refused for its age when its anchor is mined."""
    return max_age_s - min(ANCHOR_MARGIN_S, max_age_s // 2)


class ScanIn(Protocol):
    """One observation scan as a client sends it (the API's validated request body is one as it is: no copy
    per scan)."""

    @property
    def item(self) -> str:
        """The item's GS1 URI."""

    @property
    def biz_step(self) -> str: ...

    @property
    def disposition(self) -> str: ...

    @property
    def read_point(self) -> str: ...

    @property
    def time(self) -> int | None:
        """Unix seconds, on the scanner's clock; None: when it was received."""

    @property
    def document(self) -> str | None:
        """0x + 64 hex; None: no document (zero)."""

    @property
    def biz_transaction(self) -> str | None:
        """0x + 64 hex; None: no business transaction (zero)."""


def _check_shape(index: int, scan: ScanIn, now_s: int, oldest_s: int | None) -> str | QueuedScan:
    """The scan's queued form, or the reason it cannot be queued."""
    where = f"scans[{index}]"
    step = _STEPS.get(scan.biz_step)
    if step is None:
        steps = ", ".join(sorted(_STEPS))
        return f"{where}: bizStep {scan.biz_step} cannot be batched; record it on-chain (batchable: {steps})"
    disposition = _DISPOSITIONS.get(scan.disposition)
    if disposition is None:
        allowed = ", ".join(sorted(_DISPOSITIONS))
        return f"{where}: disposition {scan.disposition} cannot be batched; record it on-chain (batchable: {allowed})"
    if not 1 <= len(scan.item.encode("utf-8")) <= MAX_URI_BYTES:
        return f"{where}: item must be a GS1 URI of 1 to {MAX_URI_BYTES} bytes"
    if not 1 <= len(scan.read_point) <= 32 or not scan.read_point.isascii():
        return f"{where}: readPoint must be 1 to 32 ASCII characters (an SGLN company.location.extension)"
    time = now_s if scan.time is None else scan.time
    if time > now_s:
        return (
            f"{where}: time {time} is after now ({now_s}): a scan dated after its batch's anchor is refused; "
            "check the scanner's clock"
        )
    if oldest_s is not None and time < oldest_s:
        return (
            f"{where}: time {time} is more than {now_s - oldest_s} s before now ({now_s}), older than a batched "
            "scan may be (LEDGER_BATCH_SCAN_MAX_AGE_S, less a margin for its batch to be anchored): record it "
            "on-chain instead, or check the scanner's clock"
        )
    document, biz_transaction = scan.document, scan.biz_transaction
    return QueuedScan(
        scan.item,
        step,
        disposition,
        scan.read_point,
        time,
        ZERO_HASH if document is None else document.lower(),
        ZERO_HASH if biz_transaction is None else biz_transaction.lower(),
    )


def check_scans(
    store: Store, *, actor: Actor, scans: Sequence[ScanIn], now_s: int, max_age_s: int | None = None
) -> list[QueuedScan]:
    """The scans in queued form; :class:`InvalidRequestError` with every reason if any may not be batched by
    ``actor``. ``max_age_s``: the indexer's tolerance (``LEDGER_BATCH_SCAN_MAX_AGE_S``; None: no lower bound)."""
    oldest_s = None if max_age_s is None else now_s - accepted_age_s(max_age_s)
    account = (actor.address or "").lower()
    problems: list[str] = []
    checked: list[tuple[int, str, QueuedScan]] = []
    item_ids: dict[str, str] = {}  # a request often scans an item more than once: hashed once
    for index, scan in enumerate(scans):
        queued = _check_shape(index, scan, now_s, oldest_s)
        if isinstance(queued, str):
            problems.append(queued)
            continue
        item_id = item_ids.get(queued.item)
        if item_id is None:
            item_id = item_ids[queued.item] = "0x" + uri_item_id(queued.item).hex()
        checked.append((index, item_id, queued))
    if checked:
        facts, standings = scan_facts(store, account=account, item_ids=item_ids.values())
        refusals: dict[tuple[int, str], str | None] = {}
        for index, item_id, queued in checked:
            standing = standings.get(item_id)
            if standing is None:
                problems.append(f"scans[{index}]: item {queued.item} is not registered (or not indexed yet)")
                continue
            merchant, destroyed = standing
            if destroyed:
                problems.append(f"scans[{index}]: item {queued.item} was destroyed: nothing is recorded after that")
                continue
            # one rule check per (step, merchant): a request scans many items of few merchants
            rule = (queued.biz_step, merchant)
            if rule not in refusals:
                refusals[rule] = step_refusal(
                    BizStep(queued.biz_step),
                    roles=facts.roles,
                    actor=account,
                    merchant=merchant,
                    sells_for=facts.sells_for,
                )
            why = refusals[rule]
            if why is not None:
                problems.append(f"scans[{index}]: {BizStep(queued.biz_step).cbv} on {queued.item}: {why}")
    if problems:
        more = f"; and {len(problems) - MAX_REASONS} more" if len(problems) > MAX_REASONS else ""
        raise InvalidRequestError("no scan was accepted: " + "; ".join(problems[:MAX_REASONS]) + more)
    return [queued for _, _, queued in checked]


def accept_scans(
    store: Store,
    *,
    actor: Actor,
    scans: Sequence[ScanIn],
    max_per_batch: int,
    anchors: bool,
    now_ms: int,
    max_age_s: int | None = None,
) -> list[Receipt]:
    """Checks ``scans`` (:func:`check_scans`) and queues them all in one transaction; one receipt each.

    ``anchors``: the deployment has a BatchAnchor and the service holds the actor's signing key (otherwise no
    batch of theirs could ever be anchored, and acknowledging a scan would be a promise not kept).
    """
    if not anchors:
        raise ConfigurationError(
            "scans cannot be batched here: the deployment has no BatchAnchor contract or the service holds no "
            "signing key for this key's account; the operator must deploy BatchAnchor and add the key to "
            "LEDGER_SIGNER_KEYS"
        )
    queued = check_scans(store, actor=actor, scans=scans, now_s=now_ms // 1000, max_age_s=max_age_s)
    return enqueue_scans(
        store, submitter=actor.account, key_id=actor.key_id, scans=queued, max_scans=max_per_batch, now_ms=now_ms
    )


@dataclass(frozen=True, slots=True)
class ScanProof:
    """What proves one batched scan against its anchor, without the index: its leaf's values, in the order and
    types of :data:`~ledger_service.core.batch_document.LEAF_ENCODING`, and the Merkle proof to the root."""

    values: list[str]
    """As ``@openzeppelin/merkle-tree`` takes them: hex for bytes32 and address, decimal strings for integers."""
    leaf: str
    proof: list[str]
    root: str
    scan: dict[str, object]
    """The scan as its batch document lists it."""


def scan_proof(document: bytes, position: int) -> ScanProof:
    """The proof of the scan at ``position`` in a sealed batch's ``document``; NotFoundError past its end."""
    sealed = batch_document.decode(document)
    if not 0 <= position < len(sealed.scans):
        raise NotFoundError(f"the batch has {len(sealed.scans)} scans: no position {position}")
    tree = sealed.tree()
    scan = sealed.scans[position]
    return ScanProof(
        values=batch_document.standard_tree_values(sealed)[position],
        leaf="0x" + tree.leaf(position).hex(),
        proof=["0x" + node.hex() for node in tree.proof(position)],
        root="0x" + sealed.root.hex(),
        scan={
            "item": scan.item,
            "seq": scan.seq,
            "prev_hash": "0x" + scan.prev_hash.hex(),
            "biz_step": scan.biz_step.cbv,
            "disposition": scan.disposition.cbv,
            "read_point": scan.read_point,
            "time": scan.time,
            "document": "0x" + scan.document.hex(),
            "biz_transaction": "0x" + scan.biz_transaction.hex(),
        },
    )
