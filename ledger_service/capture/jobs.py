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
   remove the document if this job added it, nothing was sent. With ``batch_scans`` (``LEDGER_EPCIS_CAPTURE_
   BATCH_SCANS``, the deployment has a BatchAnchor and the service holds the account's key), the events that
   may be batched (an observation: a batchable bizStep and disposition, a read point, not commissioning; the
   set :mod:`ledger_service.core.batch_document` enforces; dated no earlier than ``capture/scans.accepted_age_s``
   allows, older ones go on-chain) are not sent as transactions: once the dry run of
   the rest passed, their scans are queued for ledger-batcher (one per item, as ``POST /v1/scans`` queues
   them) and the events marked ``batched`` in one transaction (a capture killed around it leaves both or
   neither: the reaper then releases the claims and the document sent again queues those scans once), and the
   job's ``batched`` names each item's batch and place;
6. send; each mined transaction's events are marked recorded with their seqs; if a transaction fails (a
   race with another writer of the item), the events not on-chain are released and named in the job's
   errors, so re-submitting the same document captures exactly those;
7. wait (at most ``wait_timeout_s``) until the indexer has the last block, so a succeeded job's events
   answer queries.

Captures by one account run one at a time in a process, in the order :func:`open_job` opened them: each
plans on the state the previous one left. A refusal before sending is the whole document's; any step 1-5
failure leaves nothing.

Jobs whose process died. A running job names its owner (this process) and the owner renews its heartbeat
every :data:`.lease.HEARTBEAT_S` seconds, from :func:`open_job` until the job is finished. A job whose heartbeat is
older than the lease (``LEDGER_EPCIS_CAPTURE_LEASE_S``) is taken over by :func:`reap_abandoned` (run before
each capture, and when a poller reads such a job): once the dead owner's transactions are mined and indexed,
the events it claimed are matched to the item events naming its document (:func:`.restore.restore_events`),
those on-chain are marked recorded, the others released and named, and the job ends ``failed``, so sending
the same document again captures exactly the missing events.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_utils.address import to_checksum_address

from ledger_service.capture import lease
from ledger_service.capture.ledger_tx import Refusal, Tx, build_transactions, read_max_batch, recorded_seqs, send
from ledger_service.capture.plan import Plan, plan_capture
from ledger_service.capture.restore import Restored, claim_of, restore_events
from ledger_service.capture.scans import accepted_age_s
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.chain.sender import SentTx
from ledger_service.chain.signers import ChainContext
from ledger_service.core.batch_document import BATCHABLE_DISPOSITIONS, BATCHABLE_STEPS
from ledger_service.documents.cid import Cid, cid_of_bytes
from ledger_service.documents.interface import DocumentStore
from ledger_service.epcis.document import EpcisEvent, parse_json, read_document
from ledger_service.epcis.errors import DocumentRefusedError, EventError, event_pointer
from ledger_service.epcis.serialize import namespaces_of
from ledger_service.errors import LedgerError
from ledger_service.store import capture_jobs, epcis_events
from ledger_service.store.epcis_events import Recorded
from ledger_service.store.handle import Store
from ledger_service.store.scan_queue import QueuedScan, enqueue_scans

log = structlog.get_logger(__name__)

SEND_CHUNK = 64
"""Transactions sent between two progress updates of the job."""
_reaping = threading.Lock()


@dataclass(frozen=True)
class CaptureContext:
    """What a capture needs; ``explain`` turns a contract's refusal into a sentence (the API's wording)."""

    store: Store
    chain: ChainContext
    documents: DocumentStore
    explain: Callable[[ContractRevertError], str]
    max_events: int
    index_wait_s: float
    lease_s: float = 30.0
    """A running job whose owner's heartbeat is older than this is taken for abandoned."""
    batch_scans: bool = False
    """Send the events that may be batched to the scan batcher (see the module docstring)."""
    batch_max_scans: int = 1000
    batch_scan_max_age_s: int | None = None
    """The indexer's tolerance for a batched scan's age: an older event is recorded on-chain instead."""


@dataclass
class _Outcome:
    event_count: int = 0
    captured: int = 0
    duplicates: int = 0
    batched: list[dict[str, Any]] = field(default_factory=list)


def new_capture_id() -> str:
    return "cap_" + secrets.token_hex(16)


def open_job(store: Store, *, key_id: int, actor: str, raw: bytes) -> str:
    """Records a new running job for the document ``raw``, owned by this process, and queues it behind the
    account's earlier ones; its capture id. :func:`run_job` must follow (the account's later jobs wait)."""
    capture_id = new_capture_id()
    capture_jobs.insert_job(
        store,
        capture_id=capture_id,
        key_id=key_id,
        actor=actor,
        document_digest=hashlib.sha256(raw).hexdigest(),
        created_at=int(time.time()),
        owner=lease.owner(),
        heartbeat_at=lease.now_ms(),
    )
    lease.heartbeat.add(store, capture_id)
    lease.turns.join(actor, capture_id)
    return capture_id


