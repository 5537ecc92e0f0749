"""CSV survey sheets: one row per response, one column per item; UTF-8 (BOM or not) or GB18030."""
from __future__ import annotations

import os

from decimal import Decimal

from conftest import EXAMPLES

HEADER = "id,ruleset,period,subject,rater,attitude,response,solution,reason:response,comment\n"
ROWS = [
    "p1,plant-50,2026-03,purchasing,workshop-1,满意,不满意,满意,等料三天,\n",
    "p2,plant-50,2026-03,purchasing,workshop-2,满意,满意,满意,,\n",
    "p3,plant-50,2026-03,purchasing,workshop-3,满意,不满意,满意,等料三天,请提前备料\n",
    "p4,plant-50,2026-03,purchasing,workshop-4,满意,满意,N/A,,\n",
]


def test_a_gb18030_sheet_scores_like_the_json_lines(cli, tmp_path):
    sheet = tmp_path / "purchasing.csv"
    sheet.write_bytes((HEADER + "".join(ROWS)).encode("gb18030"))
    assert cli("ingest", str(sheet)).stdout.strip() == "5 appended, 0 already present"  # + implicit adoption
    (row,) = cli.json("scores", "--period", "2026-03", "--subject", "purchasing")
    assert (row["score"], row["grade"], row["workshops"]) == (Decimal("38.89"), "weak", 4)  # as the spec example
    (logged,) = cli.json("log", "--id", "p3")
    assert logged["event"]["reasons"] == {"response": "等料三天"} and logged["event"]["comment"] == "请提前备料"
    p2 = cli.json("log", "--id", "p2")[0]["event"]
    assert p2["answers"] == {"attitude": "满意", "response": "满意", "solution": "满意"} and "reasons" not in p2
    assert cli.json("log", "--id", "p4")[0]["event"]["answers"]["solution"] == "N/A"


def test_utf8_with_bom_numbers_and_roles(cli, tmp_path):
    sheet = tmp_path / "iso.csv"
    sheet.write_bytes("\ufeffid,ruleset,period,subject,rater,quality,delivery,service,after_sales,price\n"
                      "c1,iso-100,2026-11,company,c1,28,18,14,18,13\n"
                      "c4,iso-100,2026-11,company,c4,27.5,19,14,N/A,13\n".encode("utf-8"))
    cli("ingest", str(sheet))
    (row,) = cli.json("scores", "--period", "2026-11")
    assert row["score"] == Decimal("91.44")  # (91 + 100 × 73.5 / 80) / 2 = (91 + 91.875) / 2 = 91.4375
    dealer = tmp_path / "jobs.csv"
    dealer.write_text("id,ruleset,form,period,subject,role:workshop,q1,q2,q3,q4,q5,q6\n"
                      "j1,dealership-cs,service,2026-03,sa1,\"bay-1, bay-2\",很好,很好,不满意,很好,很好,很好\n",
                      encoding="utf-8")
    cli("ingest", str(dealer))
    rows = cli.json("scores", "--ruleset", "dealership-cs", "--metric", "repair_quality", "--period", "2026-03")
    assert {r["subject"] for r in rows} == {"bay-1", "bay-2"}


def test_sheet_problems_are_one_line_each_with_the_row(cli, tmp_path):
    sheet = tmp_path / "bad.csv"
    sheet.write_text("id,ruleset,period,subject,rater,attitude\n"
                     "b1,plant-50,2026-13,d,w1,满意\n"
                     "b2,plant-50,2026-03,d,w1,很好\n"
                     "b3,plant-50,2026-03,d,w1,满意,extra\n", encoding="utf-8")
    lines = cli("ingest", str(sheet), expect=1).stderr.splitlines()
    assert lines[0] == f"{sheet}:2: field `period`: expected a real month YYYY-MM (01-12), got '2026-13'"
    assert lines[1].startswith(f"{sheet}:3: field `answers.attitude`: expected a level")
    assert lines[2] == f"{sheet}:4: 1 cell(s) beyond the last named column"
    headless = tmp_path / "headless.csv"
    headless.write_text("id,period,subject\nx,2026-01,d\n", encoding="utf-8")
    r = cli("ingest", str(headless), expect=1)
    assert r.stderr.splitlines()[0].startswith(f"{headless}:1: CSV header: missing column(s) ruleset")


