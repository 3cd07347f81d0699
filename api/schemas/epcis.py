"""EPCIS 2.0: capture jobs (the REST binding's capture interface) and the query answer's envelope.

The captured document and the query answer are EPCIS JSON-LD (GS1's schema, not ours): they are read and
written by :mod:`ledger_service.epcis`; these models describe only what the API adds around them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class CaptureState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CaptureErrorPublic(BaseModel):
    """One refused (or, after a failure, unrecorded) event of a captured document."""

    index: int | None = Field(description="the event's position in epcisBody.eventList; null: the document itself")
    pointer: str = Field(
        description="JSON pointer (RFC 6901) to the value in the document as sent",
        examples=["/epcisBody/eventList/3/bizStep"],
    )
    message: str = Field(description="what is wrong, in a sentence a person can act on")


class CaptureBatchedScanPublic(BaseModel):
    """One item's scan of a batched event: the batch it will be anchored in and its place there."""

    epc: str
    batch_id: int = Field(alias="batchId", description="GET /v1/scans/batches/{batchId} (the capturing key)")
    position: int = Field(description="its leaf index in the batch document")

    model_config = {"populate_by_name": True}


class CaptureBatchedPublic(BaseModel):
    """An event sent to the scan batcher instead of a transaction (LEDGER_EPCIS_CAPTURE_BATCH_SCANS)."""

    index: int = Field(description="the event's position in the document's eventList")
    scans: list[CaptureBatchedScanPublic]


class CaptureJobPublic(BaseModel):
    """The state of one capture (``GET /v1/epcis/capture/{captureID}``)."""

    capture_id: str = Field(alias="captureID", description="the job's id (cap_ + 32 hex digits)")
    state: CaptureState = Field(
        description="running, succeeded (every event is on-chain, or was captured before) or failed (see errors)"
    )
    event_count: int = Field(alias="eventCount", description="events in the document")
    captured: int = Field(description="events this job recorded on-chain")
    duplicates: int = Field(
        description="events not recorded again because their CBV event hash ID was captured before (or by a "
        "capture of the same event running at the same time)"
    )
    errors: list[CaptureErrorPublic] = Field(
        description="refused events (nothing was recorded), or after sending began, every event that is not "
        "on-chain: re-submitting the same document captures exactly those"
    )
    batched: list[CaptureBatchedPublic] = Field(
        default_factory=list,
        description="events sent to the scan batcher, not counted in captured: each item's batch and place "
        "(empty unless LEDGER_EPCIS_CAPTURE_BATCH_SCANS is on)",
    )
    created_at: datetime = Field(alias="createdAt")
    finished_at: datetime | None = Field(alias="finishedAt", description="null while running")
    events_url: str = Field(
        alias="eventsUrl", description="a query for the events this job recorded (GET, with the same credentials)"
    )

    model_config = {"populate_by_name": True}
