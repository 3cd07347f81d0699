"""A capture job from the document's bytes to its events on-chain: validated whole, claimed, dry-run, sent.

:func:`open_job` records the job (``running``); :func:`run_job` does the work and always ends the job
``succeeded`` or ``failed`` (it never raises). In order:

1. read the document (:func:`ledger_service.epcis.document.read_document`: JSON, GS1's schema, our
   stateless rules, hash IDs);
2. drop duplicates: an event whose hash ID appears earlier in the document or is already captured;
3. wait until the index has the chain's head, read its facts (the account's roles, the items), and
   plan (:func:`ledger_service.capture.plan.plan_capture`);
4. claim every planned event by its hash ID (an event a concurrent capture claimed first is a duplicate
   too, and the rest is planned again without it), and store the document as received in the document
   store: its digest is every event's on-chain ``document`` (one write per capture, not one per event);
5. dry-run every transaction in one simulation (:mod:`.ledger_tx`); any refusal: release the claims,
   remove the document if this job added it, nothing was sent;
6. send; each mined transaction's events are marked recorded with their seqs; if a transaction fails (a
   race with another writer of the item), the events not on-chain are released and named in the job's
   errors, so re-submitting the same document captures exactly those;
7. wait (at most ``wait_timeout_s``) until the indexer has the last block, so a succeeded job's events
   answer queries.

Captures by one account run one at a time in a process (a lock per account): each plans on the state the
previous one left. A refusal before sending is the whole document's; any step 1-5 failure leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from eth_utils.address import to_checksum_address

from ledger_service.capture.ledger_tx import Refusal, Tx, build_transactions, read_max_batch, recorded_seqs, send
from ledger_service.capture.plan import Plan, plan_capture
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.sender import SentTx
from ledger_service.chain.signers import ChainContext
from ledger_service.documents.cid import Cid, cid_of_bytes
from ledger_service.documents.interface import DocumentStore
from ledger_service.epcis.document import EpcisEvent, item_id_of, parse_json, read_document
from ledger_service.epcis.errors import DocumentRefusedError, EventError, event_pointer
from ledger_service.epcis.serialize import namespaces_of
from ledger_service.errors import LedgerError
from ledger_service.store import capture_jobs, epcis_events
from ledger_service.store.epcis_events import EventClaim, Recorded
from ledger_service.store.handle import Store

log = structlog.get_logger(__name__)

SEND_CHUNK = 64
"""Transactions sent between two progress updates of the job."""
_account_locks: dict[str, threading.Lock] = {}
_account_guard = threading.Lock()


@dataclass(frozen=True)
class CaptureContext:
    """What a capture needs; ``explain`` turns a contract's refusal into a sentence (the API's wording)."""

    store: Store
    chain: ChainContext
    documents: DocumentStore
    explain: Callable[[ContractRevertError], str]
    max_events: int
    index_wait_s: float


@dataclass
class _Outcome:
    event_count: int = 0
    captured: int = 0
    duplicates: int = 0


def new_capture_id() -> str:
    return "cap_" + secrets.token_hex(16)


def open_job(store: Store, *, key_id: int, actor: str, raw: bytes) -> str:
    """Records a new running job for the document ``raw``; its capture id."""
    capture_id = new_capture_id()
    capture_jobs.insert_job(
        store,
        capture_id=capture_id,
        key_id=key_id,
        actor=actor,
        document_digest=hashlib.sha256(raw).hexdigest(),
        created_at=int(time.time()),
    )
    return capture_id


def _lock_for(actor: str) -> threading.Lock:
    with _account_guard:
        return _account_locks.setdefault(actor.lower(), threading.Lock())


def run_job(
    ctx: CaptureContext,
    *,
    capture_id: str,
    actor: str,
    document: bytes | Any,
    events: Sequence[EpcisEvent] | None = None,
    raw: bytes | None = None,
) -> None:
    """Runs the job to its end (see the module docstring); ``document``: the bytes, or parsed JSON;
    ``events``: what :func:`~ledger_service.epcis.document.read_document` made of it, if the caller read it;
    ``raw``: the bytes as received, when ``document`` is parsed (they are what the document store keeps)."""
    outcome = _Outcome()
    try:
        with _lock_for(actor):
            errors = _capture(
                ctx,
                capture_id=capture_id,
                actor=actor.lower(),
                document=document,
                raw=raw,
                events=events,
                outcome=outcome,
            )
    except DocumentRefusedError as exc:
        errors = [e.to_json() for e in exc.errors]
    except LedgerError as exc:
        errors = [EventError(None, "", f"the document was not captured: {exc}").to_json()]
    except Exception:  # the job must end; the detail goes to the log, not to the caller
        log.exception("capture failed", capture_id=capture_id)
        errors = [
            EventError(
                None,
                "",
                "the capture failed on an internal error; nothing of it was recorded "
                "unless the job's counts say so: send the document again",
            ).to_json()
        ]
    capture_jobs.finish_job(
        ctx.store,
        capture_id=capture_id,
        state=capture_jobs.FAILED if errors else capture_jobs.SUCCEEDED,
        event_count=outcome.event_count,
        captured=outcome.captured,
        duplicates=outcome.duplicates,
        errors=errors,
        finished_at=int(time.time()),
    )


def document_bytes(document: bytes | Any) -> bytes:
    """What the document store keeps of a capture: the bytes as received, or (given parsed JSON) its canonical
    JSON. Every event of the capture has this document's digest as its on-chain ``document``; the event is
    found in it by its position in ``epcisBody.eventList`` (``ledger:eventIndex`` in answers)."""
    if isinstance(document, bytes | bytearray):
        return bytes(document)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _wait_for_index(store: Store, block_number: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        checkpoint = store.checkpoint()
        if checkpoint is not None and checkpoint.number >= block_number:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _capture(
    ctx: CaptureContext,
    *,
    capture_id: str,
    actor: str,
    document: bytes | Any,
    raw: bytes | None,
    events: Sequence[EpcisEvent] | None,
    outcome: _Outcome,
) -> list[dict[str, Any]]:
    """The work of :func:`run_job`; the job's errors (empty: succeeded)."""
    source = parse_json(bytes(document)) if isinstance(document, bytes | bytearray) else document
    if events is None:
        events = read_document(source)
    outcome.event_count = len(events)
    if len(events) > ctx.max_events:
        raise DocumentRefusedError(
            [
                EventError(
                    None,
                    "/epcisBody/eventList",
                    f"the document holds {len(events)} events; at most "
                    f"{ctx.max_events} are captured from one document: split it",
                )
            ]
        )
    seen: set[str] = set()
    fresh: list[EpcisEvent] = []
    for event in events:
        if event.hash_id not in seen:
            seen.add(event.hash_id)
            fresh.append(event)
    known = epcis_events.known_hash_ids(ctx.store, [e.hash_id for e in fresh])
    fresh = [e for e in fresh if e.hash_id not in known]
    outcome.duplicates = len(events) - len(fresh)
    if not fresh:
        return []
    head = int(ctx.chain.w3.eth.block_number)
    _wait_for_index(ctx.store, head, ctx.index_wait_s)
    stored = document_bytes(raw if raw is not None else document)
    cid = cid_of_bytes(stored)
    digests = dict.fromkeys((e.hash_id for e in fresh), cid.digest)
    plan = _plan(ctx, actor, fresh, digests)
    claimed = epcis_events.claim_events(
        ctx.store,
        capture_id=capture_id,
        actor=actor,
        claims=[claim_of(e, cid, json.dumps(namespaces_of(source))) for e in plan.events],
    )
    if len(claimed) < len(plan.events):  # a concurrent capture holds some: plan the rest again
        outcome.duplicates += len(plan.events) - len(claimed)
        try:
            plan = _plan(ctx, actor, [e for e in plan.events if e.hash_id in claimed], digests)
        except DocumentRefusedError:
            epcis_events.release_claims(ctx.store, claimed.values())
            raise
    if not claimed:
        return []
    added = False
    try:
        if ctx.documents.stat(cid) is None:
            ctx.documents.put([stored], content_type="application/ld+json")
            added = True
        txs, refusals, gas_limit = build_transactions(
            ctx.chain,
            actor=_checksum(actor),
            registrations=plan.registrations,
            steps=plan.steps,
            max_batch=read_max_batch(ctx.chain),
        )
        if refusals:
            raise DocumentRefusedError(_refusal_errors(ctx, refusals))
    except BaseException:
        epcis_events.release_claims(ctx.store, claimed.values())
        if added:
            ctx.documents.remove(cid)
        raise
    return _send(
        ctx,
        capture_id=capture_id,
        actor=actor,
        plan=plan,
        txs=txs,
        gas_limit=gas_limit,
        claimed=claimed,
        outcome=outcome,
    )


