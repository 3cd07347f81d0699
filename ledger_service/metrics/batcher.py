"""Metrics of ``ledger-batcher`` (ledger_service/batcher/): imported by the batcher only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ledger_service.metrics import CHAIN_BUCKETS

BATCHES_SEALED = Counter("ledger_batcher_batches_sealed_total", "Scan batches sealed (numbered, rooted, stored)")
BATCHES_ANCHORED = Counter(
    "ledger_batcher_batches_anchored_total",
    "Scan batches whose anchor was mined, or found on-chain after a restart or a reorg",
)
BATCHES_REORGED = Counter(
    "ledger_batcher_batches_reorged_total", "Anchored scan batches a reorg dropped, sent to be anchored again"
)
ANCHOR_FAILURES = Counter(
    "ledger_batcher_anchor_failures_total",
    "Anchor sends that failed (refused by the contract, or the node failed), retried next turn",
)
ANCHOR_LATENCY = Histogram(
    "ledger_batcher_anchor_latency_seconds",
    "Seconds from a batch's first scan acknowledged to its anchor mined",
    buckets=CHAIN_BUCKETS,
)
STUCK_BATCHES = Gauge(
    "ledger_batcher_stuck_batches",
    "Sealed scan batches the last turn could not anchor because an anchor send failed: the failing batch and "
    "those queued behind it (0 when the turn anchored every sealed batch)",
)
TRANSIT_PROOFS = Counter(
    "ledger_batcher_transit_proofs_total",
    "Proofs of a return's first carrier scan sent from a final batch (markInTransitByProof), by outcome: "
    "accepted, resent (a reorg dropped the accepted one), or refused by the escrow (not retried)",
    ["outcome"],
)
LAST_TURN = Gauge("ledger_batcher_last_turn_timestamp_seconds", "Unix time of the batcher's last completed turn")
BATCHES_FAILED = Counter(
    "ledger_batcher_batches_failed_total",
    "Scan batches given up on: the contract refused their anchor for good, their scans are not anchored",
)
