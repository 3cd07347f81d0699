"""ledger_service.core.batch_document: the canonical scan batch format, its rules, and its leaves as
@openzeppelin/merkle-tree and BatchAnchor compute them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak as eth_keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_service.chain.artifacts import load_artifact
from ledger_service.core import batch_document as bd
from ledger_service.core import merkle
from ledger_service.core.batch_document import (
    BATCHABLE_DISPOSITIONS,
    BATCHABLE_STEPS,
    LEAF_ENCODING,
    BatchDocument,
    BatchDocumentError,
    BatchedScan,
    ChainHead,
)
from ledger_service.core.codes import BizStep, Disposition
from tests.ledger_service.core.conftest import Anchoring, OzMerkleTree
from tests.support.chain import ARTIFACTS, CARRIER, MANUFACTURER

ANCHOR = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
SUBMITTER = bytes.fromhex("90f79bf6eb2c4f870365e785982e1f101e93b906")
T0 = 1_765_000_000


def uri(n: int) -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{n}"


@st.composite
def scan_lists(draw: st.DrawFn, max_scans: int = 30) -> list[BatchedScan]:
    """Scans of a few items in any interleaving, each item's chain well formed from its first scan."""
    heads: dict[str, ChainHead] = {}
    scans = []
    for _ in range(draw(st.integers(1, max_scans))):
        scans.append(
            bd.append_scan(
                heads,
                submitter=SUBMITTER,
                item=uri(draw(st.integers(0, 5))),
                biz_step=draw(st.sampled_from(sorted(BATCHABLE_STEPS))),
                disposition=draw(st.sampled_from(sorted(BATCHABLE_DISPOSITIONS))),
                read_point=draw(st.text("0123456789.", min_size=1, max_size=32)),
                time=draw(st.integers(0, 2**53 - 1)),
                document=draw(st.sampled_from([bd.ZERO32, b"\x12" * 32])),
                biz_transaction=draw(st.binary(min_size=32, max_size=32)),
            )
        )
    return scans


def sealed(scans: list[BatchedScan], submitter: bytes = SUBMITTER, chain_id: int = 31337) -> BatchDocument:
    return bd.seal(chain_id=chain_id, batch_anchor=ANCHOR, submitter=submitter, scans=scans)


def simple_scans(n: int = 3) -> list[BatchedScan]:
    heads: dict[str, ChainHead] = {}
    return [
        bd.append_scan(
            heads,
            submitter=SUBMITTER,
            item=uri(i % 2),
            biz_step=BizStep.DEPARTING,
            disposition=Disposition.IN_TRANSIT,
            read_point="0614141.00777.0",
            time=T0 + i,
        )
        for i in range(n)
    ]


@settings(max_examples=60, deadline=None)
@given(scans=scan_lists())
def test_a_sealed_document_round_trips_byte_for_byte(scans: list[BatchedScan]) -> None:
    document = sealed(scans)
    data = bd.encode(document)
    assert bd.decode(data) == document
    assert bd.encode(bd.decode(data)) == data
    assert document.root == merkle.StandardTree.of(document.leaves()).root


@settings(max_examples=40, deadline=None)
@given(scans=scan_lists())
def test_a_leaf_is_the_standard_leaf_of_the_scan_leaf_tuple(scans: list[BatchedScan]) -> None:
    for scan in scans:
        encoded = merkle.abi_encode_static(LEAF_ENCODING, scan.leaf_values(SUBMITTER))
        assert scan.leaf_hash(SUBMITTER) == merkle.leaf_hash(encoded)
        # and as eth_abi encodes the tuple and eth_utils hashes it: independent of the core's code
        assert encoded == abi_encode(list(LEAF_ENCODING), list(scan.leaf_values(SUBMITTER)))
        assert scan.leaf_hash(SUBMITTER) == eth_keccak(eth_keccak(encoded))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scans=scan_lists())
