"""``ledger-capture``: bulk loads of EPCIS 2.0 documents through the API's capture interface.

    LEDGER_API_KEY=rlk_... ledger-capture supply-chain-1.jsonld supply-chain-2.jsonld [--api-url URL]
    ledger-capture --rebuild-index     # the index's EPCIS rows again, from the chain's events and the documents

Each file goes through ``POST /v1/epcis/capture`` (the same code path as any partner's system: validation,
hash IDs, the dry run, the job), one after another, with a progress bar of its events as the job records
them. A refused document prints every refused event (index, JSON pointer, sentence); the next file is still
sent. ``--rebuild-index`` works on LEDGER_DATABASE_URL and the document store directly
(:mod:`ledger_service.capture.rebuild`), after the indexer has the chain. Exit status: 0 every document
captured (or already captured), 1 one or more refused or failed, 2 a command-line mistake or no API key, 3
the API (or, for a rebuild, the database) unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from ledger_service.settings import Settings

PROG = "ledger-capture"
EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3
POLL_S = 0.2


class UnavailableError(Exception):
    """The API could not be reached (or answered 5xx)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Capture EPCIS 2.0 documents through the ledger's API.")
    parser.add_argument("files", nargs="*", type=Path, help="EPCIS documents (JSON-LD)")
    parser.add_argument(
        "--rebuild-index",
        action="store_true",
        help="restore the index's EPCIS rows from the chain's item events and the document store, then exit",
    )
    parser.add_argument(
        "--api-url", help="the API's address (default: http://LEDGER_API_HOST:LEDGER_API_PORT)", default=None
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest wait for one capture, in seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    return parser


def _event_count(raw: bytes) -> int | None:
    try:
        document = json.loads(raw)
        return len(document["epcisBody"]["eventList"])
    except (ValueError, KeyError, TypeError):
        return None


def _errors(out: Any, errors: Sequence[dict[str, Any]]) -> None:
    for error in errors:
        pointer = error.get("pointer")
        if pointer is None:  # a problem's loc: ["body", token, ...]
            pointer = "".join(f"/{p}" for p in error.get("loc", [])[1:])
        where = pointer or "(the document)"
        print(f"  {where}: {error.get('message') or error.get('msg')}", file=out)


def _request(client: httpx.Client, method: str, url: str, **options: Any) -> httpx.Response:
    try:
        response = client.request(method, url, **options)
    except httpx.HTTPError as exc:
        raise UnavailableError(f"the API at {client.base_url} did not answer ({type(exc).__name__})") from None
    if response.status_code >= 500:
        raise UnavailableError(f"the API answered {response.status_code}: {_detail(response)}")
    return response


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.reason_phrase))
    except ValueError:
        return response.reason_phrase


def capture_file(client: httpx.Client, path: Path, *, timeout: float, progress: bool) -> bool:
    """Captures one file; whether it was captured (or already was)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"{path}: cannot read it ({exc.strerror})", file=sys.stderr)
        return False
    answer = _request(client, "POST", "/v1/epcis/capture", content=raw, headers={"Content-Type": "application/ld+json"})
    if answer.status_code != 202:
        body = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
        print(f"{path}: refused ({answer.status_code}): {_detail(answer)}", file=sys.stderr)
        _errors(sys.stderr, body.get("errors") or [])
        return False
    location = answer.headers["location"]
    total = _event_count(raw)
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=total, unit="event", desc=path.name, disable=not progress, file=sys.stderr)
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = answer.json()
    try:
        while job["state"] == "running":
            if time.monotonic() > deadline:
                print(f"{path}: still running after {timeout:.0f} s; its job is {location}", file=sys.stderr)
                return False
            time.sleep(POLL_S)
            job = _request(client, "GET", location).json()
            bar.n = job["captured"] + job["duplicates"] + len(job.get("batched", []))
            bar.refresh()
        bar.n = job["captured"] + job["duplicates"] + len(job.get("batched", []))
        bar.refresh()
    finally:
        bar.close()
    if job["state"] != "succeeded":
        print(f"{path}: not captured ({location}):", file=sys.stderr)
        _errors(sys.stderr, job["errors"])
        return False
    batched = len(job.get("batched", []))
    sent = f", {batched} sent to the scan batcher" if batched else ""
    print(f"{path}: {job['captured']} events recorded{sent}, {job['duplicates']} already captured ({location})")
    return True


def _rebuild(settings: Settings) -> int:
    from ledger_service.capture.rebuild import rebuild
    from ledger_service.documents.factory import open_document_store
    from ledger_service.errors import RetryableError
    from ledger_service.store.handle import Store

    try:
        with Store.open(settings.database_url) as store:
            report = rebuild(store=store, documents=open_document_store(settings))
    except RetryableError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(
        f"restored {report.events} EPCIS events from {report.documents} captured documents; "
        f"{report.missing} documents missing from the store, {report.not_epcis} other documents left alone"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.files) == args.rebuild_index:
        parser.error("give EPCIS files to capture, or --rebuild-index alone")
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"{PROG}: configuration error: {exc.errors()[0]['msg']}", file=sys.stderr)
        return EXIT_USAGE
    if args.rebuild_index:
        return _rebuild(settings)
    if settings.api_key is None:
        print(f"{PROG}: set LEDGER_API_KEY to the API key of the account that records the events", file=sys.stderr)
        return EXIT_USAGE
    base = args.api_url or f"http://{settings.api_host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"}
    failed = 0
    with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
        for path in args.files:
            try:
                failed += 0 if capture_file(client, path, timeout=args.timeout, progress=not args.no_progress) else 1
            except UnavailableError as exc:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return EXIT_UNAVAILABLE
    return EXIT_FAILED if failed else 0


def run() -> None:
    sys.exit(main())
