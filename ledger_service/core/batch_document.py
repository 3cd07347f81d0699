"""Scan batch documents: the canonical, versioned file behind one ``BatchAnchored`` root (docs/batching.md).

A batch document lists observation scans recorded by one submitter; the chain holds only its Merkle
root, event count and sha2-256 digest (contracts/BatchAnchor.sol). The document is JSON in one
canonical byte form, so that one content has one digest:

- UTF-8, object keys sorted, no whitespace (``json.dumps(sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)``); only objects, arrays, strings and integers in ``[0, 2**53)``;
- hashes and addresses as ``0x`` + lowercase hex; bizStep and disposition as their CBV names; the
  read point as its SGLN ``company.location.extension`` text; ``time`` in Unix seconds.

:func:`decode` accepts exactly the bytes :func:`encode` writes: anything else (another key order,
whitespace, a missing or extra field, a float, a wrong root) is refused with the reason, so a
document that decodes is canonical, complete and consistent with its own root.

Each scan's Merkle leaf is OpenZeppelin's StandardMerkleTree leaf of the tuple
``(itemId, seq, prevHash, bizStep, disposition, location, document, bizTransaction, time,
submitter)`` typed :data:`LEAF_ENCODING` (contracts/interfaces/IBatchAnchor.sol's ``ScanLeaf``), and
that leaf hash is also the scan's hash in its item's chain of batched scans: scan ``seq`` carries
the hash of the item's scan ``seq - 1`` as ``prevHash`` (zero for seq 0), across batches.

Invariants of a decoded document: 1..:data:`MAX_EVENTS` scans, every one of a batchable step
(:data:`BATCHABLE_STEPS`) with a batchable disposition (:data:`BATCHABLE_DISPOSITIONS`); an item's
scans inside one document have consecutive seqs in document order, each linked to the one before;
``root`` is the StandardMerkleTree root of the leaves. Whether the first scan of each item links to
the item's chain so far is :func:`check_continuity`'s question, which needs the index. Pure, no I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _string  # json.dumps' own, ensure_ascii=False
from typing import Any

from ledger_service.core.codes import BizStep, Disposition, encode_location, step_refusal
from ledger_service.core.hashchain import item_id as uri_item_id
from ledger_service.core.keccak import keccak_256
from ledger_service.core.merkle import StandardTree

FORMAT = "returns-ledger/scan-batch"
VERSION = 1
MAX_EVENTS = 65_536
"""Most scans in one document: BatchAnchor's MAX_BATCH_EVENTS (a test compares them)."""
MAX_URI_BYTES = 256
"""Longest item URI, in UTF-8 bytes: ProvenanceLedger's MAX_URI_LENGTH."""
MAX_JSON_INT = 2**53
"""Integers stay below this, so every JSON reader (JavaScript's too) reads them exactly."""

LEAF_ENCODING: tuple[str, ...] = (
    "bytes32",  # itemId
    "uint64",  # seq
    "bytes32",  # prevHash
    "uint8",  # bizStep
    "uint8",  # disposition
    "bytes32",  # location
    "bytes32",  # document
    "bytes32",  # bizTransaction
    "uint64",  # time
    "address",  # submitter
)
"""The ABI types of a scan's leaf values, in order (``ScanLeaf`` in IBatchAnchor.sol)."""

BATCHABLE_STEPS: frozenset[BizStep] = frozenset(
    {
        BizStep.PACKING,
        BizStep.SHIPPING,
        BizStep.RECEIVING,
        BizStep.DEPARTING,
        BizStep.ARRIVING,
        BizStep.TRANSPORTING,
        BizStep.STOCKING,
    }
)
"""Observation steps: where an item was seen, not a change of its ownership, condition or existence.
Commissioning and retail_selling (registration and sales), inspecting, repairing, destroying,
decommissioning and holding (recalls) stay individual on-chain events."""

BATCHABLE_DISPOSITIONS: frozenset[Disposition] = frozenset(
    {
        Disposition.IN_PROGRESS,
        Disposition.IN_TRANSIT,
        Disposition.SELLABLE_ACCESSIBLE,
        Disposition.SELLABLE_NOT_ACCESSIBLE,
    }
)
"""Dispositions a batched scan may carry. Left out, because money or ownership hangs on them:
retail_sold (a sale or a delivery), returned (a return's scans, which pay refunds), damaged,
conformant and non_conformant (inspection), recalled, destroyed, inactive, and active (commissioning)."""