def test_openzeppelin_merkle_tree_finds_the_same_leaves_and_root(
    oz_merkle_tree: OzMerkleTree, scans: list[BatchedScan]
) -> None:
    document = sealed(scans)
    reference = oz_merkle_tree.ask({"values": bd.standard_tree_values(document), "encoding": list(LEAF_ENCODING)})
    assert reference["root"] == "0x" + document.root.hex()
    assert reference["leafHashes"] == ["0x" + leaf.hex() for leaf in document.leaves()]


def test_batch_anchor_verifies_every_scan_of_an_anchored_document(anchoring: Anchoring) -> None:
    w3, accounts = anchoring.deployed.w3, anchoring.deployed.accounts
    carrier = accounts[CARRIER]
    document = sealed(simple_scans(5), submitter=bytes.fromhex(carrier[2:]))
    tree = document.tree()
    anchor = anchoring.anchor.functions
    assert anchor.MAX_BATCH_EVENTS().call() == bd.MAX_EVENTS
    tx = anchor.anchorBatch(document.root, len(document.scans), b"\xd1" * 32).transact({"from": carrier})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    for i, scan in enumerate(document.scans):
        values: list[bytes | int | str] = list(scan.leaf_values(document.submitter))
        values[-1] = carrier
        assert anchor.scanLeaf(values).call() == tree.leaf(i)
        assert anchor.verifyScan(values, document.root, tree.proof(i)).call()
    # The same scans under another submitter's name do not verify against the carrier's anchor.
    other: list[bytes | int | str] = list(document.scans[0].leaf_values(document.submitter))
    other[-1] = accounts[MANUFACTURER]
    assert not anchor.verifyScan(other, document.root, tree.proof(0)).call()


