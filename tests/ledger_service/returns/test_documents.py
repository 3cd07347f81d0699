"""Policy documents and digests: canonical, order-independent, and checked against the contract's limits."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger_service.documents.cid import Cid
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.errors import InvalidRequestError
from ledger_service.returns.documents import (
    PolicyDocument,
    canonical_json,
    digest_of,
    held,
    inspection_report,
    note_document,
)

BASE = PolicyDocument(
    window_days=30,
    restocking_fee_bps=1000,
    fast_refund=True,
    ship_by_days=7,
    inspect_by_days=14,
    dispute_window_days=7,
)


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [2, "é"]}) == '{"a":[2,"é"],"b":1}'.encode()
    assert digest_of({"b": 1, "a": 2}) == digest_of({"a": 2, "b": 1})


def test_a_document_digest_is_the_digest_inside_the_cid_ipfs_add_gives(tmp_path: Path) -> None:
    document = {"schema": "returns-ledger/evidence/1", "comment": "scratched on arrival", "n": 1}
    path = tmp_path / "doc.json"
    path.write_bytes(canonical_json(document))
    reference = json.loads(subprocess.run(["/usr/bin/ipfs_cid", str(path)], capture_output=True, check=True).stdout)
    assert Cid.from_digest(digest_of(document)).v0 == reference["CIDv0"]


def test_a_policy_digest_ignores_the_order_of_its_sets() -> None:
    one = replace(BASE, accepted_reasons=frozenset({"b", "a"}))
    two = replace(BASE, accepted_reasons=frozenset({"a", "b"}))
    assert one.digest == two.digest != BASE.digest
    assert one.to_json()["accepted_reasons"] == ["a", "b"]
    assert PolicyDocument.from_json(one.to_json()) == one


def test_on_chain_parameters_carry_the_digest() -> None:
    params = BASE.on_chain()
    assert params[:8] == (30, 1000, True, 0, 0, 7, 14, 7)
    assert "0x" + params[8].hex() == BASE.digest


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"window_days": 0}, "window_days must be between 1 and 365"),
        ({"window_days": 366}, "window_days"),
        ({"restocking_fee_bps": 5001}, "restocking_fee_bps must be between 0 and 5000"),
        ({"dispute_window_days": 91}, "dispute_window_days must be between 1 and 90"),
        ({"fast_refund_max_value": 2**96}, "fast_refund_max_value"),
        ({"title": "\ud800"}, "valid Unicode"),
        ({"text": "a\x00b"}, "without NUL"),
        (
            {"accepted_reasons": frozenset({"damaged"}), "manual_review_reasons": frozenset({"other"})},
            "not accepted: other",
        ),
    ],
)
def test_invalid_documents_are_refused_in_words(change: dict[str, Any], words: str) -> None:
    document = replace(BASE, **change)
    with pytest.raises(InvalidRequestError, match=words):
        document.validate()


def test_inspection_report_digest_is_stable() -> None:
    report = inspection_report(passed=False, grade="C", notes=None)
    assert report == {"schema": "returns-ledger/inspection/1", "passed": False, "grade": "C", "notes": ""}
    assert digest_of(report) == digest_of(dict(reversed(list(report.items()))))


class ActionFailedError(Exception):
    pass


def nothing() -> None:
    pass


def failing_action(
    store: LocalDocumentStore, document: dict[str, Any], meanwhile: Callable[[], None] = nothing
) -> None:
    """An action that holds ``document``, runs ``meanwhile`` and fails."""
    with held(store, document):
        meanwhile()
        raise ActionFailedError


def test_a_document_held_for_a_failed_action_is_removed(tmp_path: Path) -> None:
    store = LocalDocumentStore(tmp_path)
    report = inspection_report(passed=False, grade="D", notes="cracked")
    cid = Cid.from_digest(digest_of(report))
    seen: list[bool] = []
    with pytest.raises(ActionFailedError):
        failing_action(store, report, lambda: seen.append(store.stat(cid) is not None))
    assert seen == [True]  # the chain may reference it while the action runs
    assert store.stat(cid) is None


def test_a_document_held_for_a_successful_action_stays(tmp_path: Path) -> None:
    store = LocalDocumentStore(tmp_path)
    report = inspection_report(passed=True, grade="A", notes="as new")
    with held(store, report) as digest:
        pass
    assert store.read(Cid.from_digest(digest)) == canonical_json(report)


def test_a_failed_action_leaves_a_document_something_else_holds(tmp_path: Path) -> None:
    store = LocalDocumentStore(tmp_path)
    uploaded = inspection_report(passed=False, grade="C", notes="uploaded before")
    store.put([canonical_json(uploaded)], content_type="application/json")
    with pytest.raises(ActionFailedError):
        failing_action(store, uploaded)
    assert store.stat(Cid.from_digest(digest_of(uploaded))) is not None

    shared = note_document("evidence", return_id="0x" + "11" * 32, comment="same words")

    def another_succeeds() -> None:
        with held(store, shared):
            pass

    with pytest.raises(ActionFailedError):
        failing_action(store, shared, another_succeeds)
    assert store.stat(Cid.from_digest(digest_of(shared))) is not None


def test_when_every_action_holding_a_document_fails_it_is_removed(tmp_path: Path) -> None:
    store = LocalDocumentStore(tmp_path)
    ruling = note_document("ruling", notes="both fail")
    cid = Cid.from_digest(digest_of(ruling))
    seen: list[bool] = []

    def another_fails() -> None:
        with pytest.raises(ActionFailedError):
            failing_action(store, ruling)
        seen.append(store.stat(cid) is not None)  # the first action still runs: kept

    with pytest.raises(ActionFailedError):
        failing_action(store, ruling, another_fails)
    assert seen == [True]
    assert store.stat(cid) is None


def test_a_return_address_is_kept_and_an_empty_one_leaves_the_document_as_before() -> None:
    assert "return_address" not in BASE.to_json()  # documents published before the field keep their digest
    with_address = replace(BASE, return_address="Returns dept.\n1 Example Road")
    assert with_address.digest != BASE.digest
    assert PolicyDocument.from_json(with_address.to_json()) == with_address


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("\n".join(["a line"] * 7), "at most 6 lines"),
        ("x" * 301, "300 characters"),
        ("\n \n", "only blank lines"),
        ("dock\x00 5", "without NUL"),
    ],
)
def test_a_return_address_must_fit_a_label(address: str, words: str) -> None:
    with pytest.raises(InvalidRequestError, match=words):
        replace(BASE, return_address=address).validate()
