"""Tables in and out (issue 37.6) and JSON without losing digits (37.7): score, what-if, item and
round tables of a fixed schema with exact decimals; every score row with its period's ``kind`` and
the announced keys; a DataFrame appended exactly as the same sheet ingested as CSV."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from csat.engine import IngestFailed, to_json
from csat.engine.read.scoreviews import ANNOUNCED

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
np = pytest.importorskip("numpy")

ITEMS = ("quality", "delivery", "service", "after_sales", "price")


def response(id_: str, period: str, subject: str, answers: tuple, **more: object) -> dict:
    return {"type": "response", "id": id_, "ruleset": "iso-100", "period": period, "subject": subject,
            "answers": dict(zip(ITEMS, answers)), **more}


@pytest.fixture
def scored(engine):
    """iso-100 in two months; ``east`` in March scores 83.10 (a trailing zero to keep)."""
    engine.append([
        {"type": "unit", "id": "east", "name": "华东区"},
        {"type": "unit", "id": "west"},  # (a store with units names only units: issue 31)
        response("r1", "2026-02", "east", (28, 18, 14, 18, 13)),
        response("r2", "2026-02", "west", (20, 14, 10, 12, 9)),
        response("r3", "2026-03", "east", (28.1, 18, 14, 10, 13)),
        response("r4", "2026-03", "west", (25, 16, 12, "N/A", 12)),
    ])
    return engine


def test_score_tables_have_one_schema_whatever_the_rows(scored):
    full = scored.scores(output="arrow")
    empty = scored.scores(ruleset="iso-100", period="2031-01", output="arrow")
    assert empty.num_rows == 0 and full.num_rows > 0
    assert full.schema == empty.schema == scored.scores(period="2026-03", vs="2026-02", output="arrow").schema
    assert full.schema.field("score").type == pa.decimal128(38, 2)  # iso-100 publishes 2 places
    assert full.schema.names[:7] == ["ruleset", "adoption", "period", "kind", "subject", "subject_name", "metric"]
    assert {"announced", "announced_delta", "announced_on", "extras"} <= set(full.schema.names)
    frame = scored.scores(period="2031-01", output="pandas")
    assert list(frame.columns) == full.schema.names and len(frame) == 0


def test_decimals_are_the_rows_figures_exactly(scored):
    rows = scored.scores()
    table = scored.scores(output="arrow")
    assert table.column("score").to_pylist() == [r["score"] for r in rows]
    frame = scored.scores(output="pandas")
    march = frame[(frame.period == "2026-03") & (frame.subject == "east")].iloc[0]
    assert isinstance(march.score, Decimal) and str(march.score) == "83.10"  # not 83.1, not a float
    assert march.kind == "month" and march.subject_name == "华东区"
    assert json.loads(march.extras, parse_float=Decimal) == {"grades": {"A": 0, "B": 1, "C": 0, "D": 0},
                                                              "suggestions": 0}
    assert [str(v) for v in frame.score] == [str(r["score"]) for r in rows]


def test_every_score_row_has_its_kind_and_the_announced_keys(scored):
    rows = scored.scores()
    assert {r["kind"] for r in rows} == {"month", "quarter", "year"}
    assert all(r["kind"] == ("quarter" if "Q" in r["period"] else "month" if "-" in r["period"] else "year")
               for r in rows)
    assert {(r["period"], r["kind"]) for r in rows} >= {("2026-03", "month"), ("2026-Q1", "quarter"), ("2026", "year")}
    assert all(set(ANNOUNCED) <= r.keys() and all(r[k] is None for k in ANNOUNCED) for r in rows)
    assert list(rows[0])[:4] == ["ruleset", "adoption", "period", "kind"]
    scored.append([{"type": "announcement", "id": "a-03", "ruleset": "iso-100", "period": "2026-03",
                    "date": "2026-04-03"},
                   {"type": "correction", "id": "c1", "response": "r4", "answers": dict(zip(ITEMS, (25, 16, 12, 20, 12))),
                    "reason": "售后 answered late"}])
    rows = scored.scores()
    assert len({tuple(r) for r in rows}) == 1  # the same keys, in the same order, on every row
    moved = [r for r in rows if r["announced_on"] is not None]
    assert [(r["period"], r["subject"]) for r in moved] == [("2026-03", "west")]
    assert moved[0]["announced"] == Decimal("81.25") and moved[0]["announced_events"] == ["c1"]
    assert all(r["announced"] is None and r["announced_delta"] is None for r in rows if r not in moved)
    past = scored.scores(as_of=5)  # as of a position: the same keys
    assert past and all(tuple(r) == tuple(rows[0]) for r in past)
    table = scored.scores(output="arrow")
    assert table.column("announced").to_pylist() == [r["announced"] for r in rows]
    assert table.column("announced_events").to_pylist() == [r["announced_events"] for r in rows]
    announced = scored.scores(period="2026-03", announced=True)
    assert all(r["kind"] == "month" and set(ANNOUNCED) <= r.keys() for r in announced)
    assert scored.scores(period="2026-03", announced=True, output="arrow").schema == table.schema


def test_whatif_items_and_round_status_tables(scored):
    rows = scored.whatif("iso-100", {"precision": 3}, all=True)
    table = scored.whatif("iso-100", {"precision": 3}, all=True, output="arrow")
    assert table.column("after").to_pylist() == [r["after"] for r in rows] and rows
    assert table.schema.field("after").type == pa.decimal128(38, 3)  # widened: no digit of a what-if lost
    assert set(table.column("kind").to_pylist()) == {"month", "quarter", "year"}
    items = scored.items("iso-100", "2026-03", output="pandas")
    assert list(items.item) == [r["item"] for r in scored.items("iso-100", "2026-03")]
    assert str(items.attainment.iloc[0]) == str(scored.items("iso-100", "2026-03")[0]["attainment"])
    assert scored.items("iso-100", "2031-01", output="arrow").schema == scored.items(
        "iso-100", "2026-03", output="arrow").schema
    scored.append([{"type": "round", "id": "q1", "ruleset": "iso-100", "period": "2026-03", "due": "2026-03-31",
                    "assignments": [{"rater": "hq", "subjects": ["east", "west"]}]}])
    status = scored.round_status("q1", output="pandas")
    assert list(status.subject) == ["east", "west"] and set(status.status) == {"missing"}
    assert (status["round"] == "q1").all() and (status.kind == "month").all()
    with pytest.raises(Exception, match="output: expected one of rows, pandas, arrow"):
        scored.scores(output="polars")


SHEET_HEADER = "编号,规则,月份,被考核单位,评价单位,产品质量,delivery,service,after_sales,price,原因:quality,备注"


def test_a_frame_appends_as_its_csv_would(engine, fresh_db, tmp_path):
    """The same responses as a CSV sheet and as a DataFrame (a NaN comment, a 不适用 cell, numpy
    numbers, Chinese headers and an item label): the same events stored."""
    csv = tmp_path / "march.csv"
    csv.write_text(SHEET_HEADER + "\n"
                   "f1,iso-100,2026-03,east,c1,28.1,18,14,10,13,太慢,\n"
                   "f2,iso-100,2026-03,west,c2,25,16,12,N/A,12,,希望改进\n", encoding="utf-8")
    from csat.engine import Engine
    with Engine.open(fresh_db("csv")) as by_csv:
        by_csv.ingest([csv])
        want = [(r["type"], r["event"]) for r in by_csv.log()]
    frame = pd.DataFrame({"编号": ["f1", "f2"], "规则": "iso-100", "月份": "2026-03", "被考核单位": ["east", "west"],
                          "评价单位": ["c1", "c2"], "产品质量": [28.1, 25.0], "delivery": np.array([18, 16], dtype="int64"),
                          "service": [np.int64(14), 12], "after_sales": [10, "不适用"], "price": [13, 12],
                          "原因:quality": ["太慢", None], "备注": [np.nan, "希望改进"]})
    report = engine.append_frame(frame, na="不适用")
    assert report.events == 2
    got = [(r["type"], r["event"]) for r in engine.log()]
    assert got == want
    assert got[-1][1]["answers"] == {"quality": 25, "delivery": 16, "service": 12, "after_sales": "N/A", "price": 12}
    assert type(got[-1][1]["answers"]["quality"]) is int and got[-2][1]["answers"]["quality"] == 28.1
    assert "comment" not in got[-2][1] and got[-1][1]["comment"] == "希望改进"
    assert engine.append_frame(frame, na="不适用").present == 2  # idempotent, as an ingest is


def test_frame_problems_name_the_row_and_nothing_is_appended(engine):
    frame = pd.DataFrame({"id": ["g1", "g2"], "ruleset": "iso-100", "period": "2026-03", "subject": "east",
                          "quality": [30, np.nan], "delivery": 20, "service": 15, "after_sales": 20, "price": 15},
                         index=[3, 7])
    with pytest.raises(IngestFailed) as e:
        engine.append_frame(frame)
    assert e.value.problems == ["frame:row 7: field `answers.quality`: missing item (answer it with points or \"N/A\")"]
    assert list(engine.log()) == []
    with pytest.raises(IngestFailed) as e:
        engine.append_frame(frame.drop(columns=["subject"]), source="march")
    assert e.value.problems[0].startswith("march: columns: missing column(s) subject")
    mapped = frame.rename(columns={"id": "回访单号"}).drop(index=7)
    assert engine.append_frame(mapped, columns={"回访单号": "id"}, dry_run=True).appended >= 1


def test_to_json_keeps_every_digit(scored):
    row = next(r for r in scored.scores(period="2026-03") if r["subject"] == "east")
    assert b'"score":83.10' in to_json(row) and b'"score":"83.10"' in to_json(row, decimals="string")
    assert json.loads(to_json(row), parse_float=Decimal)["score"] == Decimal("83.10")
    import datetime
    assert to_json({"d": datetime.date(2026, 4, 3), "n": np.int64(3), "t": pd.Timestamp("2026-04-03")}) == (
        b'{"d":"2026-04-03","n":3,"t":"2026-04-03T00:00:00"}')


def test_the_engine_needs_neither_pandas_nor_pyarrow(tmp_path):
    """Without them the engine works and a table says what to install."""
    script = ("import sys; sys.modules['pandas'] = sys.modules['pyarrow'] = None\n"
              "from csat.engine import Engine, CsatError\n"
              f"e = Engine.open({str(tmp_path / 'x.db')!r})\n"
              "assert e.scores() == []\n"
              "try:\n    e.scores(output='pandas')\nexcept CsatError as x:\n    print(x)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "pip install 'csat[frames]'" in out
