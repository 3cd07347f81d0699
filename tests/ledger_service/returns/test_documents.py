"""Policy documents and digests: canonical, order-independent, and checked against the contract's limits."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger_service.documents.cid import Cid
from ledger_service.errors import InvalidRequestError
from ledger_service.returns.documents import (
    PolicyDocument,
    canonical_json,
    digest_of,
    inspection_report,
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
