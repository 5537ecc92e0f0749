"""Spreadsheets in and out (issue 15): Excel workbooks ingested like CSV sheets, scores and cases
exported as workbooks with numbers as numbers, CSV that Chinese Excel opens right (a BOM)."""
from __future__ import annotations

import json
from decimal import Decimal

import openpyxl

from conftest import EXAMPLES
from test_csv import HEADER, ROWS


def workbook(path, sheets: dict[str, list[list]]) -> str:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(row)
    book.save(path)
    return str(path)


def plant_rows(prefix: str) -> list[list]:
    rows = [HEADER.strip().split(",")]
    for line in ROWS:
        cells = line.rstrip("\n").split(",")
        rows.append([prefix + cells[0][1:], *[c or None for c in cells[1:]]])
    return rows


def test_a_workbook_sheet_ingests_like_the_csv_sheet(cli, tmp_path):
    csv_sheet = tmp_path / "p.csv"
    csv_sheet.write_text(HEADER + "".join(ROWS), encoding="utf-8")
    book = workbook(tmp_path / "p.xlsx", {"说明": [["read me"]], "四月": plant_rows("x")})
    cli("ingest", str(csv_sheet))
    assert "no sheet '五月' (the workbook has 说明, 四月)" in cli("ingest", book, "--sheet", "五月", expect=1).stderr
    out = cli("ingest", book, "--sheet", "四月")
    assert out.stdout.startswith("4 appended")
    for n in "1234":
        a, b = cli.json("log", "--id", f"p{n}")[0]["event"], cli.json("log", "--id", f"x{n}")[0]["event"]
        assert {k: v for k, v in a.items() if k != "id"} == {k: v for k, v in b.items() if k != "id"}
    # the first sheet by default: here a note, not a survey — one line naming the missing columns
    assert "missing column(s) id, ruleset, period, subject" in cli("ingest", book, expect=1).stderr


def test_numbers_typed_in_excel_stay_numbers(cli, tmp_path):
    book = workbook(tmp_path / "iso.xlsx", {"Sheet": [
        ["编号", "规则", "月份", "被考核单位", "评价单位", "quality", "delivery", "service", "after_sales", "price"],
        ["c1", "iso-100", "2026-11", "company", "c1", 28, 18, 14, 18, 13],
        ["c4", "iso-100", "2026-11", "company", "c4", 27.5, 19.0, 14, "N/A", 13]]})
    cli("ingest", book)
    (row,) = cli.json("scores", "--period", "2026-11")
    assert row["score"] == Decimal("91.44")  # as from the CSV sheet (test_csv)


def test_scores_and_cases_export_as_workbooks(cli, tmp_path):
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"), str(EXAMPLES / "plant-50.jsonl"))
    out = tmp_path / "scores.xlsx"
    cli("scores", "--format", "xlsx", "-o", str(out))
    published = cli.json("scores")
    ws = openpyxl.load_workbook(out).active
    assert ws.freeze_panes == "A2"
    header, *rows = list(ws.iter_rows(values_only=True))
    assert header[:4] == ("ruleset", "period", "subject", "subject_name") and len(rows) == len(published)
    for values, row in zip(rows, published):
        got = dict(zip(header, values))
        assert isinstance(got["score"], (int, float)) and Decimal(str(got["score"])) == row["score"]
        assert got["subject_name"] == row["subject_name"] and got["responses"] == row["responses"]
    cases = tmp_path / "cases.xlsx"
    cli("complaints", "--format", "xlsx", "-o", str(cases))
    case_rows = list(openpyxl.load_workbook(cases).active.iter_rows(values_only=True))
    assert len(case_rows) == 1 + len(cli.json("complaints"))
    assert "give -o FILE.xlsx" in cli("scores", "--format", "xlsx", expect=2).stderr


def test_csv_for_chinese_excel_has_a_bom(cli, tmp_path):
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"))
    target = tmp_path / "s.csv"
    cli("scores", "--format", "csv", "-o", str(target))
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "王伟" in data.decode("utf-8-sig")
    assert data.decode("utf-8-sig").rstrip("\n") == cli("scores", "--format", "csv").stdout.rstrip("\n")
    assert not cli("scores", "--format", "csv").stdout.startswith("\ufeff")
    assert cli("scores", "--format", "csv", "--bom").stdout.startswith("\ufeff")
    as_json = tmp_path / "s.json"
    cli("rectifications", "--format", "json", "-o", str(as_json))
    assert json.loads(as_json.read_text(encoding="utf-8")) == json.loads(cli("rectifications", "--format", "json").stdout)