def _checksum(actor: str) -> str:
    return str(to_checksum_address(actor))


def _plan(ctx: CaptureContext, actor: str, events: Sequence[EpcisEvent], digests: dict[str, bytes]) -> Plan:
    item_ids = {item_id for e in events for item_id, _ in e.items()}
    merchants: dict[str, bool] = {}

    def merchant_role(account: str) -> bool:
        if account not in merchants:
            merchants[account] = "MERCHANT_ROLE" in epcis_events.actor_facts(ctx.store, account).roles
        return merchants[account]

    return plan_capture(
        events=events,
        documents=digests,
        actor=actor,
        actor_facts=epcis_events.actor_facts(ctx.store, actor),
        items=epcis_events.item_facts(ctx.store, item_ids),
        merchant_role=merchant_role,
    )


def claim_of(event: EpcisEvent, cid: Cid, namespaces: str) -> EventClaim:
    """The index row of a captured event (its document's ``cid``, the document's prefixes as JSON)."""
    return EventClaim(
        hash_id=event.hash_id,
        event_id=event.event_id,
        event_index=event.index,
        event_type=event.event_type,
        action=event.action,
        event_time=event.event_time_ms,
        time_zone_offset=event.time_zone_offset,
        biz_step=event.biz_step_text,
        disposition=event.disposition_text,
        read_point=event.read_point,
        document=cid.hex_digest,
        body=json.dumps(event.body, ensure_ascii=False, separators=(",", ":")),
        namespaces=namespaces,
        epcs=tuple((item_id_of(epc), role, epc) for role, epc in event.epcs),
        biz_transactions=event.biz_transactions,
    )


