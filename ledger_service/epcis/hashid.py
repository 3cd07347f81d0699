"""The CBV 2.0 event hash ID of EPCIS events, computed by GS1's reference implementation.

PyPI's ``epcis-event-hash-generator`` (GS1 Germany's exemplary implementation of the algorithm of CBV 2.0
section 8.9) is used as it is: JSON-LD expansion of the document, the canonical pre-hash string of each
event, then ``ni:///sha-256;<hex>?ver=CBV2.0``. Two wrappings it needs in a service:

- the library keeps module-global state (the namespaces of the last document, the join string), so calls
  are serialized by one lock;
- its JSON-LD document loader falls back to fetching unknown ``@context`` URLs from the web. Ours serves
  the EPCIS 2.0 contexts the library ships and refuses any other URL (:class:`UnknownContextError`): a
  capture never waits on, or leaks a request to, a host named in a partner's document.

It costs about half a millisecond an event (a JSON-LD expansion), the largest share of reading a capture
document, and it holds the GIL: a document of at least :data:`POOL_MIN_EVENTS` events is split into one
part per core, each hashed in a worker process (the same library, the same context rule) with the same
document's ``@context``. An event's hash ID depends only on the event and that context, so the parts'
answers, in order, are the whole document's (a test compares both).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from epcis_event_hash_generator import hash_generator, json_to_py  # type: ignore[import-untyped]
from pyld import jsonld  # type: ignore[import-untyped]

__all__ = ["POOL_MIN_EVENTS", "UnknownContextError", "hash_ids"]

_CONTEXT_FILES = {
    "https://gs1.github.io/EPCIS/epcis-context.jsonld": (
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861.jsonld"
    ),
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld": (
        "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld"
    ),
    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld": (
        "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld"
    ),
}
KNOWN_CONTEXTS = tuple(_CONTEXT_FILES)
_lock = threading.Lock()
_contexts: dict[str, Any] = {}
POOL_MIN_EVENTS = 200
"""Documents with fewer events are hashed in the calling process (a worker's round trip is not worth it)."""
_pool: ProcessPoolExecutor | None = None
_pool_guard = threading.Lock()


def _quiet(record: logging.LogRecord) -> bool:
    """Drops the library's INFO and DEBUG lines: it logs every event it hashes, through the root logger."""
    return record.levelno >= logging.WARNING or "epcis_event_hash_generator" not in record.pathname


logging.getLogger().addFilter(_quiet)


class UnknownContextError(ValueError):
    """A document's ``@context`` names a URL that is not an EPCIS 2.0 context (we fetch nothing)."""

    def __init__(self, url: str) -> None:
        super().__init__(
            f"the @context {url!r} is not one this service knows; use the EPCIS 2.0 context "
            f"({KNOWN_CONTEXTS[1]}) and declare your own namespaces inline as prefix: URI pairs"
        )
        self.url = url


def _context(url: str) -> Any:
    if url not in _contexts:
        name = _CONTEXT_FILES[url]
        text = importlib.resources.files("epcis_event_hash_generator").joinpath(name).read_text(encoding="utf-8")
        _contexts[url] = json.loads(text)
    return _contexts[url]


def _loader(url: str, options: Any = None) -> dict[str, Any]:
    if url not in _CONTEXT_FILES:
        raise jsonld.JsonLdError(
            "unknown context", "jsonld.LoadDocumentError", code="loading remote context failed", cause=url
        )
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url, "document": _context(url)}


def _unknown_context(document: dict[str, Any]) -> str | None:
    contexts = document.get("@context")
    for entry in contexts if isinstance(contexts, list) else [contexts]:
        if isinstance(entry, str) and entry not in _CONTEXT_FILES:
            return entry
    return None


def hash_ids(document: dict[str, Any], count: int) -> Sequence[str | None]:
    """The hash ID of each of the ``count`` events of ``document`` (already schema-valid), in order; None for an
    event the reference implementation could not read. :class:`UnknownContextError` for a remote context."""
    unknown = _unknown_context(document)
    if unknown is not None:
        raise UnknownContextError(unknown)
    body = document.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    workers = os.cpu_count() or 1
    small = not isinstance(events, list) or len(events) != count or count < POOL_MIN_EVENTS
    if small or workers < 2 or not isinstance(body, dict) or not isinstance(events, list):
        return _hash_ids_here(document, count)
    size = -(-count // workers)
    parts = [
        ({**document, "epcisBody": {**body, "eventList": events[i : i + size]}}, len(events[i : i + size]))
        for i in range(0, count, size)
    ]
    found: list[str | None] = []
    try:
        for answer in _workers().map(_hash_part, parts):
            found.extend(answer)
    except BrokenProcessPool:  # a worker could not start or died: this document is hashed here, a new pool next
        _discard_pool()
        return _hash_ids_here(document, count)
    return found


def _workers() -> ProcessPoolExecutor:
    """The process pool, started at the first large document (spawned: the caller has threads)."""
    global _pool
    with _pool_guard:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=os.cpu_count(),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_follow_parent,
                initargs=(os.getpid(),),
            )
        return _pool


def _discard_pool() -> None:
    global _pool
    with _pool_guard:
        broken, _pool = _pool, None
    if broken is not None:
        broken.shutdown(wait=False, cancel_futures=True)


def _follow_parent(parent: int) -> None:
    """In a worker: exits once the process that started it is gone (a worker of a killed API process would
    otherwise stay, orphaned, holding its memory)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _hash_part(part: tuple[dict[str, Any], int]) -> list[str | None]:
    """A worker's task: the hash IDs of one part of a document."""
    document, count = part
    return list(_hash_ids_here(document, count))


def _hash_ids_here(document: dict[str, Any], count: int) -> Sequence[str | None]:
    with _lock:
        previous = jsonld.get_document_loader()
        jsonld.set_document_loader(_loader)
        try:
            json_to_py._namespaces.clear()  # the library keeps the last document's namespaces otherwise
            events = json_to_py.event_list_from_epcis_document_json(copy.deepcopy(document))
            found: list[str | None] = []
            for event in events[2][:count]:
                prehash = hash_generator.derive_prehashes_from_events(("EventList", "", [event]))
                found.append(hash_generator.calculate_hashes_from_pre_hashes(prehash)[0] if prehash else None)
        finally:
            jsonld.set_document_loader(previous)
    return found + [None] * (count - len(found))
