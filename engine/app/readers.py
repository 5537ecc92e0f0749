"""Input formats for ingest: JSON Lines, and survey sheets (CSV, or an Excel workbook's sheet).

Both yield ``(file, line number, JSON object as bytes)``, or a ``str`` in place
of the bytes for a problem the reader found itself; everything after that
(strict decoding, validation, ``FILE:LINE`` messages) is the same for both.

CSV survey sheets (``events.md`` §2): one row per response, one column per
item, the first row naming the columns. UTF-8 with or without BOM, or
GB18030 (what Excel saves on a Chinese Windows), detected. Columns:

- ``id``, ``ruleset``, ``period``, ``subject`` (required), ``form``, ``rater``,
  ``respondent``, ``status``, ``comment``, ``received``: the response's fields;
- ``reason:<item>``: the reason given for that item;
- ``role:<role>``: units credited in that role, separated by ``,`` ``;`` or ``、``;
- any other column: an item; the cell is its answer. A number is taken as a
  number, ``N/A`` as not applicable, an empty cell as no answer.

The fixed columns may also be named in Chinese (:data:`ALIASES`: 编号, 规则,
月份, 被考核单位/被考核部门/被考核人, 评价单位/考核部门/评价人, 客户, 表单, 状态,
备注, 收到日期/日期 (received), and 原因:<item> / 理由:<item>, 角色:<role>, with a full-width colon too).
"""
from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgspec

Line = tuple[str, int, bytes | str]

FIELDS = ("id", "ruleset", "period", "subject", "form", "rater", "respondent", "status", "comment", "received")
#: the columns of a round's form (csat form): the round, and a rater's "no dealings" with the subject
CYCLE = ("round", "no_dealings")
_YES = {"是", "yes", "y", "1", "true", "✓", "√", "x"}
REQUIRED = ("id", "ruleset", "period", "subject")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
#: Chinese names of the fixed columns, as quality offices head their sheets
ALIASES = {"编号": "id", "规则": "ruleset", "规则集": "ruleset", "月份": "period", "期间": "period",
           "考核期": "period", "被考核单位": "subject", "被考核部门": "subject", "被考核人": "subject",
           "评价单位": "rater", "考核部门": "rater", "评价人": "rater", "客户": "respondent", "受访者": "respondent",
           "表单": "form", "问卷": "form", "状态": "status", "备注": "comment", "意见": "comment",
           "轮次": "round", "无业务往来": "no_dealings", "收到日期": "received", "日期": "received"}
_PREFIXES = {"原因": "reason:", "理由": "reason:", "角色": "role:"}


def column_name(header: str, columns: dict[str, str] | None = None) -> str:
    """A header cell as the column it names: ``columns`` first (``--columns MAP.toml``), then the
    Chinese aliases."""
    header = header.strip()
    if columns and header in columns:
        return columns[header]
    if header in ALIASES:
        return ALIASES[header]
    for prefix, canonical in _PREFIXES.items():
        for colon in (":", "："):
            if header.startswith(prefix + colon):
                return canonical + header[len(prefix) + 1:].strip()
    return header
_SPLIT = re.compile(r"[,;、，；]\s*")


