"""An item's batched scans, checked from the chain and the batch documents alone (``ledger-verify --batch-anchor``).

Every ``BatchAnchored`` log of the BatchAnchor contract in the block range is read, in the chain's order, and
the document of each is fetched by its digest (from a folder, any file whose CID is the anchored one, or from
an IPFS gateway, ``GET <url>/ipfs/<CID>``, or a URL with ``{cid}`` in it) whatever items it names: a scan of
the item can only be excluded from a document one has read, so every anchor's document is needed
(``batch-document-missing`` otherwise), and
the history cannot silently leave a batch out. Each document must hash to its anchored digest
(``batch-document-altered``), be a well-formed batch document whose tree has the anchored root
(``batch-document-invalid``), and be the batch its anchor announced: submitter, count, chain, contract, no scan
dated after the anchor (``batch-document-mismatch``). The item's scans, gathered across documents in anchor
order, must form one chain: seq 0, 1, 2, ... each on the leaf of the one before (``batched-chain-broken``).

Pure but for the node and the documents; imports only the core and the CID code, as the rest of the verifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchDocumentError, BatchedScan
from ledger_service.core.hashchain import ZERO_HASH
from ledger_service.core.keccak import keccak
from ledger_service.documents.cid import Cid, cid_of_bytes, cid_of_file
from ledger_service.independent_verifier._rpc import NodeError, Rpc
from ledger_service.independent_verifier.check import Problem, fetch_logs, log_order

BATCH_ANCHORED = keccak(b"BatchAnchored(bytes32,address,bytes32,uint32,uint64)")
GATEWAY_TIMEOUT_S = 30.0

Fetch = Callable[[Cid], bytes | None]
"""The bytes stored under a CID, or None when the source does not have them."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """One ``BatchAnchored`` log."""

    root: bytes
    submitter: bytes
    digest: bytes
    count: int
    anchored_at: int
    block: int
    log_index: int
    tx: str

    @property
    def name(self) -> str:
        return f"the batch anchored in block {self.block} (log {self.log_index}, tx {self.tx})"


@dataclass(frozen=True, slots=True)
class BatchedFact:
    """One batched scan of the item, with where it was proven."""

    scan: BatchedScan
    leaf: bytes
    leaf_index: int
    anchor: Anchor


@dataclass(slots=True)
class BatchesChecked:
    anchors: int = 0
    documents: int = 0
    scans: list[BatchedFact] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def folder_source(folder: Path) -> Fetch:
    """Documents from a folder (at any depth): the file named by the CID asked for (``<CID>`` or ``<CID>.json``,
    v0 or v1), whatever its bytes, which are checked; else any file whose CID it is."""
    if not folder.is_dir():
        raise ValueError(f"--documents {folder} is not a folder")
    by_name: dict[str, Path] = {}
    by_digest: dict[bytes, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            by_name.setdefault(path.name.removesuffix(".json"), path)
            try:
                by_digest.setdefault(cid_of_file(path).digest, path)
            except OSError:
                continue

    def fetch(cid: Cid) -> bytes | None:
        path = by_name.get(cid.v0) or by_name.get(cid.v1) or by_digest.get(cid.digest)
        return None if path is None else path.read_bytes()

    return fetch


CID_SLOT = "{cid}"
"""In a ``--gateway`` URL, where the CID goes (e.g. a ledger service's ``https://host/v1/documents/{cid}``)."""


def gateway_source(url: str) -> Fetch:
    """Documents from an IPFS gateway (Kubo's or any): ``GET <url>/ipfs/<CIDv0>``, or from any server that
    answers a document by its CID: ``url`` with ``{cid}`` in it is a template (``GET`` it with the CIDv0 in
    place); what it answers is checked."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--gateway must be an http(s) URL of an IPFS gateway (got {url!r})")
    base = url.rstrip("/")

    def address(cid: Cid) -> str:
        return base.replace(CID_SLOT, cid.v0) if CID_SLOT in base else f"{base}/ipfs/{cid.v0}"

    def fetch(cid: Cid) -> bytes | None:
        try:
            response = httpx.get(address(cid), timeout=GATEWAY_TIMEOUT_S, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise NodeError(f"the IPFS gateway {base} did not answer for {cid.v0}: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise NodeError(f"the IPFS gateway {base} answered {response.status_code} for {cid.v0}")
        return response.content

    return fetch


def check_batches(
    rpc: Rpc,
    *,
    batch_anchor: str,
    item: bytes,
    chain_id: int,
    start: int,
    end: int,
    fetch: Fetch,
) -> BatchesChecked:
    """See the module docstring. ``item``: the item id; ``fetch``: where the documents come from."""
    if rpc.call("eth_getCode", [batch_anchor, hex(end)]) in ("0x", "", None):
        raise NodeError(f"there is no contract at {batch_anchor} on this chain (as of block {end})")
    checked = BatchesChecked()
    logs = fetch_logs(rpc, address=batch_anchor, topics=["0x" + BATCH_ANCHORED.hex()], start=start, end=end)
    contract = bytes.fromhex(batch_anchor[2:])
    for raw in sorted(logs, key=log_order):
        anchor = _anchor(raw)
        if anchor is None:
            checked.problems.append(
                Problem("batch-anchor-malformed", f"a BatchAnchored log cannot be read: {raw!r:.200}")
            )
            continue
        checked.anchors += 1
        document = _document(anchor, fetch, checked.problems, chain_id=chain_id, batch_anchor=contract)
        if document is None:
            continue
        checked.documents += 1
        for index, (scan, leaf) in enumerate(zip(document.scans, document.leaves(), strict=True)):
            if scan.item_id == item:
                checked.scans.append(BatchedFact(scan=scan, leaf=leaf, leaf_index=index, anchor=anchor))
    _check_chain(checked)
    return checked


def _anchor(raw: dict[str, Any]) -> Anchor | None:
    try:
        topics = [bytes.fromhex(str(t).removeprefix("0x")) for t in raw["topics"]]
        data = bytes.fromhex(str(raw["data"]).removeprefix("0x"))
        if len(topics) != 4 or len(data) != 64:
            return None
        return Anchor(
            root=topics[1],
            submitter=topics[2][12:],
            digest=topics[3],
            count=int.from_bytes(data[:32], "big"),
            anchored_at=int.from_bytes(data[32:], "big"),
            block=int(raw["blockNumber"], 16),
            log_index=int(raw["logIndex"], 16),
            tx=str(raw["transactionHash"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _document(
    anchor: Anchor, fetch: Fetch, problems: list[Problem], *, chain_id: int, batch_anchor: bytes
) -> batch_document.BatchDocument | None:
    """The anchor's document, checked; None (and the problem noted) when it is missing or not the batch."""
    cid = Cid(anchor.digest)
    data = fetch(cid)
    if data is None:
        problems.append(
            Problem(
                "batch-document-missing",
                f"the document {cid.v0} of {anchor.name} was not found: without it, which scans the batch holds "
                "cannot be checked (give the folder or gateway that has it)",
            )
        )
        return None
    got = cid_of_bytes(data)
    if got.digest != anchor.digest:
        problems.append(
            Problem(
                "batch-document-altered",
                f"the document given for {anchor.name} hashes to {got.v0}, not the anchored {cid.v0}: it was altered "
                "or swapped",
            )
        )
        return None
    try:
        document = batch_document.decode(data)
    except BatchDocumentError as exc:
        problems.append(Problem("batch-document-invalid", f"the document {cid.v0} of {anchor.name} is invalid: {exc}"))
        return None
    wrong = batch_document.check_anchor(
        document,
        root=anchor.root,
        submitter=anchor.submitter,
        count=anchor.count,
        chain_id=chain_id,
        batch_anchor=batch_anchor,
        anchored_at=anchor.anchored_at,
    )
    if wrong:
        problems.append(
            Problem(
                "batch-document-mismatch",
                f"the document {cid.v0} is not the batch of {anchor.name}: " + "; ".join(wrong),
            )
        )
        return None
    return document


def _check_chain(checked: BatchesChecked) -> None:
    previous: BatchedFact | None = None
    for fact in checked.scans:
        scan = fact.scan
        want_seq = 0 if previous is None else previous.scan.seq + 1
        want_prev = ZERO_HASH if previous is None else previous.leaf
        if scan.seq != want_seq or scan.prev_hash != want_prev:
            before = "zero (the first)" if previous is None else f"the leaf of batched scan #{previous.scan.seq}"
            checked.problems.append(
                Problem(
                    "batched-chain-broken",
                    f"batched scan #{scan.seq} (leaf {fact.leaf_index} of {fact.anchor.name}) is not batched scan "
                    f"#{want_seq} on {before}: a batched scan of this item is missing, repeated or out of order",
                    seq=scan.seq,
                )
            )
        previous = fact
