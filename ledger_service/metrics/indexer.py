"""Metrics of ``ledger-indexer`` (ledger_service/indexer/): imported by the indexer only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ---- the indexer -------------------------------------------------------------------------------------

INDEXER_HEAD = Gauge("ledger_indexer_head_block", "The node's head block as last read by the indexer")
INDEXER_CHECKPOINT = Gauge("ledger_indexer_checkpoint_block", "The last block the index holds")
INDEXER_LAG_BLOCKS = Gauge("ledger_indexer_lag_blocks", "Blocks the index is behind the node's head")
INDEXER_LAG_SECONDS = Gauge(
    "ledger_indexer_lag_seconds", "Seconds between the head block's timestamp and the checkpoint block's"
)
INDEXER_EVENTS = Counter(
    "ledger_indexer_events_total", "Contract events written to the index, by event type", ("type",)
)
INDEXER_RPC_ERRORS = Counter(
    "ledger_indexer_rpc_errors_total",
    "JSON-RPC calls that failed, by kind (timeout, unreachable, http, rate_limited, rpc, range_too_large)",
    ("kind",),
)
INDEXER_RPC_RETRIES = Counter(
    "ledger_indexer_rpc_retries_total", "JSON-RPC calls tried again after a failure, by kind", ("kind",)
)
INDEXER_REORGS = Counter("ledger_indexer_reorgs_total", "Reorgs the index was rolled back for")
INDEXER_REORG_DEPTH = Histogram(
    "ledger_indexer_reorg_depth_blocks", "Blocks rolled back per reorg", buckets=(1, 2, 3, 5, 8, 12, 20, 50, 100)
)
INDEXER_CHAIN_PROBLEMS = Counter(
    "ledger_indexer_chain_problems_total",
    "Problems found in the chain's data: hash-chain breaks recorded (chain_break_recorded) and incomplete node "
    "answers by kind (bloom, reconcile, chain_break, receipts, ...)",
    ("kind",),
)
INDEXER_BATCHES = Counter(
    "ledger_indexer_batches_total",
    "Anchored scan batches the indexer settled, by outcome: applied, refused (a rule broken or a bad document) "
    "or given_up (its document not available within LEDGER_BATCH_DOCUMENT_WAIT_S of its anchor)",
    ("outcome",),
)
INDEXER_LAST_PASS = Gauge(
    "ledger_indexer_last_progress_timestamp_seconds", "Unix time of the indexer's last successful pass"
)
