"""Spreadsheet and CSV helpers (openpyxl for .xlsx: pure Python, small, well kept)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from maskgen.datasets.readers.optional import require

_NUMBER = re.compile(r"(\d+)")


def read_sheet(path: Path) -> tuple[list[str], list[tuple]]:
    """(header, data rows) of the first worksheet; empty rows dropped. Raises ValueError."""
    load_workbook = require("openpyxl", "reading .xlsx sheets (UDIAT, HMC-QU)").load_workbook
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zipfile/KeyError/InvalidFileException variants
        raise ValueError(f"cannot read spreadsheet: {type(err).__name__}: {err}") from err
    try:
        rows = [tuple(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()
    rows = [r for r in rows if any(v is not None and str(v).strip() for v in r)]
    if not rows:
        raise ValueError("spreadsheet is empty")
    header = [str(v).strip() if v is not None else "" for v in rows[0]]
    return header, rows[1:]


def read_csv_rows(path: Path) -> list[list[str]]:
    """Rows of a small CSV file (comma or semicolon separated), whitespace stripped."""
    text = path.read_text(encoding="utf-8-sig")
    dialect = ";" if text.count(";") > text.count(",") else ","
    return [[c.strip() for c in row] for row in csv.reader(text.splitlines(), delimiter=dialect) if row]


def stem_number(value) -> int | None:
    """The integer in ``000012``, ``12``, ``12.0``, ``000012.png`` (None if there is none)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    match = _NUMBER.search(Path(str(value)).stem if "." in str(value) else str(value))
    return int(match.group(1)) if match else None
