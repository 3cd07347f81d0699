"""CSV that a spreadsheet opens as data: a text cell that starts like a formula (``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) gets a leading apostrophe, so a consumer's comment such as ``=HYPERLINK(...)`` is shown,
never run (CSV injection). Numbers are written as they are: a negative amount stays a number."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as CSV text, neutralized if it would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_table(rows: Sequence[Mapping[str, object]], *, line_end: str = "\n") -> str:
    """A header line (the first row's keys), then one line per row; text cells through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    columns = list(rows[0]) if rows else []
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c) if isinstance(row.get(c), int | float) else safe_cell(row.get(c)) for c in columns])
    return out.getvalue()