def _refusal_errors(ctx: CaptureContext, refusals: Sequence[Refusal]) -> list[EventError]:
    errors: list[EventError] = []
    for refusal in refusals:
        sentence = f"the ledger contract would refuse it: {ctx.explain(refusal.error)}"
        units = refusal.tx.units()
        item = refusal.error.params.get("itemId")
        named = [(e, i) for e, i in units if isinstance(item, bytes) and i == "0x" + item.hex()]
        for index in sorted({e.index for e, _ in (named[:1] or units)}):
            errors.append(EventError(index, event_pointer(index), sentence))
    return errors


def _send(
    ctx: CaptureContext,
    *,
    capture_id: str,
    actor: str,
    plan: Plan,
    txs: Sequence[Tx],
    gas_limit: int,
    claimed: dict[str, int],
    outcome: _Outcome,
) -> list[dict[str, Any]]:
    # Per event: the items still to be written; an event is recorded once none is left.
    pending: dict[str, set[str]] = {}
    for tx in txs:
        for event, item_id in tx.units():
            pending.setdefault(event.hash_id, set()).add(item_id)
    seqs: dict[str, dict[str, int]] = {h: {} for h in pending}
    last_tx: dict[str, SentTx] = {}
    events = {e.hash_id: e for e in plan.events}
    failure: LedgerError | None = None
    last_block = 0
    for start in range(0, len(txs), SEND_CHUNK):
        chunk = txs[start : start + SEND_CHUNK]
        # One entry per submitted transaction, plus the refusal that stopped the submissions, if any; a
        # transaction mined after a failed one is on-chain all the same, so every entry is read.
        results = send(ctx.chain, actor=_checksum(actor), txs=chunk, gas_limit=gas_limit)
        done: list[Recorded] = []
        for tx, result in zip(chunk, results, strict=False):
            if not isinstance(result, SentTx):
                failure = failure or result
                continue
            last_block = max(last_block, result.block_number)
            for (event, item_id), (_, seq) in zip(tx.units(), recorded_seqs(result), strict=False):
                seqs[event.hash_id][item_id] = seq
                last_tx[event.hash_id] = result
                pending[event.hash_id].discard(item_id)
                if not pending[event.hash_id]:
                    done.append(
                        Recorded(claimed[event.hash_id], result.tx_hash, result.block_number, seqs[event.hash_id])
                    )
        epcis_events.mark_recorded(ctx.store, done, record_time_ms=int(time.time() * 1000))
        outcome.captured += len(done)
        capture_jobs.update_progress(
            ctx.store,
            capture_id=capture_id,
            event_count=outcome.event_count,
            captured=outcome.captured,
            duplicates=outcome.duplicates,
        )
        if failure is not None:
            break
    errors: list[dict[str, Any]] = []
    if failure is not None:
        unsent = sorted((events[h] for h, items in pending.items() if items), key=lambda e: e.index)
        partial = [e for e in unsent if e.hash_id in last_tx]
        # An event some of whose items were written stays claimed, as recorded for those items (their seqs);
        # the job's errors name the others. Every other unsent event is released: a re-submission sends it.
        epcis_events.mark_recorded(
            ctx.store,
            [
                Recorded(
                    claimed[e.hash_id], last_tx[e.hash_id].tx_hash, last_tx[e.hash_id].block_number, seqs[e.hash_id]
                )
                for e in partial
            ],
            record_time_ms=int(time.time() * 1000),
        )
        epcis_events.release_claims(ctx.store, [claimed[e.hash_id] for e in unsent if e.hash_id not in last_tx])
        reason = ctx.explain(failure) if isinstance(failure, ContractRevertError) else str(failure)
        for event in unsent:
            if event.hash_id in last_tx:
                missing = ", ".join(sorted(pending[event.hash_id]))
                message = (
                    f"only part of this event is on-chain: items {missing} are not ({reason}); capture them in a "
                    "new event"
                )
            else:
                message = (
                    f"not recorded: {reason}. The events not listed here are on-chain; send the same document "
                    "again to capture this one"
                )
            errors.append(EventError(event.index, event_pointer(event.index), message).to_json())
    if last_block:
        _wait_for_index(ctx.store, last_block, ctx.index_wait_s)
    return errors