ZERO32 = b"\0" * 32
_TOP_KEYS = frozenset({"format", "version", "chainId", "batchAnchor", "submitter", "root", "events"})
_EVENT_KEYS = frozenset(
    {"item", "seq", "prevHash", "bizStep", "disposition", "readPoint", "time", "document", "bizTransaction"}
)
_STEPS_BY_NAME = {step.cbv: step for step in BizStep}
_DISPOSITIONS_BY_NAME = {disposition.cbv: disposition for disposition in Disposition}


class BatchDocumentError(ValueError):
    """A batch document that is malformed, not canonical, inconsistent, or breaks an item's chain of scans."""


@dataclass(frozen=True, slots=True)
class BatchedScan:
    """One scan of a batch, as the document lists it."""

    item: str
    """The item's GS1 URI (its id is keccak256 of it)."""
    seq: int
    prev_hash: bytes
    biz_step: BizStep
    disposition: Disposition
    read_point: str
    """SGLN ``company.location.extension``, at most 32 ASCII characters."""
    time: int
    document: bytes = ZERO32
    biz_transaction: bytes = ZERO32

    @property
    def item_id(self) -> bytes:
        return uri_item_id(self.item)

    def leaf_values(self, submitter: bytes) -> tuple[bytes | int, ...]:
        """The leaf's values in :data:`LEAF_ENCODING` order; ``submitter`` as 20 bytes."""
        return (
            self.item_id,
            self.seq,
            self.prev_hash,
            int(self.biz_step),
            int(self.disposition),
            encode_location(self.read_point),
            self.document,
            self.biz_transaction,
            self.time,
            submitter,
        )

    def leaf_hash(self, submitter: bytes) -> bytes:
        """The scan's Merkle leaf, also its hash in the item's chain of batched scans."""
        return _leaf(self, self.item_id, submitter)


def _leaf(scan: BatchedScan, item_id: bytes, submitter: bytes) -> bytes:
    """``scan``'s leaf hash, its item's id (keccak256 of its URI) given: a batch scans each item several times.

    The same as ``merkle.leaf_hash(merkle.abi_encode_static(LEAF_ENCODING, leaf_values))``, built word by word
    because the batcher and the indexer hash every scan.
    """
    encoded = b"".join(
        (
            item_id,
            scan.seq.to_bytes(32, "big"),
            scan.prev_hash,
            _STEP_WORDS[scan.biz_step],
            _DISPOSITION_WORDS[scan.disposition],
            _location_word(scan.read_point),
            scan.document,
            scan.biz_transaction,
            scan.time.to_bytes(32, "big"),
            bytes(12),
            submitter,
        )
    )
    return keccak_256(keccak_256(encoded).digest()).digest()


_STEP_WORDS = {step: int(step).to_bytes(32, "big") for step in BizStep}
_DISPOSITION_WORDS = {disposition: int(disposition).to_bytes(32, "big") for disposition in Disposition}
_location_word = functools.lru_cache(maxsize=4096)(encode_location)
"""``encode_location``, remembered: a batch's scans are read at a few places."""


@dataclass(frozen=True, slots=True)
class BatchDocument:
    """A sealed batch: its scans, who submits it, to which anchor contract, and their Merkle root."""

    chain_id: int
    batch_anchor: bytes
    """The BatchAnchor contract's address, 20 bytes."""
    submitter: bytes
    """The submitting account's address, 20 bytes: the leaves' ``submitter``."""
    scans: tuple[BatchedScan, ...]
    root: bytes
    leaf_hashes: tuple[bytes, ...] = field(compare=False, repr=False)
    """The scans' leaves, in document order: computed once, by :func:`seal` or :func:`decode` (which build every
    document), as they check the scans' chains; the root is their tree's."""

    def leaves(self) -> list[bytes]:
        """The scans' leaf hashes, in document order."""
        return list(self.leaf_hashes)

    def tree(self) -> StandardTree:
        """The StandardMerkleTree of the leaves (value ``i`` is scan ``i``)."""
        return StandardTree.of(self.leaves())


