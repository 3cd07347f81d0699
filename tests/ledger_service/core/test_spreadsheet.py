"""CSV cells: text that a spreadsheet would run as a formula is neutralized; numbers and plain text are not."""

from __future__ import annotations

import csv
import io

import pytest

from ledger_service.core.spreadsheet import csv_table, safe_cell


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_formula_start_is_neutralized(text: str) -> None:
    assert safe_cell(text) == "'" + text


def test_plain_text_and_none() -> None:
    assert safe_cell("鞋码偏小 too small") == "鞋码偏小 too small"
    assert safe_cell(None) == ""


def test_a_table_keeps_numbers_and_neutralizes_text() -> None:
    rows: list[dict[str, object]] = [
        {"term": "=cmd|' /C calc'!A0", "returns": 3, "difference": -5, "share": -0.25},
        {"term": "ok"},
    ]
    read = list(csv.DictReader(io.StringIO(csv_table(rows))))
    assert read[0] == {"term": "'=cmd|' /C calc'!A0", "returns": "3", "difference": "-5", "share": "-0.25"}
    assert read[1] == {"term": "ok", "returns": "", "difference": "", "share": ""}
    assert csv_table([]) == "\n"
