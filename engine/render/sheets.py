"""Rows as an Excel workbook (``--format xlsx -o FILE.xlsx``): a header row, frozen panes, numbers
as numbers (exact decimals are written as numbers, not text), nested values as JSON text. A writer:
it depends on no shell (the CLI's renderer calls it)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..errors import CsatError

_JSON = msgspec.json.Encoder(decimal_format="number")


def flat(value: Any) -> Any:
    """A cell's value for a sheet: nested values (a distribution, a list of ids) as JSON text."""
    if isinstance(value, (dict, list)):
        return _JSON.encode(value).decode()
    return value


def write_xlsx(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: str, title: str) -> None:
    """Write ``rows`` (in ``columns`` order) to a one-sheet workbook at ``path``."""
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Font
    except ImportError:
        raise CsatError("writing Excel workbooks needs openpyxl: python -m pip install openpyxl") from None
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]  # Excel's limit on a sheet name
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r in rows:
        sheet.append([flat(r.get(c)) for c in columns])  # a Decimal stays a number
    sheet.freeze_panes = "A2"
    for i, name in enumerate(columns, 1):  # wide enough for the header and a typical value
        width = max([len(str(name))] + [len(str(r.get(name) or "")) for r in rows[:200]])
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = min(60, max(8, width * 1.3))
    book.save(path)
