"""Metrics of the transactions the service sends (ledger_service/chain/sender.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ledger_service.metrics import CHAIN_BUCKETS

# ---- transactions (ledger_service/chain/sender.py) -----------------------------------------------------

TX_SEND_SECONDS = Histogram(
    "ledger_tx_send_duration_seconds",
    "Time to prepare, sign and submit one transaction (nonce, gas estimate, eth_sendRawTransaction)",
    buckets=CHAIN_BUCKETS,
)
TX_CONFIRM_SECONDS = Histogram(
    "ledger_tx_confirm_duration_seconds",
    "Time from a transaction's submission to its receipt",
    buckets=CHAIN_BUCKETS,
)
TX_TOTAL = Counter(
    "ledger_tx_total",
    "Transactions by outcome: mined (status 1), reverted (status 0), refused (before sending), "
    "unconfirmed (no receipt in time), failed (the node refused it or was unreachable)",
    ("outcome",),
)
TX_PENDING = Gauge(
    "ledger_tx_pending", "Transactions submitted whose receipt is still awaited", multiprocess_mode="livesum"
)
TX_NONCE_GAPS = Counter(
    "ledger_tx_nonce_gaps_total",
    "Times the node's pending nonce of a signer differed from the one the sender expected (resynchronised)",
)
TX_REPLACED = Counter(
    "ledger_tx_replaced_total",
    "Transactions sent again for their nonce, by reason: stuck (no receipt after the network's stuck_after_s: "
    "replaced with bumped fees) or dropped (the node forgot it: sent again)",
    ("reason",),
)
TX_STUCK = Gauge(
    "ledger_tx_stuck",
    "Transactions awaited past the network's stuck_after_s without a receipt",
    multiprocess_mode="livesum",
)