def _reencoded(change: Callable[[dict[str, Any]], None]) -> bytes:
    body = json.loads(bd.encode(sealed(simple_scans())))
    change(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["events"][0].pop(key)


REFUSED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "wrong format": (_set(("format",), "epcis"), "not a scan batch document"),
    "newer version": (_set(("version",), 2), "unsupported batch document version 2"),
    "extra field": (_set(("note",), "x"), r"unknown fields \['note'\]"),
    "missing event field": (_delete("readPoint"), r"missing fields \['readPoint'\]"),
    "extra event field": (_set(("events", 0, "actor"), "x"), r"unknown fields \['actor'\]"),
    "no events": (_set(("events",), []), "1 to 65536 events"),
    "wrong root": (_set(("root",), "0x" + "ab" * 32), "is not the Merkle root"),
    "upper-case hex": (_set(("submitter",), "0x" + SUBMITTER.hex().upper()), "lowercase hex"),
    "short address": (_set(("batchAnchor",), "0x1234"), "40 lowercase hex digits"),
    "unknown step": (_set(("events", 0, "bizStep"), "teleporting"), "must be a CBV name"),
    "negative seq": (_set(("events", 0, "seq"), -1), r"integer in \[0, 2\*\*53\)"),
    "huge time": (_set(("events", 0, "time"), 2**53), r"integer in \[0, 2\*\*53\)"),
    "boolean seq": (_set(("events", 0, "seq"), True), "must be an integer"),
    "chain id 0": (_set(("chainId",), 0), "chainId must be a chain id"),
    "seq gap": (_set(("events", 2, "seq"), 2), "scan #2 follows its scan #0"),
    "broken link": (_set(("events", 2, "prevHash"), "0x" + "01" * 32), "is not the hash of its scan #0"),
    "first scan with a prevHash": (_set(("events", 0, "prevHash"), "0x" + "01" * 32), "exactly for an item's first"),
    "later scan without a prevHash": (_set(("events", 2, "prevHash"), "0x" + "00" * 32), "exactly for an item's"),
    "long read point": (_set(("events", 0, "readPoint"), "0" * 33), "1 to 32 ASCII"),
    "non-ASCII read point": (_set(("events", 0, "readPoint"), "仓库"), "1 to 32 ASCII"),
    "empty item": (_set(("events", 0, "item"), ""), "1 to 256 bytes"),
    "long item": (_set(("events", 0, "item"), "u" * 257), "1 to 256 bytes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_malformed_or_inconsistent_document_is_refused_with_the_reason(case: str) -> None:
    change, reason = REFUSED[case]
    with pytest.raises(BatchDocumentError, match=reason):
        bd.decode(_reencoded(change))


@pytest.mark.parametrize("step", sorted(set(BizStep) - BATCHABLE_STEPS))
def test_a_step_that_matters_to_money_or_ownership_cannot_be_batched(step: BizStep) -> None:
    with pytest.raises(BatchDocumentError, match=f"{step.cbv} cannot be batched; record it on-chain"):
        bd.decode(_reencoded(_set(("events", 0, "bizStep"), step.cbv)))


@pytest.mark.parametrize("disposition", sorted(set(Disposition) - BATCHABLE_DISPOSITIONS))
def test_a_disposition_that_matters_to_money_or_ownership_cannot_be_batched(disposition: Disposition) -> None:
    with pytest.raises(BatchDocumentError, match=f"disposition {disposition.cbv} cannot be batched"):
        bd.decode(_reencoded(_set(("events", 0, "disposition"), disposition.cbv)))


def test_the_batchable_steps_are_the_observation_steps() -> None:
    assert {step.cbv for step in BATCHABLE_STEPS} == {
        "packing",
        "shipping",
        "receiving",
        "departing",
        "arriving",
        "transporting",
        "stocking",
    }
    assert {d.cbv for d in BATCHABLE_DISPOSITIONS} == {
        "in_progress",
        "in_transit",
        "sellable_accessible",
        "sellable_not_accessible",
    }


def test_seal_refuses_what_decode_refuses() -> None:
    scans = simple_scans()
    scans[0] = BatchedScan(**{**_fields(scans[0]), "biz_step": BizStep.RETAIL_SELLING})
    with pytest.raises(BatchDocumentError, match="retail_selling cannot be batched"):
        sealed(scans)
    with pytest.raises(BatchDocumentError, match="1 to 65536 events"):
        sealed([])


@settings(max_examples=40, deadline=None)
@given(scans=scan_lists())
def test_the_builder_numbers_and_seals_as_append_scan_and_seal_do(scans: list[BatchedScan]) -> None:
    heads: dict[str, ChainHead] = {}
    builder = bd.BatchBuilder(heads, submitter=SUBMITTER)
    for scan in scans:
        fields = _fields(scan)
        del fields["seq"], fields["prev_hash"]
        assert builder.add(**fields) == scan
    document = builder.seal(chain_id=31337, batch_anchor=ANCHOR)
    assert document == sealed(scans)
    assert document.leaves() == [scan.leaf_hash(SUBMITTER) for scan in scans]
    assert heads == bd.heads_after(document, {})
    decoded = bd.decode(bd.encode(document))
    assert decoded.leaves() == document.leaves()


def test_the_builder_refuses_what_seal_refuses() -> None:
    builder = bd.BatchBuilder({}, submitter=SUBMITTER)
    builder.add(
        item=uri(0), biz_step=BizStep.RETAIL_SELLING, disposition=Disposition.IN_TRANSIT, read_point="1", time=T0
    )
    with pytest.raises(BatchDocumentError, match="retail_selling cannot be batched"):
        builder.seal(chain_id=31337, batch_anchor=ANCHOR)
    with pytest.raises(BatchDocumentError, match="1 to 65536 events"):
        bd.BatchBuilder({}, submitter=SUBMITTER).seal(chain_id=31337, batch_anchor=ANCHOR)
    valid = bd.BatchBuilder({}, submitter=SUBMITTER)
    valid.add(item=uri(0), biz_step=BizStep.DEPARTING, disposition=Disposition.IN_TRANSIT, read_point="1", time=T0)
    with pytest.raises(BatchDocumentError, match="chainId must be a chain id"):
        valid.seal(chain_id=0, batch_anchor=ANCHOR)


def _fields(scan: BatchedScan) -> dict[str, Any]:
    return {name: getattr(scan, name) for name in BatchedScan.__slots__}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff{}", "byte 0 is not UTF-8"),
        (b"[1,2]", "is a JSON object"),
        (b'{"a":1.5}', "is not an integer"),
        (b'{"a":NaN}', "is not an integer"),
        (b'{"a":1,"a":2}', "appears twice"),
        (b'{"a":', "is JSON"),
    ],
)
def test_bytes_that_are_not_a_json_object_of_integers_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(BatchDocumentError, match=reason):
        bd.decode(data)