def is_abandoned(ctx: CaptureContext, job: capture_jobs.CaptureJobRow) -> bool:
    """Whether ``job`` is running with no heartbeat of its owner within the context's lease."""
    return lease.is_abandoned(job, lease_s=ctx.lease_s)


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
        reap_abandoned(ctx)  # first: a dead job's claims would make its events look captured
    except Exception:  # the capture goes on; the dead job is reaped later
        log.exception("reaping abandoned capture jobs failed")
    try:
        with lease.turns.turn(actor, capture_id):
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
    try:
        capture_jobs.finish_job(
            ctx.store,
            capture_id=capture_id,
            owner=lease.owner(),
            state=capture_jobs.FAILED if errors else capture_jobs.SUCCEEDED,
            event_count=outcome.event_count,
            captured=outcome.captured,
            duplicates=outcome.duplicates,
            errors=errors,
            finished_at=int(time.time()),
            batched=outcome.batched,
        )
    finally:  # not finished (the database away): without heartbeats a reaper reconciles and ends it
        lease.heartbeat.discard(capture_id)


def reap_abandoned(ctx: CaptureContext) -> list[str]:
    """Takes over, reconciles and fails every abandoned job (see the module docstring); their capture ids. One
    reaper at a time in a process; a job another process took over first is left to it."""
    if not _reaping.acquire(blocking=False):
        return []
    try:
        reaped: list[str] = []
        stale_before = lease.now_ms() - int(ctx.lease_s * 1000)
        for job in capture_jobs.abandoned_jobs(ctx.store, stale_before=stale_before):
            if not capture_jobs.take_over(ctx.store, job, owner=lease.reaper(), now=lease.now_ms()):
                continue
            lease.heartbeat.add(ctx.store, job.capture_id)
            try:
                # Not in the account's turn: the job it would wait for may be the one that called this.
                errors = _reconcile(ctx, job)
                if errors is not None:
                    capture_jobs.finish_job(
                        ctx.store,
                        capture_id=job.capture_id,
                        owner=lease.reaper(),
                        state=capture_jobs.FAILED,
                        event_count=job.event_count,
                        captured=epcis_events.recorded_count(ctx.store, job.capture_id),
                        duplicates=job.duplicates,
                        errors=errors,
                        finished_at=int(time.time()),
                    )
                    lease.turns.leave(job.actor, job.capture_id)
                    reaped.append(job.capture_id)
                    log.warning("abandoned capture job failed", capture_id=job.capture_id, owner=job.owner)
            finally:
                lease.heartbeat.discard(job.capture_id)
        return reaped
    finally:
        _reaping.release()


def _settled(ctx: CaptureContext, actor: str) -> bool:
    """Waits (at most ``index_wait_s``) until no transaction of ``actor`` is pending and the index has the
    chain's head: then everything the dead owner sent is mined and indexed, or never will be."""
    deadline = time.monotonic() + ctx.index_wait_s
    account = to_checksum_address(actor)
    eth = ctx.chain.w3.eth
    while eth.get_transaction_count(account, "pending") != eth.get_transaction_count(account, "latest"):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return _wait_for_index(ctx.store, int(eth.block_number), max(0.0, deadline - time.monotonic()))


