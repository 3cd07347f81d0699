"""The API's request metrics (api/observability.py); imported only by the API, so that no other process
exposes them (in multiprocess mode a metric's file exists from its definition on)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ledger_service.metrics import LATENCY_BUCKETS

# ---- the API ---------------------------------------------------------------------------------------

HTTP_REQUEST_SECONDS = Histogram(
    "ledger_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template, method and status",
    ("route", "method", "status"),
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge("ledger_http_requests_in_flight", "Requests being answered", multiprocess_mode="livesum")
SCANS_QUEUED = Counter(
    "ledger_scans_queued_total", "Scans acknowledged by POST /v1/scans and queued for ledger-batcher (not replays)"
)