def test_only_the_canonical_bytes_are_accepted() -> None:
    data = bd.encode(sealed(simple_scans()))
    body = json.loads(data)
    pretty = json.dumps(body, sort_keys=True, indent=1).encode()
    unsorted = json.dumps(dict(reversed(list(body.items()))), separators=(",", ":")).encode()
    for variant in (pretty, unsorted, data + b"\n"):
        with pytest.raises(BatchDocumentError, match="canonical form"):
            bd.decode(variant)
    unicode_item = sealed([*simple_scans(1), *_scans_of("urn:example:数字")])
    assert "数字".encode() in bd.encode(unicode_item)
    assert bd.decode(bd.encode(unicode_item)) == unicode_item
    escaped = json.dumps(json.loads(bd.encode(unicode_item)), sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BatchDocumentError, match="canonical form"):
        bd.decode(escaped)  # the same text with \u escapes: other bytes, so another digest


def test_a_lone_surrogate_escape_is_refused_not_a_crash() -> None:
    # JSON may escape a UTF-16 surrogate alone: no character, which nothing can hash or encode as UTF-8
    body = json.loads(bd.encode(sealed(simple_scans())))
    body["events"][0]["item"] = "urn:example:\ud800"
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BatchDocumentError, match="lone UTF-16 surrogate"):
        bd.decode(data)