def _reconcile(ctx: CaptureContext, job: capture_jobs.CaptureJobRow) -> list[dict[str, Any]] | None:
    """The errors of the abandoned ``job`` once its claims match the chain; None if the chain or the index is
    not settled yet (the job is left running, for a later reaper)."""
    why = (
        f"the process running this capture ({job.owner or 'unknown'}) stopped before it finished: it sent no "
        f"heartbeat for {ctx.lease_s:g} s"
    )
    held = epcis_events.held_claims(ctx.store, job.capture_id)
    if not held:
        return [
            EventError(
                None,
                "",
                f"{why}. The events it recorded are in the counts; send the same document again to capture the "
                "rest (what is on-chain is not recorded twice)",
            ).to_json()
        ]
    if not _settled(ctx, job.actor):
        return None
    epcis_events.release_claims(ctx.store, [h.event_key for h in held])
    cid = Cid.from_digest(held[0].document)
    restored: list[Restored] = []
    try:
        raw = ctx.documents.read(cid)
    except LedgerError:
        raw = None  # never stored: nothing of the job was sent (the document is stored before the first send)
    if raw is not None:
        source = parse_json(raw)
        mine = {h.hash_id for h in held}
        events = [e for e in read_document(source) if e.hash_id in mine]
        rows = epcis_events.unaccounted_documents(ctx.store, cid.hex_digest).get(cid.hex_digest, [])
        restored = restore_events(
            ctx.store,
            events=events,
            cid=cid,
            namespaces=json.dumps(namespaces_of(source)),
            rows=rows,
            capture_id=job.capture_id,
        )
    errors: list[dict[str, Any]] = []
    on_chain = {r.event.index: r for r in restored}
    for claim in held:
        partial = on_chain.get(claim.event_index)
        if partial is None:
            message = (
                f"not recorded: {why}. The events not listed here are on-chain; send the same document again to "
                "capture this one"
            )
        elif partial.missing:
            message = (
                f"only part of this event is on-chain: items {', '.join(partial.missing)} are not ({why}); capture "
                "them in a new event"
            )
        else:
            continue
        errors.append(EventError(claim.event_index, event_pointer(claim.event_index), message).to_json())
    return errors or [EventError(None, "", f"{why}; every event it claimed is on-chain").to_json()]


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
    batched = _batchable(ctx, actor, plan)
    added = False
    try:
        if ctx.documents.stat(cid) is None:
            ctx.documents.put([stored], content_type="application/ld+json")
            added = True
        txs, refusals, gas_limit = build_transactions(
            ctx.chain,
            actor=_checksum(actor),
            registrations=plan.registrations,
            steps=[step for step in plan.steps if step.event.hash_id not in batched],
            max_batch=read_max_batch(ctx.chain),
        )
        if refusals:
            raise DocumentRefusedError(_refusal_errors(ctx, refusals))
        if batched:
            outcome.batched = _queue_scans(
                ctx, capture_id=capture_id, actor=actor, plan=plan, claimed=claimed, batched=batched
            )
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


def _batchable(ctx: CaptureContext, actor: str, plan: Plan) -> set[str]:
    """The hash IDs of the planned events that go to the scan batcher (empty unless it is on for ``actor``)."""
    if not ctx.batch_scans or ctx.chain.batch_anchor is None or actor not in ctx.chain.senders:
        return set()
    now_s = int(time.time())
    oldest_s = 0 if ctx.batch_scan_max_age_s is None else now_s - accepted_age_s(ctx.batch_scan_max_age_s)
    return {
        event.hash_id
        for event in plan.events
        if not event.registers
        and event.biz_step in BATCHABLE_STEPS
        and event.disposition in BATCHABLE_DISPOSITIONS
        and event.location is not None
        and 1 <= len(event.location) <= 32
        and event.location.isascii()
        and oldest_s <= event.event_time_ms // 1000 <= now_s
    }


def _queue_scans(
    ctx: CaptureContext, *, capture_id: str, actor: str, plan: Plan, claimed: dict[str, int], batched: set[str]
) -> list[dict[str, Any]]:
    """Queues one scan per item of each batched event, in document order, and marks those events ``batched``, in
    one transaction (a crash leaves both or neither); what the job's ``batched`` says."""
    job = capture_jobs.job(ctx.store, capture_id)
    if job is None:
        raise LedgerError(f"capture job {capture_id} vanished before its scans were queued")
    scans: list[QueuedScan] = []
    named: list[tuple[int, str]] = []
    for step in plan.steps:
        event = step.event
        if event.hash_id not in batched:
            continue
        epc = dict(event.items())[step.item_id]
        assert event.location is not None  # _batchable kept only events with a read point
        scans.append(
            QueuedScan(
                item=epc,
                biz_step=int(event.biz_step),
                disposition=int(event.disposition),
                read_point=event.location,
                time=event.event_time_ms // 1000,
                document="0x" + step.document.hex(),
                biz_transaction="0x" + step.biz_transaction.hex(),
            )
        )
        named.append((event.index, epc))
    receipts = enqueue_scans(
        ctx.store,
        submitter=actor,
        key_id=job.key_id,
        scans=scans,
        max_scans=ctx.batch_max_scans,
        now_ms=int(time.time() * 1000),
        batched_events=[claimed[hash_id] for hash_id in batched],
    )
    by_event: dict[int, list[dict[str, Any]]] = {}
    for (index, epc), receipt in zip(named, receipts, strict=True):
        by_event.setdefault(index, []).append({"epc": epc, "batchId": receipt.batch_id, "position": receipt.position})
    return [{"index": index, "scans": found} for index, found in sorted(by_event.items())]


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
        if capture_jobs.owner_of(ctx.store, capture_id) != lease.owner():
            # Its heartbeat lapsed (a database outage) and another process reconciled the job: sending more
            # could record what that process released.
            failure = LedgerError("another process took this capture over after its heartbeat lapsed")
            break
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