def test_sheet_and_json_lines_in_one_call_are_all_or_nothing(cli, tmp_path, db):
    sheet = tmp_path / "bad.csv"
    sheet.write_text("id,ruleset,period,subject,rater,attitude\nb1,plant-50,2026-03,d,w1,好\n", encoding="utf-8")
    cli("ingest", str(EXAMPLES / "plant-50.jsonl"), str(sheet), expect=1)
    if db.startswith("postgresql://"):
        assert cli.json("log") == []
    else:  # a failed first ingest leaves no empty store behind (issue 20.14)
        assert not os.path.exists(db) and not os.path.exists(db + "-wal")


def test_chinese_column_headers_read_as_the_fixed_columns(cli, tmp_path):
    english = tmp_path / "en.csv"
    english.write_bytes((HEADER + "".join(ROWS)).encode("utf-8"))
    chinese = tmp_path / "zh.csv"
    chinese.write_bytes(("编号,规则,月份,被考核部门,评价单位,attitude,response,solution,原因：response,备注\n"
                         + "".join(r.replace("p", "z", 1) for r in ROWS)).encode("gb18030"))
    cli("ingest", str(english))
    cli("ingest", str(chinese))
    for p, z in (("p1", "z1"), ("p3", "z3")):
        a, b = cli.json("log", "--id", p)[0]["event"], cli.json("log", "--id", z)[0]["event"]
        assert {k: v for k, v in a.items() if k != "id"} == {k: v for k, v in b.items() if k != "id"}
    bad = tmp_path / "bad.csv"
    bad.write_text("编号,id,规则,月份,被考核单位,q\nx,y,plant-50,2026-03,a,满意\n", encoding="utf-8")
    assert "column `id` appears twice" in cli("ingest", str(bad), expect=1).stderr


def test_item_columns_may_be_headed_by_their_labels(cli, tmp_path):
    """A sheet headed 产品质量, 交付准时性, … (iso-100's item labels) reads as quality, delivery, …"""
    by_id = tmp_path / "ids.csv"
    by_id.write_text("id,ruleset,period,subject,quality,delivery,service,after_sales,price,reason:price\n"
                     "a1,iso-100,2026-11,company,28,18,14,18,13,贵\n", encoding="utf-8")
    by_label = tmp_path / "labels.csv"
    by_label.write_text("编号,规则,月份,被考核单位,产品质量,交付准时性,服务态度,售后服务,价格合理性,原因:价格合理性\n"
                        "b1,iso-100,2026-11,company,28,18,14,18,13,贵\n", encoding="utf-8")
    cli("ingest", str(by_id))
    cli("ingest", str(by_label))
    a, b = cli.json("log", "--id", "a1")[0]["event"], cli.json("log", "--id", "b1")[0]["event"]
    assert a["answers"] == b["answers"] and a["reasons"] == b["reasons"] == {"price": "贵"}
    assert cli("ingest", str(by_label)).stdout.startswith("0 appended, 1 already present")  # idempotent


def test_a_column_map_names_any_headers(cli, tmp_path):
    """--columns MAP.toml: a quality office's own headers, mapped once."""
    sheet = tmp_path / "own.csv"
    sheet.write_text("回访单号,考核表,考核月,车间,打分人,态度,响应,方案,响应原因\n"
                     + "".join(r.replace("p", "m", 1) for r in ROWS[:2]).replace(",\n", "\n").replace(",,\n", ",\n"),
                     encoding="utf-8")
    mapping = tmp_path / "map.toml"
    mapping.write_text('[columns]\n"回访单号" = "id"\n"考核表" = "ruleset"\n"考核月" = "period"\n"车间" = "subject"\n'
                       '"打分人" = "rater"\n"态度" = "attitude"\n"响应" = "response"\n"方案" = "solution"\n'
                       '"响应原因" = "reason:response"\n', encoding="utf-8")
    english = tmp_path / "en.csv"
    english.write_text(HEADER + "".join(ROWS[:2]), encoding="utf-8")
    cli("ingest", str(english))
    cli("ingest", str(sheet), "--columns", str(mapping))
    a, b = cli.json("log", "--id", "p1")[0]["event"], cli.json("log", "--id", "m1")[0]["event"]
    assert {k: v for k, v in a.items() if k not in ("id", "comment")} == \
        {k: v for k, v in b.items() if k not in ("id", "comment")}
    bad = tmp_path / "bad.toml"
    bad.write_text('[columns]\n"打分人" = 3\n', encoding="utf-8")
    err = cli("ingest", str(sheet), "--columns", str(bad), expect=1).stderr
    assert err.strip() == f"csat: {bad}: key `columns.打分人`: expected a column name (text), got 3"