def _generic_encode(document: BatchDocument) -> bytes:
    """The canonical form as its definition says: the JSON object, through ``json.dumps`` sorting its keys."""
    body = {
        "format": bd.FORMAT,
        "version": bd.VERSION,
        "chainId": document.chain_id,
        "batchAnchor": "0x" + document.batch_anchor.hex(),
        "submitter": "0x" + document.submitter.hex(),
        "root": "0x" + document.root.hex(),
        "events": [
            {
                "item": scan.item,
                "seq": scan.seq,
                "prevHash": "0x" + scan.prev_hash.hex(),
                "bizStep": scan.biz_step.cbv,
                "disposition": scan.disposition.cbv,
                "readPoint": scan.read_point,
                "time": scan.time,
                "document": "0x" + scan.document.hex(),
                "bizTransaction": "0x" + scan.biz_transaction.hex(),
            }
            for scan in document.scans
        ],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_HASHES = st.binary(min_size=32, max_size=32)


@settings(max_examples=80, deadline=None)
@given(
    scans=st.lists(
        st.builds(
            BatchedScan,
            item=st.text(max_size=40),  # quotes, backslashes, control characters, any script: escaped as json escapes
            seq=st.integers(0, 2**53 - 1),
            prev_hash=_HASHES,
            biz_step=st.sampled_from(list(BizStep)),
            disposition=st.sampled_from(list(Disposition)),
            read_point=st.text(st.characters(max_codepoint=127), max_size=32),
            time=st.integers(0, 2**53 - 1),
            document=_HASHES,
            biz_transaction=_HASHES,
        ),
        max_size=5,
    ),
    chain_id=st.integers(0, 2**53 - 1),
    addresses=st.lists(st.binary(min_size=20, max_size=20), min_size=2, max_size=2),
    root=_HASHES,
)
def test_encode_writes_exactly_what_json_dumps_writes_with_sorted_keys(
    scans: list[BatchedScan], chain_id: int, addresses: list[bytes], root: bytes
) -> None:
    document = BatchDocument(chain_id, addresses[0], addresses[1], tuple(scans), root, ())
    assert bd.encode(document) == _generic_encode(document)


def _scans_of(item: str) -> list[BatchedScan]:
    return [
        bd.append_scan(
            {},
            submitter=SUBMITTER,
            item=item,
            biz_step=BizStep.STOCKING,
            disposition=Disposition.SELLABLE_ACCESSIBLE,
            read_point="0614141.00001.0",
            time=T0,
        )
    ]


def test_batches_continue_each_item_chain_across_documents() -> None:
    heads: dict[str, ChainHead] = {}
    first = sealed(simple_scans(4))
    assert bd.check_continuity(first, heads) == []
    heads = bd.heads_after(first, heads)
    assert heads[uri(0)].seq == 1 and heads[uri(1)].seq == 1
    follow_heads = dict(heads)
    follow = [
        bd.append_scan(
            follow_heads,
            submitter=SUBMITTER,
            item=uri(n),
            biz_step=BizStep.ARRIVING,
            disposition=Disposition.IN_TRANSIT,
            read_point="0614141.00888.0",
            time=T0 + 100,
        )
        for n in (1, 2, 1)
    ]
    second = sealed(follow)
    assert bd.check_continuity(second, heads) == []
    assert bd.heads_after(second, heads) == follow_heads
    # Without the first batch, item 1's chain starts in the middle; item 2 (new) is fine.
    assert bd.check_continuity(second, {}) == [f"events[0]: {uri(1)} scan #2, expected #0 (missing or repeated)"]
    # A first batch that was altered breaks the link of the next one.
    wrong = {**heads, uri(1): ChainHead(1, b"\x07" * 32)}
    assert bd.check_continuity(second, wrong) == [
        f"events[0]: prevHash of {uri(1)} scan #2 does not link to its scan #1"
    ]


def test_the_leaf_encoding_is_batch_anchors_scan_leaf() -> None:
    verify = next(e for e in load_artifact("BatchAnchor", ARTIFACTS).abi if e.get("name") == "verifyScan")
    components = verify["inputs"][0]["components"]
    assert tuple(c["type"] for c in components) == LEAF_ENCODING
    assert [c["name"] for c in components] == [
        "itemId",
        "seq",
        "prevHash",
        "bizStep",
        "disposition",
        "location",
        "document",
        "bizTransaction",
        "time",
        "submitter",
    ]


def test_a_document_is_checked_against_the_anchor_that_announced_it() -> None:
    document = sealed(simple_scans(3))
    announced: dict[str, Any] = {
        "root": document.root,
        "submitter": SUBMITTER,
        "count": 3,
        "chain_id": 31337,
        "batch_anchor": ANCHOR,
        "anchored_at": T0 + 2,
    }
    assert bd.check_anchor(document, **announced) == []
    other = b"\x01" * 20
    wrong: dict[str, tuple[object, str]] = {
        "root": (b"\x02" * 32, "is not the anchored 0x0202"),
        "submitter": (other, f"the anchor was sent by 0x{other.hex()}"),
        "count": (4, "lists 3 scans, the anchor declared 4"),
        "chain_id": (1, "on chain 31337, not 0x"),
        "batch_anchor": (other, f"not 0x{other.hex()} on chain 31337"),
        "anchored_at": (T0 + 1, "1 scans (the first events[2]) are dated after"),
    }
    for field, (value, reason) in wrong.items():
        problems = bd.check_anchor(document, **{**announced, field: value})
        assert len(problems) == 1 and reason in problems[0], (field, problems)
    # the scans are dated T0, T0 + 1 and T0 + 2: with a tolerance of 1 s before the anchor the first is too old
    assert bd.check_anchor(document, **announced, max_age_s=2) == []
    [too_old] = bd.check_anchor(document, **announced, max_age_s=1)
    assert f"1 scans (the first events[0], dated {T0}) are dated more than 1 s before their anchor's block" in too_old


def _one_scan(step: BizStep, item: str = "urn:example:1") -> BatchDocument:
    disposition = (
        Disposition.IN_TRANSIT if step in (BizStep.DEPARTING, BizStep.TRANSPORTING) else Disposition.IN_PROGRESS
    )
    scan = bd.append_scan(
        {}, submitter=SUBMITTER, item=item, biz_step=step, disposition=disposition, read_point="1.2.3", time=T0
    )
    return sealed([scan])


ME = "0x" + SUBMITTER.hex()
OTHER = "0x" + "77" * 20


@pytest.mark.parametrize(
    ("step", "roles", "merchant", "sells_for", "refusal"),
    [
        (BizStep.TRANSPORTING, {"CARRIER_ROLE"}, OTHER, set(), None),
        (BizStep.PACKING, {"CARRIER_ROLE"}, OTHER, set(), "needs the manufacturer role, or the merchant role"),
        (BizStep.DEPARTING, {"MANUFACTURER_ROLE", "MERCHANT_ROLE"}, OTHER, set(), "needs the carrier role"),
        (BizStep.PACKING, {"MANUFACTURER_ROLE"}, OTHER, set(), None),
        (BizStep.STOCKING, {"MERCHANT_ROLE"}, ME, set(), None),
        (BizStep.STOCKING, {"MERCHANT_ROLE"}, OTHER, {OTHER}, None),
        (BizStep.STOCKING, {"MERCHANT_ROLE"}, OTHER, set(), f"neither the item's merchant of record ({OTHER})"),
        (BizStep.RECEIVING, set(), ME, set(), "needs the manufacturer role"),
    ],
)
def test_each_scan_must_be_one_its_submitter_could_record_on_chain(
    step: BizStep, roles: set[str], merchant: str, sells_for: set[str], refusal: str | None
) -> None:
    document = _one_scan(step)
    items = {"urn:example:1": bd.ItemStanding(merchant=merchant, destroyed=False)}
    problems = bd.scan_refusals(document, roles=roles, sells_for=sells_for, items=items)
    if refusal is None:
        assert problems == []
    else:
        assert len(problems) == 1 and refusal in problems[0]
        assert problems[0].startswith(f"events[0]: account {ME} may not record {step.cbv} on item urn:example:1: ")


def test_scans_of_unknown_or_destroyed_items_are_refused() -> None:
    document = _one_scan(BizStep.TRANSPORTING)
    carrier = {"roles": {"CARRIER_ROLE"}, "sells_for": set[str]()}
    assert bd.scan_refusals(document, items={}, **carrier) == ["events[0]: item urn:example:1 is not registered"]
    destroyed = {"urn:example:1": bd.ItemStanding(merchant=OTHER, destroyed=True)}
    assert bd.scan_refusals(document, items=destroyed, **carrier) == [
        "events[0]: item urn:example:1 was destroyed: nothing is recorded after destroying"
    ]


# ---- the canonical reader against the generic one -------------------------------------------------------------


def _generic_decode(data: bytes) -> BatchDocument:
    """``decode`` through the JSON reader alone (parse, check, encode again and compare the bytes), as it was
    before the canonical form was matched directly: the reference the fast reader must agree with."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchDocumentError(f"a batch document is UTF-8 JSON: byte {exc.start} is not UTF-8") from None
    document, leaves = bd._generic_document(data, text)
    root = merkle.StandardTree.of(leaves).root
    if root != document.root:
        raise BatchDocumentError(f"root 0x{document.root.hex()} is not the Merkle root of the events (0x{root.hex()})")
    return BatchDocument(
        document.chain_id, document.batch_anchor, document.submitter, document.scans, root, tuple(leaves)
    )


def _outcome(decoder: Callable[[bytes], BatchDocument], data: bytes) -> tuple[object, ...]:
    try:
        document = decoder(data)
    except BatchDocumentError as exc:
        return ("refused", str(exc))
    return ("decoded", document, document.leaves())


_ITEMS = st.one_of(
    st.integers(0, 5).map(uri),
    # quotes, backslashes, control characters, any script: escaped strings the fast reader leaves to the JSON one
    st.text(min_size=1, max_size=12),
)
_MUTATION_BYTES = st.sampled_from(list(b'"\\09aF,:{} \n-\x01') + list("仓".encode()))


@st.composite
def documents_and_mutations(draw: st.DrawFn) -> bytes:
    """The bytes of a sealed document (its items of any text), then up to 3 bytes replaced, dropped or inserted."""
    heads: dict[str, ChainHead] = {}
    scans = [
        bd.append_scan(
            heads,
            submitter=SUBMITTER,
            item=draw(_ITEMS),
            biz_step=draw(st.sampled_from(sorted(BATCHABLE_STEPS))),
            disposition=draw(st.sampled_from(sorted(BATCHABLE_DISPOSITIONS))),
            read_point=draw(st.text("0123456789.", min_size=1, max_size=32)),
            time=draw(st.integers(0, 2**53 - 1)),
            document=draw(st.sampled_from([bd.ZERO32, b"\x12" * 32])),
        )
        for _ in range(draw(st.integers(1, 6)))
    ]
    try:
        data = bytearray(bd.encode(sealed(scans)))
    except BatchDocumentError:  # an item past 256 bytes: its bytes as encode writes them all the same
        data = bytearray(bd.encode(BatchDocument(31337, ANCHOR, SUBMITTER, tuple(scans), bd.ZERO32, ())))
    # where a value begins (after '":') and ends (before ',' or '}'): a number's first and last digits, a string's
    # quotes, the 0x of a hash; else anywhere
    edges = [i + 2 for i in range(len(data) - 2) if data[i : i + 2] == b'":'] + [
        i - 1 for i in range(1, len(data)) if data[i] in b",}"
    ]
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.one_of(st.sampled_from(edges), st.sampled_from(edges), st.integers(0, len(data) - 1)))
        change = draw(st.sampled_from(["replace", "drop", "insert"]))
        if change == "drop":
            del data[at]
        else:
            data[at : at + (change == "replace")] = bytes([draw(_MUTATION_BYTES)])
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(data=documents_and_mutations())
def test_decode_accepts_and_refuses_exactly_what_the_json_reader_does(data: bytes) -> None:
    # the same document and leaves, or the same refusal with the same reason, on canonical and broken bytes alike
    assert _outcome(bd.decode, data) == _outcome(_generic_decode, data)


def _upper_hex(data: bytes, key: bytes, *, last: bool = False) -> bytes:
    """``data`` with the hex value after (the first or last) ``key`` in upper case."""
    at = (data.rindex(key) if last else data.index(key)) + len(key)
    end = data.index(b'"', at)
    changed = data[:at] + data[at:end].upper() + data[end:]
    assert changed != data
    return changed


_PLAIN = bd.encode(sealed(simple_scans(3)))
_TIME = b'"time":%d}' % (T0 + 2)
NEAR_MISSES: dict[str, bytes] = {
    "as written": _PLAIN,
    "a leading zero": _PLAIN.replace(_TIME, b'"time":0%d}' % (T0 + 2)),
    "a negative zero": _PLAIN.replace(b'"seq":0', b'"seq":-0', 1),
    "a time of 2**53": _PLAIN.replace(_TIME, b'"time":%d}' % 2**53),
    "a time of 17 digits": _PLAIN.replace(_TIME, b'"time":1%016d}' % 0),
    "a float time": _PLAIN.replace(_TIME, b'"time":%d.0}' % (T0 + 2)),
    "an exponent": _PLAIN.replace(_TIME, b'"time":1e9}'),
    "upper-case hex": _PLAIN.replace(b'"prevHash":"0x' + bd.ZERO32.hex().encode(), b'"prevHash":"0X' + b"0" * 64, 1),
    "upper-case hex digits of the same value": _upper_hex(_PLAIN, b'"root":"0x'),
    "an upper-case hash in an event": _upper_hex(_PLAIN, b'"prevHash":"0x', last=True),
    "an escaped slash": _PLAIN.replace(b"urn:epc:id:sgtin", b"urn:epc:id:sgtin\\/", 1),
    "a unicode escape": _PLAIN.replace(b'"item":"u', b'"item":"\\u0075', 1),
    "a space after a colon": _PLAIN.replace(b'"seq":', b'"seq": ', 1),
    "a key twice": _PLAIN.replace(b'"seq":0,', b'"seq":0,"seq":0,', 1),
    "two keys swapped": _PLAIN.replace(b'"seq":0,"time"', b'"time"', 1).replace(b"000}", b'000,"seq":0}', 1),
    "no events": _PLAIN[: _PLAIN.index(b"[") + 1] + _PLAIN[_PLAIN.index(b"]") :],
    "a trailing comma": _PLAIN.replace(b"}]", b"},]", 1),
    "a byte order mark": b"\xef\xbb\xbf" + _PLAIN,
    "a newline at the end": _PLAIN + b"\n",
    "a raw control character": _PLAIN.replace(b"urn:epc", b"urn:\x01epc", 1),
    "a raw delete character": _PLAIN.replace(b"urn:epc", b"urn:\x7fepc", 1),
    "a quote in a read point": _PLAIN.replace(b'"readPoint":"06', b'"readPoint":"\\"6', 1),
}


@pytest.mark.parametrize("case", sorted(NEAR_MISSES))
def test_decode_agrees_with_the_json_reader_on_near_misses_of_the_canonical_form(case: str) -> None:
    data = NEAR_MISSES[case]
    assert data != _PLAIN or case == "as written"
    assert _outcome(bd.decode, data) == _outcome(_generic_decode, data)


def test_the_canonical_reader_reads_plain_documents_and_leaves_escaped_ones_to_the_json_reader() -> None:
    plain = bd.encode(sealed(simple_scans(5)))
    fast = bd._canonical_document(plain.decode())
    assert fast is not None
    assert fast.scans == sealed(simple_scans(5)).scans
    unicode_item = bd.encode(sealed([*simple_scans(1), *_scans_of("urn:example:数字")]))
    assert bd._canonical_document(unicode_item.decode()) is not None  # written as it is, not escaped
    quoted = bd.encode(sealed(_scans_of('urn:example:"quoted","seq":7')))
    assert bd._canonical_document(quoted.decode()) is None
    assert bd.decode(quoted).scans[0].item == 'urn:example:"quoted","seq":7'


_ANY_SCANS = st.lists(
    st.builds(
        BatchedScan,
        item=st.one_of(st.text(max_size=3), st.just("u" * 257), st.just("urn:example:\ud800")),
        seq=st.integers(0, 2**53 + 1),
        prev_hash=st.sampled_from([bd.ZERO32, b"\x01" * 32, b"\x01" * 31]),
        biz_step=st.sampled_from(list(BizStep)),
        disposition=st.sampled_from(list(Disposition)),
        read_point=st.one_of(st.text(max_size=3), st.just("0" * 33)),
        time=st.integers(0, 2**53 + 1),
        document=st.sampled_from([bd.ZERO32, b"\x01" * 33]),
        biz_transaction=st.sampled_from([bd.ZERO32, b""]),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(scans=_ANY_SCANS)
def test_the_scans_are_valid_together_exactly_when_each_is_valid(scans: list[BatchedScan]) -> None:
    each = True
    for index, scan in enumerate(scans):
        try:
            bd._check_scan(scan, index)
        except ValueError:  # BatchDocumentError, or a lone surrogate that is no UTF-8
            each = False
    assert bd._all_valid(scans) == each
