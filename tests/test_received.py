"""The day a return was received (issue 31, item 5): workbooks handed in on the 27th and keyed in
on the 30th are not late when they say so (`csat ingest --received`, the round workbook's
收到日期 column, a response's `received`); `round status --as-of` counts them by that day; a
day outside the month's first day … the recording day is one line. On SQLite and on a real
PostgreSQL server."""
from __future__ import annotations

import pytest

from conftest import Cli, write_jsonl

from csat.engine import Engine
from csat.engine.app import ingest

RATERS = ["ws-1", "ws-2"]
DEPTS = ["dept-0", "dept-1"]
GOOD = {"attitude": "满意", "response": "满意", "solution": "满意"}


def answer(rater: str, dept: str, **extra) -> dict:
    return {"type": "response", "id": f"a-{rater}-{dept}", "ruleset": "plant-50", "period": "2026-03",
            "subject": dept, "rater": rater, "answers": GOOD, **extra}


@pytest.fixture
def keyed_in_late(db, monkeypatch):
    """Two workshops rate two departments (due 2026-03-28); the clock stands on 2026-03-30."""
    monkeypatch.setattr(ingest, "now", lambda: "2026-03-30T16:00:00.000000Z")
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": u, "kind": "workshop"} for u in RATERS]
                 + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"} for d in DEPTS])
        e.append([{"type": "round", "id": "r", "ruleset": "plant-50", "period": "2026-03", "due": "2026-03-28",
                   "rule": {"raters": "workshop", "subjects": "department"}}])
    return db


def test_returns_keyed_in_late_count_from_the_day_received(keyed_in_late, tmp_path):
    cli = Cli(keyed_in_late)
    ws1 = write_jsonl(tmp_path / "ws-1.jsonl", [answer("ws-1", d) for d in DEPTS])
    ws2 = write_jsonl(tmp_path / "ws-2.jsonl", [answer("ws-2", d) for d in DEPTS])
    cli("ingest", ws1)                                  # keyed in on the 30th: late
    cli("ingest", ws2, "--received", "2026-03-27")      # handed in on the 27th, keyed in on the 30th
    s = cli.json("round", "status", "r")
    assert (s["overall"]["answered"], s["overall"]["late"]) == (4, 2)
    rows = {(a["rater"], a["subject"]): a for a in s["assignments"]}
    assert (rows[("ws-2", "dept-0")]["received"], rows[("ws-2", "dept-0")]["late"]) == ("2026-03-27", False)
    assert rows[("ws-2", "dept-0")]["recorded"].startswith("2026-03-30")
    assert (rows[("ws-1", "dept-0")]["received"], rows[("ws-1", "dept-0")]["late"]) == ("2026-03-30", True)
    by_due = cli.json("round", "status", "r", "--as-of", "2026-03-28")["overall"]
    assert (by_due["answered"], by_due["missing"], by_due["late"]) == (2, 2, 0)  # ws-2's, received by then
    assert cli("ingest", ws2).stdout.startswith("0 appended, 2 already present")  # sent again without the option
    assert "received" in cli("round", "status", "r").stdout
    assert cli("ingest", ws2, "--received", "2026-02-30", expect=2).exit_code == 2


def test_a_received_day_outside_the_month_and_the_recording_day_is_one_line(keyed_in_late, tmp_path):
    cli = Cli(keyed_in_late)
    bad = write_jsonl(tmp_path / "bad.jsonl", [answer("ws-1", "dept-0", received="2026-02-27"),
                                               answer("ws-1", "dept-1", received="2026-03-31"),
                                               answer("ws-2", "dept-0", received="2026-3-27"),
                                               answer("ws-2", "dept-1", received="2026-03-01")])
    lines = cli("ingest", bad, expect=1).stderr.strip().splitlines()
    assert lines[:3] == [
        f"{bad}:1: field `received`: 2026-02-27 is before its month 2026-03 began (expected a day from 2026-03-01 "
        "to 2026-03-30, the day it is recorded)",
        f"{bad}:2: field `received`: 2026-03-31 is after the day it is recorded (2026-03-30): a return is received "
        "on or before the day it is keyed in (expected a day from 2026-03-01 to 2026-03-30)",
        f"{bad}:3: field `received`: expected a date YYYY-MM-DD, got '2026-3-27'"] and len(lines) == 4
    assert "Traceback" not in "\n".join(lines)
    with Engine.open(keyed_in_late) as e:
        assert not list(e.log(type="response"))


def test_the_round_workbook_carries_the_day_received(keyed_in_late, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    cli = Cli(keyed_in_late)
    cli("form", "r", "-o", str(tmp_path / "forms"))
    path = tmp_path / "forms" / "ws-1.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book.active
    heads = [c.value for c in sheet[1]]
    assert heads[:7] == ["编号", "轮次", "规则", "月份", "被考核单位", "评价单位", "收到日期"]
    assert sheet.cell(row=2, column=7).number_format == "@"  # text: what is typed stays YYYY-MM-DD
    for row in (2, 3):
        sheet.cell(row=row, column=7, value="2026-03-27")
        for label in ("服务态度", "响应速度", "问题解决"):
            sheet.cell(row=row, column=heads.index(label) + 1, value="满意")
    book.save(path)
    cli("ingest", str(path))
    sheet_csv = tmp_path / "ws-2.csv"  # an office's own sheet: 日期 is the day received too
    sheet_csv.write_text("编号,规则,月份,被考核部门,评价单位,日期,服务态度,响应速度,问题解决\n"
                         "b-1,plant-50,2026-03,dept-0,ws-2,2026-03-28,满意,满意,满意\n", encoding="utf-8")
    cli("ingest", str(sheet_csv))
    s = cli.json("round", "status", "r")
    got = {(a["rater"], a["subject"]): (a["received"], a["late"]) for a in s["assignments"] if a["received"]}
    assert got == {("ws-1", "dept-0"): ("2026-03-27", False), ("ws-1", "dept-1"): ("2026-03-27", False),
                   ("ws-2", "dept-0"): ("2026-03-28", False)}
    with Engine.open(keyed_in_late) as e:
        assert {r["event"].get("received") for r in e.log(type="response")} == {"2026-03-27", "2026-03-28"}