#: what the first bytes of a file say it is, when it is not text
_BINARY = ((b"PK\x03\x04", "a zip file (an Excel .xlsx workbook?)"),
           (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook"),
           (b"%PDF", "a PDF document"))
_SAVE_AS = "save the sheet as CSV UTF-8 (Excel: File → Save As → CSV UTF-8) or export JSON Lines"


def binary_kind(head: bytes) -> str | None:
    """A description of a file that is not text, from its first bytes, or None."""
    for magic, what in _BINARY:
        if head.startswith(magic):
            return what
    return None


def _looks_gb(raw: bytes) -> bool:
    try:
        raw.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


STDIN = "-"
_stdin: bytes | None = None


def shown(path: str) -> str:
    """A file as problems name it (standard input as ``<stdin>``)."""
    return "<stdin>" if path == STDIN else path


def _open(path: str) -> IO[bytes]:
    """A file's bytes; ``-`` is standard input (read once, so it can be sniffed and then read)."""
    global _stdin
    if path != STDIN:
        return open(path, "rb")
    if _stdin is None:
        _stdin = sys.stdin.buffer.read()
    return io.BytesIO(_stdin)


def jsonl_lines(path: str) -> Iterator[Line]:
    """The non-blank lines of a JSON Lines file: UTF-8 (BOM tolerated) or UTF-16 with a BOM.

    A file that is not text, or not UTF-8, is one problem naming what it looks like,
    not one per line.
    """
    name, path = shown(path), path
    with _open(path) as f:
        head = f.read(4)
        if (what := binary_kind(head)):
            yield name, 1, f"this is {what}, not JSON Lines: {_SAVE_AS}"
            return
        f.seek(0)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM: what Windows Notepad calls "Unicode"
            try:
                text = f.read().decode("utf-16")
            except UnicodeDecodeError:
                yield name, 1, "not valid UTF-16 text although it starts with a UTF-16 mark: save the file as UTF-8"
                return
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    yield name, number, line.encode("utf-8")
            return
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            if not raw.isascii():
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    hint = " (it looks like GBK/GB18030, as Chinese Windows saves text)" if _looks_gb(raw) else ""
                    yield name, number, (f"not UTF-8 text: byte 0x{raw[e.start]:02x} at column {e.start + 1}{hint}; "
                                         "save the file as UTF-8 (the rest of the file was not read)")
                    return
            yield name, number, raw


class NotText(ValueError):
    """A sheet's bytes are no text csat can read; the message says what to do, ``line`` where."""

    def __init__(self, message: str, line: int = 1):
        super().__init__(message)
        self.line = line


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's "Unicode Text"), else GB18030.

    :raises NotText: naming the first bad byte, for bytes that are none of these.
    """
    if (what := binary_kind(data[:4])):
        raise NotText(f"this is {what}, not a CSV sheet: {_SAVE_AS}")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise NotText(f"not valid UTF-16 text (byte offset {e.start}): {_SAVE_AS}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start
        if not data[:bad].isascii():  # UTF-8 Chinese before it: a damaged UTF-8 file, not GB18030
            line = data[:bad].count(b"\n") + 1
            raise NotText(f"not valid UTF-8: byte 0x{data[bad]:02x} at offset {bad} is not part of any character; "
                          f"{_SAVE_AS}", line) from None
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise NotText(f"not UTF-8, UTF-16 or GB18030 text: byte 0x{data[e.start]:02x} at offset {e.start}; "
                      f"{_SAVE_AS}", line) from None


#: digits a number in a sheet cell may have (a longer run is a paste gone wrong, not an answer)
MAX_DIGITS = 30


def _cell(value: str) -> Any:
    """A cell's answer: a number as a number, anything else as text.

    :raises ValueError: for a number of more than :data:`MAX_DIGITS` digits (the message says so).
    """
    value = value.strip()
    if _NUMBER.match(value):
        digits = len(value) - value.startswith("-") - ("." in value)
        if digits > MAX_DIGITS:
            raise ValueError(f"a number of {digits} digits (expected at most {MAX_DIGITS})")
        return float(value) if "." in value else int(value)
    return value


def csv_lines(path: str, columns: dict[str, str] | None = None) -> Iterator[Line]:
    """Each data row of a CSV survey sheet as a ``response`` object in the ingest format.

    Commas or tabs (Excel's "Unicode Text" is tab-separated UTF-16) are told
    apart from the header row.
    """
    name = shown(path)
    with _open(path) as f:
        data = f.read()
    try:
        text = decode_text(data)
    except NotText as e:
        yield name, e.line, str(e)
        return
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    what = "tab-separated sheet header" if delimiter == "\t" else "CSV header"
    try:
        yield from _sheet_rows(name, reader, columns, what)
    except csv.Error as e:
        yield name, reader.line_num, f"not a readable CSV row: {e}"


def _sheet_rows(path: str, reader: Any, columns: dict[str, str] | None = None,
                what: str = "CSV header") -> Iterator[Line]:
    header = next(reader, None)
    if header is None:
        return
    header = [column_name(h, columns) for h in header]
    missing = [c for c in REQUIRED if c not in header]
    blank = [i + 1 for i, h in enumerate(header) if not h]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        yield path, 1, f"{what}: column `{twice[0]}` appears twice (expected each column once)"
        return
    if missing or blank:
        yield path, 1, (f"{what}: missing column(s) {', '.join(missing)} (expected {', '.join(REQUIRED)} "
                        "and one column per item)" if missing else f"{what}: column {blank[0]} has no name")
        return
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        event: dict[str, Any] = {"type": "response", "answers": {}}
        bad = None
        declined = False
        for name, value in zip(header, row):
            value = value.strip()
            if name in CYCLE:  # a form of a round: its round, and "no dealings with this subject"
                if name == "round" and value:
                    event["round"] = value
                elif name == "no_dealings":
                    declined = value.lower() in _YES
            elif name in FIELDS:
                if value:
                    event[name] = value
            elif name.startswith("reason:"):
                if value:
                    event.setdefault("reasons", {})[name.removeprefix("reason:")] = value
            elif name.startswith("role:"):
                if value:
                    event.setdefault("roles", {})[name.removeprefix("role:")] = [u for u in _SPLIT.split(value) if u]
            elif value:
                try:
                    event["answers"][name] = _cell(value)
                except ValueError as e:
                    bad = bad or f"column `{name}`: {e}"
        if bad:
            yield path, reader.line_num, bad
            continue
        round_id = event.pop("round", None)
        if declined:  # the rater had no dealings with the subject: a no_dealings of the round, no answer
            event = {"type": "no_dealings", "id": f"nd-{event.get('id', '')}", "round": round_id,
                     "rater": event.get("rater"), "subject": event.get("subject")}
        elif not (event["answers"] or event.get("reasons") or event.get("status") or event.get("comment")):
            continue  # a form's row left blank (its subject pre-filled): no return, nothing to ingest
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            yield path, reader.line_num, f"{len(row) - len(header)} cell(s) beyond the last named column"
            continue
        yield path, reader.line_num, msgspec.json.encode(event)


class _SheetRows:
    """A worksheet's rows as a csv reader gives them (lists of text, ``line_num``)."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]):
        self._rows, self.line_num = rows, 0

    def __iter__(self) -> "_SheetRows":
        return self

    def __next__(self) -> list[str]:
        row = next(self._rows)
        self.line_num += 1
        return ["" if v is None else _text(v) for v in row]


def _text(value: Any) -> str:
    """A cell as the text a CSV export would hold (a whole float without its ``.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "strftime"):  # a period typed as a date: its month
        return value.strftime("%Y-%m")
    return str(value)


def xlsx_lines(path: str, sheet: str | None = None, columns: dict[str, str] | None = None) -> Iterator[Line]:
    """Each data row of an Excel workbook's sheet (the first, or ``sheet``) as a ``response``,
    with the same columns as a CSV sheet (openpyxl, read-only: rows are streamed)."""
    try:
        import openpyxl
    except ImportError:
        yield path, 1, f"reading Excel workbooks needs openpyxl: python -m pip install openpyxl (or {_SAVE_AS})"
        return
    name = shown(path)
    try:
        book = openpyxl.load_workbook(_open(path) if path == STDIN else path, read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or encrypted workbook, a .xls renamed
        yield name, 1, f"not a readable .xlsx workbook ({type(e).__name__}: {str(e)[:120]}): {_SAVE_AS}"
        return
    try:
        if sheet is not None and sheet not in book.sheetnames:
            yield name, 1, f"no sheet {sheet!r} (the workbook has {', '.join(book.sheetnames)})"
            return
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        yield from _sheet_rows(name, _SheetRows(ws.iter_rows(values_only=True)), columns, f"sheet {ws.title!r} header")
    finally:
        book.close()


WORKBOOKS = (".xlsx", ".xlsm")


def is_sheet(path: str) -> bool:
    """Is ``path`` (as problems name it) read as a survey sheet (its item columns may be headed by
    item labels)?"""
    if path.lower().endswith((".csv", *WORKBOOKS)):
        return True
    if path.lower().endswith((".jsonl", ".json", ".ndjson")):
        return False
    try:
        return sniff(STDIN if path == "<stdin>" else path) != "jsonl"
    except OSError:
        return False


def column_map(data: Any, source: str) -> dict[str, str]:
    """``--columns MAP.toml`` as ``{sheet header: column}``: a ``[columns]`` table whose values are
    column names as a sheet would have them (``id``, ``subject``, ``reason:quality``, an item id).

    :raises ValueError: one message naming the file and the key.
    """
    table = data.get("columns") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{source}: expected a [columns] table of \"sheet header\" = \"column\" lines")
    for header, column in table.items():
        if not isinstance(column, str) or not column.strip():
            raise ValueError(f"{source}: key `columns.{header}`: expected a column name (text), got {column!r}")
    return {h.strip(): c.strip() for h, c in table.items()}


def sniff(path: str) -> str:
    """What a file holds whatever its name: ``workbook`` (a zip: .xlsx), ``sheet`` (a first line of
    tab- or comma-separated column names, e.g. Excel's "Unicode Text" .txt: UTF-16 with tabs), or
    ``jsonl`` (anything else, JSON Lines' own checks say what is wrong)."""
    with _open(path) as f:
        head = f.read(1 << 16)
    if head.startswith(b"PK\x03\x04"):
        return "workbook"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[:len(head) - len(head) % 2].decode("utf-16", "replace")
    else:
        text = head.decode("utf-8", "replace").lstrip("\ufeff")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first and first[0] not in "{[" and ("\t" in first or "," in first):
        return "sheet"
    return "jsonl"


def lines_of(path: str, sheet: str | None = None, columns: dict[str, str] | None = None) -> Iterator[Line]:
    """The reader for a file, by its extension (``.csv``: a survey sheet; ``.xlsx``/``.xlsm``: a
    workbook's sheet; ``.xls``: refused with what to do), else by what it holds (:func:`sniff`:
    standard input, a ``.txt`` saved by Excel, a ``.jsonl``)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return csv_lines(path, columns)
    if ext in WORKBOOKS:
        return xlsx_lines(path, sheet, columns)
    if ext == ".xls":
        return iter([(path, 1, f"the old .xls format is not read: save it as .xlsx, or {_SAVE_AS}")])
    kind = sniff(path)
    if kind == "workbook":
        return xlsx_lines(path, sheet, columns)
    if kind == "sheet":
        return csv_lines(path, columns)
    return jsonl_lines(path)


def file_lines(paths: Iterable[str | os.PathLike[str]], sheet: str | None = None,
               columns: dict[str, str] | None = None) -> tuple[Iterator[Line], list[str]]:
    """Lines of every file (``sheet``: the sheet of each workbook, default its first; ``columns``:
    sheet headers to column names); unreadable files become problems up front."""
    problems = []
    readable = []
    for p in map(os.fspath, paths):
        if p != STDIN and not os.path.isfile(p):
            problems.append(f"{p}: cannot read: no such file")
        else:
            readable.append(p)

    def gen() -> Iterator[Line]:
        for p in readable:
            yield from lines_of(p, sheet, columns)
    return gen(), problems
