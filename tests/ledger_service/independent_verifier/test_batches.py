"""``ledger-verify --batch-anchor``: an item's whole history with its batched scans, on a real anvil, from the
chain and the batch documents alone (a folder here; a gateway serves the same bytes). Every BatchAnchored is
read; an altered document, a missing one, a leaf missing from the item's chain and a chain anchored out of order
are each named, with exit status 1."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchDocument, BatchedScan, ChainHead
from ledger_service.core.codes import BizStep
from ledger_service.documents.cid import cid_of_bytes
from ledger_service.independent_verifier.cli import main
from tests.ledger_service.independent_verifier.conftest import HUB, History
from tests.support.batches import next_scans, seal_for
from tests.support.chain import CARRIER, MANUFACTURER, MERCHANT

_serials = itertools.count(1)


class Batches:
    """Registers items and anchors batches of their scans on the verifier tests' anvil, keeping every document."""

    def __init__(self, history: History, folder: Path) -> None:
        self.history = history
        self.folder = folder
        self.d = history.deployed

    def _send(self, call: Any, sender: int) -> None:
        tx = call.transact({"from": self.d.accounts[sender]})
        assert self.d.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1

    def register(self) -> str:
        uri = f"urn:epc:id:sgtin:0614141.107346.batched-{next(_serials)}"
        ledger = self.d.ledger.functions
        self._send(ledger.registerItem(uri, 10614141007346, self.d.accounts[MERCHANT], b"\x22" * 32, HUB), MANUFACTURER)
        return uri

    def scans(self, heads: dict[str, ChainHead], items: list[str], step: BizStep) -> list[BatchedScan]:
        return next_scans(self.d, heads, items, sender=CARRIER, step=step)

    def anchor(self, scans: list[BatchedScan]) -> BatchDocument:
        """Seals, keeps (named by its CID) and anchors a batch by the carrier."""
        document = seal_for(self.d, scans, sender=CARRIER)
        data = batch_document.encode(document)
        cid = cid_of_bytes(data)
        (self.folder / cid.v0).write_bytes(data)
        self._send(self.d.anchor.functions.anchorBatch(document.root, len(scans), cid.digest), CARRIER)
        return document


@pytest.fixture(scope="module")
def batches(history: History, tmp_path_factory: pytest.TempPathFactory) -> Batches:
    return Batches(history, tmp_path_factory.mktemp("batch-documents"))


def _verify(
    history: History, batches: Batches, uri: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    args = ["--batch-anchor", batches.d.anchor.address, "--documents", str(folder), "--json"]
    code = main(history.args(*args, item=uri))
    return code, json.loads(capsys.readouterr().out)


def _kinds(report: dict[str, Any]) -> set[str]:
    return {p["kind"] for p in report["problems"]}


def test_a_history_with_batched_scans_verifies_and_a_tampered_one_is_named(
    history: History, batches: Batches, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    item, other = batches.register(), batches.register()
    heads: dict[str, ChainHead] = {}
    first = batches.anchor(batches.scans(heads, [other, item], BizStep.DEPARTING))
    second = batches.anchor(batches.scans(heads, [item], BizStep.ARRIVING))

    code, report = _verify(history, batches, item, batches.folder, capsys)
    assert code == 0, report["problems"]
    scans = report["batches"]["scans"]
    assert [(s["seq"], s["bizStep"], s["leafIndex"]) for s in scans] == [(0, "departing", 1), (1, "arriving", 0)]
    assert scans[0]["root"] == "0x" + first.root.hex() and scans[1]["root"] == "0x" + second.root.hex()
    assert scans[1]["prevHash"] == scans[0]["leaf"]
    assert report["batches"]["documents"] == report["batches"]["anchors"] >= 2
    assert "2 batched scan(s) chained and proven" in report["verdict"]

    # an altered document: its bytes no longer hash to the anchored digest
    altered = tmp_path / "altered"
    shutil.copytree(batches.folder, altered)
    target = altered / cid_of_bytes(batch_document.encode(second)).v0
    target.write_bytes(target.read_bytes().replace(b'"arriving"', b'"shipping"'))
    code, report = _verify(history, batches, item, altered, capsys)
    assert code == 1 and "batch-document-altered" in _kinds(report)
    # its scan cannot be counted: the item's chain is not complete either
    assert [s["seq"] for s in report["batches"]["scans"]] == [0]

    # a missing document: the anchor log cannot be checked complete
    missing = tmp_path / "missing"
    shutil.copytree(batches.folder, missing)
    (missing / cid_of_bytes(batch_document.encode(first)).v0).unlink()
    code, report = _verify(history, batches, other, missing, capsys)
    assert code == 1 and "batch-document-missing" in _kinds(report)
    assert any("not found" in p["message"] for p in report["problems"])


def test_a_leaf_missing_from_the_chain_and_a_chain_anchored_out_of_order_are_named(
    history: History, batches: Batches, capsys: pytest.CaptureFixture[str]
) -> None:
    gap, swapped = batches.register(), batches.register()
    heads: dict[str, ChainHead] = {}
    batches.anchor(batches.scans(heads, [gap], BizStep.DEPARTING))
    batches.scans(heads, [gap], BizStep.TRANSPORTING)  # numbered but never anchored: seq 1 is lost
    batches.anchor(batches.scans(heads, [gap], BizStep.ARRIVING))
    code, report = _verify(history, batches, gap, batches.folder, capsys)
    assert code == 1 and _kinds(report) == {"batched-chain-broken"}
    [problem] = report["problems"]
    assert problem["seq"] == 2 and "is not batched scan #1" in problem["message"]

    early = batches.scans(heads, [swapped], BizStep.DEPARTING)
    late = batches.scans(heads, [swapped], BizStep.ARRIVING)
    batches.anchor(late)  # seq 1 reaches the chain before seq 0
    batches.anchor(early)
    code, report = _verify(history, batches, swapped, batches.folder, capsys)
    assert code == 1 and _kinds(report) == {"batched-chain-broken"}
    assert [s["seq"] for s in report["batches"]["scans"]] == [1, 0]

    # the other items' histories are not affected
    assert _verify(history, batches, batches.register(), batches.folder, capsys)[0] == 0


def test_batch_arguments_are_checked(history: History, batches: Batches, capsys: pytest.CaptureFixture[str]) -> None:
    anchor = batches.d.anchor.address
    assert main(history.args("--batch-anchor", anchor)) == 2
    assert "--documents folder or an IPFS --gateway" in capsys.readouterr().err
    assert main(history.args("--documents", str(batches.folder))) == 2
    assert "give the --batch-anchor address too" in capsys.readouterr().err
    assert main(history.args("--batch-anchor", anchor, "--documents", "/nonexistent")) == 2
    assert "is not a folder" in capsys.readouterr().err