def seal(*, chain_id: int, batch_anchor: bytes, submitter: bytes, scans: Sequence[BatchedScan]) -> BatchDocument:
    """The document of these scans, its root computed. Raises :class:`BatchDocumentError` as :func:`decode` would."""
    return _sealed(chain_id, batch_anchor, submitter, tuple(scans), None)


def _sealed(
    chain_id: int, batch_anchor: bytes, submitter: bytes, scans: tuple[BatchedScan, ...], leaves: list[bytes] | None
) -> BatchDocument:
    """:func:`seal`, with the scans' leaves when :class:`BatchBuilder` has them from numbering the scans."""
    unsealed = BatchDocument(chain_id, batch_anchor, submitter, scans, ZERO32, ())
    checked = _check(unsealed, leaves)
    return BatchDocument(chain_id, batch_anchor, submitter, scans, StandardTree.of(checked).root, tuple(checked))


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _scan_json(scan: BatchedScan) -> str:
    """The scan's canonical JSON object: its keys in sorted order, as ``json.dumps(sort_keys=True)`` writes them."""
    return (
        f'{{"bizStep":{_string(scan.biz_step.cbv)},"bizTransaction":"0x{scan.biz_transaction.hex()}",'
        f'"disposition":{_string(scan.disposition.cbv)},"document":"0x{scan.document.hex()}",'
        f'"item":{_string(scan.item)},"prevHash":"0x{scan.prev_hash.hex()}",'
        f'"readPoint":{_string(scan.read_point)},"seq":{scan.seq},"time":{scan.time}}}'
    )


def encode(document: BatchDocument) -> bytes:
    """The document's canonical bytes (the ones whose sha2-256 CID digest is anchored).

    Exactly ``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` of the document's
    JSON object (a test compares them), written field by field: the batcher encodes every document it seals, and
    :func:`decode` re-encodes each one it reads through the JSON reader to prove its bytes canonical.
    """
    events = ",".join([_scan_json(scan) for scan in document.scans])
    return (
        f'{{"batchAnchor":"0x{document.batch_anchor.hex()}","chainId":{document.chain_id},'
        f'"events":[{events}],"format":{_string(FORMAT)},"root":"0x{document.root.hex()}",'
        f'"submitter":"0x{document.submitter.hex()}","version":{VERSION}}}'
    ).encode()


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # one object per scan: the common case without a Python loop
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BatchDocumentError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _refuse_number(text: str) -> Any:
    raise BatchDocumentError(f"{text} is not an integer: batch documents hold integers only")


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_JSON_INT:
        raise BatchDocumentError(f"{where} must be an integer in [0, 2**53), got {value!r}")
    return value


_LOWER_HEX = {20: re.compile("0x[0-9a-f]{40}"), 32: re.compile("0x[0-9a-f]{64}")}


