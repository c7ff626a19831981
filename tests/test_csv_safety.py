"""CSV cells an inspector opens in a spreadsheet never run as formulas, and still give back the real values."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldchain.reporting.tables import csv_cell, csv_value


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x.example/",  "open")', '\'=HYPERLINK("http://x.example/",  "open")'),  # the attack
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),  # looks numeric, is a formula
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'quoted", "''quoted"),  # an apostrophe first: doubled, so the real value comes back
        ("-3.5", "-3.5"),  # numbers are left alone
        ("+4", "+4"),
        ("1e-3", "1e-3"),
        ("L123", "L123"),
        ("", ""),
        (None, ""),
        (-3.5, -3.5),  # not text
    ],
)
def test_cells(value: object, cell: object) -> None:
    """Text that a spreadsheet would run gets a leading apostrophe; numbers and plain text stay."""
    assert csv_cell(value) == cell


@given(st.text())
def test_round_trip(value: str) -> None:
    """Written and read back through the csv module, every text is its real value again."""
    out = io.StringIO()
    csv.writer(out).writerow([csv_cell(value)])
    (row,) = csv.reader(io.StringIO(out.getvalue()))
    assert csv_value(row[0] if row else "") == value
    cell = row[0] if row else ""
    assert cell[:1] not in ("=", "@", "\t", "\r") and (cell[:1] not in ("+", "-") or _is_number(cell))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
