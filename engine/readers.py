"""Input formats for ingest: JSON Lines, and CSV survey sheets.

Both yield ``(file, line number, JSON object as bytes)``, or a ``str`` in place
of the bytes for a problem the reader found itself; everything after that
(strict decoding, validation, ``FILE:LINE`` messages) is the same for both.

CSV survey sheets (``events.md`` §2): one row per response, one column per
item, the first row naming the columns. UTF-8 with or without BOM, or
GB18030 (what Excel saves on a Chinese Windows), detected. Columns:

- ``id``, ``ruleset``, ``period``, ``subject`` (required), ``form``, ``rater``,
  ``respondent``, ``status``, ``comment``: the response's fields;
- ``reason:<item>``: the reason given for that item;
- ``role:<role>``: units credited in that role, separated by ``,`` ``;`` or ``、``;
- any other column: an item; the cell is its answer. A number is taken as a
  number, ``N/A`` as not applicable, an empty cell as no answer.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from typing import Any

import msgspec

Line = tuple[str, int, bytes | str]

FIELDS = ("id", "ruleset", "period", "subject", "form", "rater", "respondent", "status", "comment")
REQUIRED = ("id", "ruleset", "period", "subject")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_SPLIT = re.compile(r"[,;、，；]\s*")


def jsonl_lines(path: str) -> Iterator[Line]:
    """The non-blank lines of a JSON Lines file (UTF-8, BOM tolerated)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if raw.strip():
                yield path, number, raw


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _cell(value: str) -> Any:
    value = value.strip()
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


def csv_lines(path: str) -> Iterator[Line]:
    """Each data row of a CSV survey sheet as a ``response`` object in the ingest format."""
    with open(path, "rb") as f:
        text = decode_text(f.read())
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if missing or blank:
        yield path, 1, (f"CSV header: missing column(s) {', '.join(missing)} (expected {', '.join(REQUIRED)} "
                        "and one column per item)" if missing else f"CSV header: column {blank[0]} has no name")
        return
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        event: dict[str, Any] = {"type": "response", "answers": {}}
        for name, value in zip(header, row):
            value = value.strip()
            if name in FIELDS:
                if value:
                    event[name] = value
            elif name.startswith("reason:"):
                if value:
                    event.setdefault("reasons", {})[name.removeprefix("reason:")] = value
            elif name.startswith("role:"):
                if value:
                    event.setdefault("roles", {})[name.removeprefix("role:")] = [u for u in _SPLIT.split(value) if u]
            elif value:
                event["answers"][name] = _cell(value)
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            yield path, reader.line_num, f"{len(row) - len(header)} cell(s) beyond the last named column"
            continue
        yield path, reader.line_num, msgspec.json.encode(event)


def lines_of(path: str) -> Iterator[Line]:
    """The reader for a file, by its extension (``.csv``: a survey sheet; anything else: JSON Lines)."""
    if os.path.splitext(path)[1].lower() == ".csv":
        return csv_lines(path)
    return jsonl_lines(path)