def _bytes(value: object, size: int, where: str) -> bytes:
    if isinstance(value, str) and _LOWER_HEX[size].fullmatch(value):  # the common case: one match, no copies
        return bytes.fromhex(value[2:])
    if not isinstance(value, str) or len(value) != 2 + 2 * size or not value.startswith("0x"):
        raise BatchDocumentError(f"{where} must be 0x and {2 * size} lowercase hex digits, got {value!r}")
    digits = value[2:]
    if digits != digits.lower():
        raise BatchDocumentError(f"{where} must be lowercase hex, got {value!r}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise BatchDocumentError(f"{where} must be 0x and {2 * size} lowercase hex digits, got {value!r}") from None


def _name(value: object, table: Mapping[str, Any], where: str) -> Any:
    if not isinstance(value, str) or value not in table:
        raise BatchDocumentError(f"{where} must be a CBV name ({', '.join(sorted(table))}), got {value!r}")
    return table[value]


def _scan(raw: object, index: int) -> BatchedScan:
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        raise BatchDocumentError(f"{where} must be an object")
    if raw.keys() != _EVENT_KEYS:
        missing, extra = sorted(_EVENT_KEYS - set(raw)), sorted(set(raw) - _EVENT_KEYS)
        raise BatchDocumentError(f"{where} has missing fields {missing} and unknown fields {extra}")
    item, read_point = raw["item"], raw["readPoint"]
    if not isinstance(item, str):
        raise BatchDocumentError(f"{where}.item must be the item's GS1 URI (a string)")
    if not isinstance(read_point, str):
        raise BatchDocumentError(f"{where}.readPoint must be an SGLN company.location.extension (a string)")
    return BatchedScan(
        item=item,
        seq=_int(raw["seq"], f"{where}.seq"),
        prev_hash=_bytes(raw["prevHash"], 32, f"{where}.prevHash"),
        biz_step=_name(raw["bizStep"], _STEPS_BY_NAME, f"{where}.bizStep"),
        disposition=_name(raw["disposition"], _DISPOSITIONS_BY_NAME, f"{where}.disposition"),
        read_point=read_point,
        time=_int(raw["time"], f"{where}.time"),
        document=_bytes(raw["document"], 32, f"{where}.document"),
        biz_transaction=_bytes(raw["bizTransaction"], 32, f"{where}.bizTransaction"),
    )


_JSON_TEXT = r'"[^"\\\x00-\x1f]*"'
"""A JSON string that ``json.dumps`` writes as it is (``ensure_ascii=False``): nothing in it escaped, no quote."""
_JSON_UINT = "(?:0|[1-9][0-9]{0,15})"
"""An integer as ``json.dumps`` writes one below 2**53: no sign, no leading zero, at most 16 digits."""
_CANONICAL_EVENT = (
    f'{{"bizStep":{_JSON_TEXT},"bizTransaction":"0x[0-9a-f]{{64}}","disposition":{_JSON_TEXT},'
    f'"document":"0x[0-9a-f]{{64}}","item":{_JSON_TEXT},"prevHash":"0x[0-9a-f]{{64}}",'
    f'"readPoint":{_JSON_TEXT},"seq":{_JSON_UINT},"time":{_JSON_UINT}}}'
)
_CANONICAL_EVENTS = re.compile(f"{_CANONICAL_EVENT}(?:,{_CANONICAL_EVENT})*")
_CANONICAL_DOCUMENT = re.compile(
    f'{{"batchAnchor":"0x([0-9a-f]{{40}})","chainId":({_JSON_UINT}),"events":\\[(.*)\\],'
    f'"format":"{re.escape(FORMAT)}","root":"0x([0-9a-f]{{64}})","submitter":"0x([0-9a-f]{{40}})",'
    f'"version":{VERSION}}}',
    re.DOTALL,
)
_EVENT_QUOTES = 32
"""Quotes in one event as :data:`_CANONICAL_EVENT` has it (keys and string values, none inside a string)."""


def _canonical_document(text: str) -> BatchDocument | None:
    """The document in ``text`` if ``text`` is in the canonical form with no escaped string (what :func:`encode`
    writes for such a document, so nothing is encoded again to prove it), its leaves and root not yet checked;
    None for anything else, left to the JSON reader (which reads escaped strings and refuses the rest, saying why)."""
    whole = _CANONICAL_DOCUMENT.fullmatch(text)
    if whole is None:
        return None
    anchor, chain_id, events, root, submitter = whole.groups()
    if _CANONICAL_EVENTS.fullmatch(events) is None:
        return None
    # Matched, no string holds a quote: so every quote is one of each event's 32, and the values sit at fixed
    # places between them (the 4th piece is the first event's bizStep, ':12,' its seq, ':1765000000},{' its time)
    pieces = events.split('"')
    q = _EVENT_QUOTES
    steps, dispositions, fromhex = _STEPS_BY_NAME, _DISPOSITIONS_BY_NAME, bytes.fromhex
    scans = []
    for step, transaction, disposition, hashed, item, prev, read_point, seq, time in zip(
        pieces[3::q],
        pieces[7::q],
        pieces[11::q],
        pieces[15::q],
        pieces[19::q],
        pieces[23::q],
        pieces[27::q],
        pieces[30::q],
        pieces[32::q],
        strict=True,
    ):
        biz_step, dispo = steps.get(step), dispositions.get(disposition)
        number, when = int(seq[1:-1]), int(time[1 : time.index("}")])
        if biz_step is None or dispo is None or number >= MAX_JSON_INT or when >= MAX_JSON_INT:
            return None
        scans.append(
            BatchedScan(
                item,
                number,
                fromhex(prev[2:]),
                biz_step,
                dispo,
                read_point,
                when,
                fromhex(hashed[2:]),
                fromhex(transaction[2:]),
            )
        )
    return BatchDocument(int(chain_id), fromhex(anchor), fromhex(submitter), tuple(scans), fromhex(root), ())


def decode(data: bytes) -> BatchDocument:
    """The document in ``data``, checked whole (see the module docstring). Raises :class:`BatchDocumentError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchDocumentError(f"a batch document is UTF-8 JSON: byte {exc.start} is not UTF-8") from None
    document = _canonical_document(text)
    if document is not None:
        leaves = _check(document, None)
    else:
        document, leaves = _generic_document(data, text)
    root = StandardTree.of(leaves).root
    if root != document.root:
        raise BatchDocumentError(f"root {_hex(document.root)} is not the Merkle root of the events ({_hex(root)})")
    return BatchDocument(
        document.chain_id, document.batch_anchor, document.submitter, document.scans, root, tuple(leaves)
    )


def _generic_document(data: bytes, text: str) -> tuple[BatchDocument, list[bytes]]:
    """The document in ``text`` (``data`` decoded) through the JSON reader, canonical (its bytes the ones
    :func:`encode` writes) and meeting :func:`_check`'s rules, with its leaves, its root not yet checked; or why not."""
    try:
        raw = json.loads(
            text, object_pairs_hook=_unique_keys, parse_float=_refuse_number, parse_constant=_refuse_number
        )
    except BatchDocumentError:
        raise
    except ValueError as exc:  # json.JSONDecodeError, or an integer past Python's digit limit
        raise BatchDocumentError(f"a batch document is JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BatchDocumentError("a batch document is a JSON object")
    if raw.get("format") != FORMAT:
        raise BatchDocumentError(f"not a scan batch document: format must be {FORMAT!r}, got {raw.get('format')!r}")
    if raw.get("version") != VERSION:
        raise BatchDocumentError(f"unsupported batch document version {raw.get('version')!r} (this reads {VERSION})")
    if set(raw) != _TOP_KEYS:
        missing, extra = sorted(_TOP_KEYS - set(raw)), sorted(set(raw) - _TOP_KEYS)
        raise BatchDocumentError(f"the document has missing fields {missing} and unknown fields {extra}")
    events = raw["events"]
    if not isinstance(events, list):
        raise BatchDocumentError("events must be an array")
    document = BatchDocument(
        chain_id=_int(raw["chainId"], "chainId"),
        batch_anchor=_bytes(raw["batchAnchor"], 20, "batchAnchor"),
        submitter=_bytes(raw["submitter"], 20, "submitter"),
        scans=tuple(_scan(event, i) for i, event in enumerate(events)),
        root=_bytes(raw["root"], 32, "root"),
        leaf_hashes=(),
    )
    try:
        leaves = _check(document, None)
        canonical = encode(document)
    except UnicodeEncodeError:  # JSON can escape a UTF-16 surrogate alone ("\ud800"): no character, no UTF-8
        raise BatchDocumentError(
            "the document holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), which is no "
            "Unicode character"
        ) from None
    if canonical != data:
        raise BatchDocumentError("the document is not in canonical form (sorted keys, no whitespace, as encode writes)")
    return document, leaves


def _check(document: BatchDocument, leaves: Sequence[bytes] | None) -> list[bytes]:
    """The rules that need no index: sizes, batchable steps, and the item chains inside the document.

    Returns the leaves (computed for the chain links), so that callers do not hash every scan twice; ``leaves``:
    the ones :class:`BatchBuilder` computed as it numbered these scans (each scan's prevHash still checked
    against them), None to compute them here.
    """
    count = len(document.scans)
    if not 1 <= count <= MAX_EVENTS:
        raise BatchDocumentError(f"a batch holds 1 to {MAX_EVENTS} events, this one {count}")
    if document.chain_id < 1:
        raise BatchDocumentError("chainId must be a chain id (1 or more)")
    if len(document.batch_anchor) != 20 or len(document.submitter) != 20:
        raise BatchDocumentError("batchAnchor and submitter must be 20-byte addresses")
    last: dict[str, tuple[int, bytes]] = {}
    ids: dict[str, bytes] = {}
    checked = []
    check_each = not _all_valid(document.scans)
    for index, scan in enumerate(document.scans):
        if check_each:
            _check_scan(scan, index)
        if leaves is not None:
            leaf = leaves[index]
        else:
            item_id = ids.get(scan.item)
            if item_id is None:
                item_id = ids[scan.item] = uri_item_id(scan.item)
            leaf = _leaf(scan, item_id, document.submitter)
        before = last.get(scan.item)
        if before is not None:
            seq, hashed = before
            if scan.seq != seq + 1:
                raise BatchDocumentError(
                    f"events[{index}]: {scan.item} scan #{scan.seq} follows its scan #{seq} in this batch "
                    f"(an item's scans are numbered in order without gaps)"
                )
            if scan.prev_hash != hashed:
                raise BatchDocumentError(
                    f"events[{index}]: prevHash of {scan.item} scan #{scan.seq} is not the hash of its scan #{seq}"
                )
        last[scan.item] = (scan.seq, leaf)
        checked.append(leaf)
    return checked


def _all_valid(scans: Sequence[BatchedScan]) -> bool:
    """Whether every scan passes :func:`_check_scan`, checked over the distinct items, steps, dispositions and read
    points (a batch scans a few items many times); False when any may not, and then each is checked in order,
    which says why for the first that fails."""
    try:
        return (
            all(1 <= len(item.encode("utf-8")) <= MAX_URI_BYTES for item in {scan.item for scan in scans})
            and {scan.biz_step for scan in scans} <= BATCHABLE_STEPS
            and {scan.disposition for scan in scans} <= BATCHABLE_DISPOSITIONS
            and all(p and p.isascii() and len(p) <= 32 for p in {scan.read_point for scan in scans})
            and all(
                (scan.seq == 0) == (scan.prev_hash == ZERO32)
                and len(scan.prev_hash) == len(scan.document) == len(scan.biz_transaction) == 32
                and 0 <= scan.seq < MAX_JSON_INT
                and 0 <= scan.time < MAX_JSON_INT
                for scan in scans
            )
        )
    except (TypeError, ValueError):  # a lone surrogate in an item (UnicodeEncodeError), a value of another type
        return False


def _check_scan(scan: BatchedScan, index: int) -> None:
    where = f"events[{index}]"
    uri_bytes = len(scan.item.encode("utf-8"))
    if not 1 <= uri_bytes <= MAX_URI_BYTES:
        raise BatchDocumentError(f"{where}.item must be a GS1 URI of 1 to {MAX_URI_BYTES} bytes, got {uri_bytes}")
    if scan.biz_step not in BATCHABLE_STEPS:
        allowed = ", ".join(sorted(step.cbv for step in BATCHABLE_STEPS))
        raise BatchDocumentError(
            f"{where}: {scan.biz_step.cbv} cannot be batched; record it on-chain (batchable steps: {allowed})"
        )
    if scan.disposition not in BATCHABLE_DISPOSITIONS:
        allowed = ", ".join(sorted(d.cbv for d in BATCHABLE_DISPOSITIONS))
        raise BatchDocumentError(
            f"{where}: disposition {scan.disposition.cbv} cannot be batched; record it on-chain "
            f"(batchable dispositions: {allowed})"
        )
    if not scan.read_point or not scan.read_point.isascii() or len(scan.read_point) > 32:
        raise BatchDocumentError(f"{where}.readPoint must be 1 to 32 ASCII characters, got {scan.read_point!r}")
    if (scan.seq == 0) != (scan.prev_hash == ZERO32):
        raise BatchDocumentError(f"{where}: prevHash is zero exactly for an item's first scan (seq 0)")
    if len(scan.prev_hash) != 32 or len(scan.document) != 32 or len(scan.biz_transaction) != 32:
        hashes = {"prevHash": scan.prev_hash, "document": scan.document, "bizTransaction": scan.biz_transaction}
        name = next(name for name, value in hashes.items() if len(value) != 32)
        raise BatchDocumentError(f"{where}.{name} must be 32 bytes")
    if not 0 <= scan.seq < MAX_JSON_INT or not 0 <= scan.time < MAX_JSON_INT:
        raise BatchDocumentError(f"{where}: seq and time must be integers in [0, 2**53)")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last batched scan of an item before a batch: its seq and leaf hash."""

    seq: int
    hash: bytes


def check_continuity(document: BatchDocument, heads: Mapping[str, ChainHead]) -> list[str]:
    """Why the first scan of each item in ``document`` does not continue that item's chain (empty: all do).

    ``heads`` maps an item URI to its last batched scan so far; an item absent from it has none, so
    its first scan here must be seq 0 with a zero prevHash.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for index, scan in enumerate(document.scans):
        if scan.item in seen:
            continue
        seen.add(scan.item)
        head = heads.get(scan.item)
        expected_seq, expected_prev = (head.seq + 1, head.hash) if head else (0, ZERO32)
        if scan.seq != expected_seq:
            problems.append(
                f"events[{index}]: {scan.item} scan #{scan.seq}, expected #{expected_seq} (missing or repeated)"
            )
        elif scan.prev_hash != expected_prev:
            problems.append(
                f"events[{index}]: prevHash of {scan.item} scan #{scan.seq} does not link to its scan #{scan.seq - 1}"
            )
    return problems


def append_scan(
    heads: MutableMapping[str, ChainHead],
    *,
    submitter: bytes,
    item: str,
    biz_step: BizStep,
    disposition: Disposition,
    read_point: str,
    time: int,
    document: bytes = ZERO32,
    biz_transaction: bytes = ZERO32,
) -> BatchedScan:
    """The item's next scan in its chain (seq and prevHash from ``heads``), and ``heads`` moved onto it."""
    return BatchBuilder(heads, submitter=submitter).add(
        item=item,
        biz_step=biz_step,
        disposition=disposition,
        read_point=read_point,
        time=time,
        document=document,
        biz_transaction=biz_transaction,
    )


class BatchBuilder:
    """Numbers scans in their items' chains as :func:`append_scan` does, then seals them as :func:`seal` does,
    hashing each scan's leaf once: the leaf that numbers an item's next scan is the one the root is built from.

    ``heads`` is moved onto each scan as it is added (what the next batch must continue).
    """

    def __init__(self, heads: MutableMapping[str, ChainHead], *, submitter: bytes) -> None:
        self.heads = heads
        self.submitter = submitter
        self.scans: list[BatchedScan] = []
        self._leaves: list[bytes] = []
        self._item_ids: dict[str, bytes] = {}

    def add(
        self,
        *,
        item: str,
        biz_step: BizStep,
        disposition: Disposition,
        read_point: str,
        time: int,
        document: bytes = ZERO32,
        biz_transaction: bytes = ZERO32,
    ) -> BatchedScan:
        """The item's next scan in its chain, added to the batch."""
        head = self.heads.get(item)
        scan = BatchedScan(
            item=item,
            seq=head.seq + 1 if head else 0,
            prev_hash=head.hash if head else ZERO32,
            biz_step=biz_step,
            disposition=disposition,
            read_point=read_point,
            time=time,
            document=document,
            biz_transaction=biz_transaction,
        )
        item_id = self._item_ids.get(item)
        if item_id is None:
            item_id = self._item_ids[item] = uri_item_id(item)
        leaf = _leaf(scan, item_id, self.submitter)
        self.heads[item] = ChainHead(scan.seq, leaf)
        self.scans.append(scan)
        self._leaves.append(leaf)
        return scan

    def seal(self, *, chain_id: int, batch_anchor: bytes) -> BatchDocument:
        """The document of the scans added, checked as :func:`seal` checks it. Raises :class:`BatchDocumentError`."""
        return _sealed(chain_id, batch_anchor, self.submitter, tuple(self.scans), self._leaves)


def check_anchor(
    document: BatchDocument,
    *,
    root: bytes,
    submitter: bytes,
    count: int,
    chain_id: int,
    batch_anchor: bytes,
    anchored_at: int,
    max_age_s: int | None = None,
) -> list[str]:
    """Why ``document`` is not the batch a ``BatchAnchored`` event announced (empty: it is).

    The event's fields as the indexer decodes them (addresses as 20 bytes). The caller checks first that the
    document's bytes have the event's digest (``documents/cid.py``): that is what fetched the document.
    ``max_age_s``: the oldest a scan may be against the anchor's block time (None: no limit).
    """
    problems = []
    if document.root != root:
        problems.append(f"the document's root {_hex(document.root)} is not the anchored {_hex(root)}")
    if document.submitter != submitter:
        problems.append(
            f"the document names submitter {_hex(document.submitter)}, the anchor was sent by {_hex(submitter)}"
        )
    if len(document.scans) != count:
        problems.append(f"the document lists {len(document.scans)} scans, the anchor declared {count}")
    if document.chain_id != chain_id or document.batch_anchor != batch_anchor:
        problems.append(
            f"the document is for BatchAnchor {_hex(document.batch_anchor)} on chain {document.chain_id}, "
            f"not {_hex(batch_anchor)} on chain {chain_id}"
        )
    late = [i for i, scan in enumerate(document.scans) if scan.time > anchored_at]
    if late:
        problems.append(
            f"{len(late)} scans (the first events[{late[0]}]) are dated after their anchor's block ({anchored_at})"
        )
    if max_age_s is not None:
        old = [i for i, scan in enumerate(document.scans) if scan.time < anchored_at - max_age_s]
        if old:
            problems.append(
                f"{len(old)} scans (the first events[{old[0]}], dated {document.scans[old[0]].time}) are dated more "
                f"than {max_age_s} s before their anchor's block ({anchored_at}), the tolerance for a scanner's backlog"
            )
    return problems


@dataclass(frozen=True, slots=True)
class ItemStanding:
    """What the index knows of a scanned item when its batch was anchored."""

    merchant: str
    """Its merchant of record, lowercase hex."""
    destroyed: bool


def scan_refusals(
    document: BatchDocument,
    *,
    roles: Collection[str],
    sells_for: Collection[str],
    items: Mapping[str, ItemStanding],
) -> list[str]:
    """Why scans of ``document`` could not have been recorded on-chain by its submitter (empty: all could).

    The per-scan rules the contract applies to an on-chain event and leaves to the indexer for a batch: the
    item is registered (``items`` has its URI) and not destroyed, and the submitter's ``roles`` (and the
    merchants it ``sells_for``) allow the step on that item (:func:`~ledger_service.core.codes.step_refusal`),
    all as of the anchor's block.
    """
    actor = _hex(document.submitter)
    problems = []
    for index, scan in enumerate(document.scans):
        item = items.get(scan.item)
        if item is None:
            problems.append(f"events[{index}]: item {scan.item} is not registered")
        elif item.destroyed:
            problems.append(f"events[{index}]: item {scan.item} was destroyed: nothing is recorded after destroying")
        else:
            why = step_refusal(scan.biz_step, roles=roles, actor=actor, merchant=item.merchant, sells_for=sells_for)
            if why is not None:
                problems.append(
                    f"events[{index}]: account {actor} may not record {scan.biz_step.cbv} on item {scan.item}: {why}"
                )
    return problems


def heads_after(document: BatchDocument, heads: Mapping[str, ChainHead]) -> dict[str, ChainHead]:
    """``heads`` moved past this document's scans (what the next batch must continue)."""
    moved = dict(heads)
    for scan, leaf in zip(document.scans, document.leaves(), strict=True):
        moved[scan.item] = ChainHead(scan.seq, leaf)
    return moved


def standard_tree_values(document: BatchDocument) -> list[list[str]]:
    """The leaves' values as ``@openzeppelin/merkle-tree`` takes them (hex, decimal strings), in document order."""
    return [leaf_json_values(scan, document.submitter) for scan in document.scans]


def leaf_json_values(scan: BatchedScan, submitter: bytes) -> list[str]:
    """One scan's leaf values as ``@openzeppelin/merkle-tree`` takes them (hex, decimal strings)."""
    return [_json_value(value) for value in scan.leaf_values(submitter)]


def _json_value(value: bytes | int) -> str:
    return _hex(value) if isinstance(value, bytes) else str(value)
