"""Assessment rounds (issue 22, first part): who rates whom by a rule over the org chart, the
returns by the due date — answered, declined (no dealings), missing, late — and 回收率 per rater,
per subject and overall, as of any date; on both backends, through a rebuild as well."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from conftest import Cli, connect

from csat.engine import Engine, IngestFailed
from csat.engine.app import ingest

WORKSHOPS = [f"ws-{i}" for i in range(1, 6)]
DEPARTMENTS = [f"dept-{i}" for i in range(10)]


def answer(ws: str, dept: str) -> dict:
    return {"type": "response", "id": f"r-{ws}-{dept}", "ruleset": "plant-50", "period": "2026-03", "subject": dept,
            "rater": ws, "answers": {"attitude": "满意", "response": "满意", "solution": "满意"}}


@pytest.fixture
def plant_round(db, monkeypatch):
    """5 workshops × 10 departments by rule: ws-1 and ws-3 answer all, ws-2 answers 8 and had no
    dealings with 2, ws-4 answers after the due date, ws-5 not at all."""
    clock = {"now": "2026-03-20T10:00:00.000000Z"}
    monkeypatch.setattr(ingest, "now", lambda: clock["now"])
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": u, "kind": "workshop", "name": f"车间{u[-1]}"} for u in WORKSHOPS]
                 + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"} for d in DEPARTMENTS])
        e.append([{"type": "round", "id": "plant-2026-03", "ruleset": "plant-50", "period": "2026-03",
                   "due": "2026-03-28", "rule": {"raters": "workshop", "subjects": "department"}}])
        e.append([answer(ws, d) for ws in ("ws-1", "ws-3") for d in DEPARTMENTS]
                 + [answer("ws-2", d) for d in DEPARTMENTS[:8]]
                 + [{"type": "no_dealings", "id": f"nd-ws-2-{d}", "round": "plant-2026-03", "rater": "ws-2",
                     "subject": d, "reason": "did not serve us in March"} for d in DEPARTMENTS[8:]])
        clock["now"] = "2026-03-30T09:00:00.000000Z"
        e.append([answer("ws-4", d) for d in DEPARTMENTS])
    return db


def test_the_returns_of_a_round_by_the_due_date(plant_round):
    with Engine.open(plant_round) as e:
        s = e.round_status("plant-2026-03")
        assert s["overall"] == {"assigned": 50, "answered": 38, "declined": 2, "missing": 10, "late": 10,
                                "rate": "79.2"}  # 38 of 48
        by = {r["rater"]: r for r in s["raters"]}
        assert (by["ws-1"]["rate"], by["ws-2"]["rate"], by["ws-4"]["late"], by["ws-5"]["rate"]) == \
            ("100.0", "100.0", 10, "0.0")
        assert by["ws-2"]["declined"] == 2 and by["ws-2"]["assigned"] == 10
        depts = {r["subject"]: r for r in s["subjects"]}
        assert depts["dept-9"]["declined"] == 1 and depts["dept-9"]["rate"] == "75.0"  # ws-1, ws-3, ws-4 of 4
        missing = [(r["rater"], r["subject"]) for r in s["assignments"] if r["status"] == "missing"]
        assert missing == [("ws-5", d) for d in DEPARTMENTS]
        on_time = e.round_status("plant-2026-03", as_of="2026-03-28")  # ws-4 had not answered by then
        assert on_time["overall"]["answered"] == 28 and on_time["overall"]["rate"] == "58.3"
        assert e.rounds() == [{"round": "plant-2026-03", "ruleset": "plant-50", "period": "2026-03",
                               "due": "2026-03-28", "closed": None}]
        before = e.store.conn.execute("SELECT * FROM rm_rounds ORDER BY position").fetchall()
        e.rebuild()  # the replay records rounds as the incremental path does
        assert e.store.conn.execute("SELECT * FROM rm_rounds ORDER BY position").fetchall() == before
        assert e.round_status("plant-2026-03") == s


def test_round_commands(plant_round, tmp_path):
    cli = Cli(plant_round)
    text = cli("round", "status", "plant-2026-03").stdout
    assert "回收率 79.2 % · answered 38 of 48 (declined 2, missing 10, late 10)" in text and "部门0" in text
    data = json.loads(cli("round", "status", "plant-2026-03", "--missing", "--format", "json").stdout,
                      parse_float=Decimal)
    assert {(r["rater"], r["status"]) for r in data["assignments"]} == {("ws-5", "missing")}
    sheet = tmp_path / "chase.csv"
    cli("round", "status", "plant-2026-03", "--missing", "--format", "csv", "-o", str(sheet))
    assert sheet.read_bytes().startswith(b"\xef\xbb\xbf") and sheet.read_text("utf-8-sig").count("ws-5") == 10
    assert cli("round", "close", "plant-2026-03", "--date", "2026-04-02").stdout.startswith("1 appended")
    assert "closed 2026-04-02" in cli("round", "status", "plant-2026-03").stdout
    late = {"type": "no_dealings", "id": "nd-late", "round": "plant-2026-03", "rater": "ws-5", "subject": "dept-0"}
    with Engine.open(plant_round) as e, pytest.raises(IngestFailed) as err:
        e.append([late])
    assert err.value.problems == ["events[0]: field `round`: round 'plant-2026-03' is closed"]
    assert "no round 'nope'" in cli("round", "status", "nope", expect=1).stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "r2"\nruleset = "plant-50"\nperiod = "2026-04"\ndue = "2026-04-31"\n', encoding="utf-8")
    err = cli("round", "open", str(bad), expect=1).stderr
    assert f"{bad}:1: field `due`: expected a real date" in err


def test_a_round_of_named_raters_and_their_managers(db):
    """The airline's case: a round whose assignments name each rating unit's managers."""
    with Engine.open(db) as e:
        e.append([{"type": "round", "id": "air-2026-03", "ruleset": "airline-1000", "period": "2026-03",
                   "due": "2026-03-25", "assignments": [
                       {"rater": "flight-ops", "subjects": ["finance", "hr"], "respondents": ["flight-ops/gm"]},
                       {"rater": "maintenance", "subjects": ["finance"]}]}])
        e.append([{"type": "response", "id": "q1", "ruleset": "airline-1000", "period": "2026-03",
                   "subject": "finance", "rater": "flight-ops", "respondent": "flight-ops/gm",
                   "answers": {"quality": "A"}}])
        s = e.round_status("air-2026-03")
        assert [(r["rater"], r["subject"], r["status"]) for r in s["assignments"]] == [
            ("flight-ops", "finance", "answered"), ("flight-ops", "hr", "missing"), ("maintenance", "finance", "missing")]
        assert s["assignments"][0]["respondents"] == ["flight-ops/gm"] and s["overall"]["rate"] == "33.3"
        e.append([{"type": "response", "id": "q2", "ruleset": "airline-1000", "period": "2026-03", "subject": "finance",
                   "rater": "flight-ops", "respondent": "flight-ops/deputy", "answers": {"quality": "A"}},
                  {"type": "response", "id": "q3", "ruleset": "airline-1000", "period": "2026-03", "subject": "finance",
                   "rater": "maintenance", "respondent": "maintenance/gm", "answers": {"quality": "B"}}])
        (row,) = e.scores(ruleset="airline-1000", period="2026-03", subject="finance")
        # the rating unit's figure is the mean of its managers' questionnaires, and the units weigh the
        # same: (mean(1000, 1000) + 800) / 2 = 900, not the pooled (1000 + 1000 + 800) / 3
        assert row["score"] == Decimal("900.00") and e.round_status("air-2026-03")["overall"]["answered"] == 2
    with connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM rm_rounds").fetchone()[0] == 1


def test_forms_out_and_back_in_equal_the_json_lines_path(db, fresh_db, tmp_path):
    """`csat form` writes each workshop's workbook; filled as a person fills it (openpyxl), it
    ingests unchanged and publishes the figures the same answers publish as JSON Lines."""
    openpyxl = pytest.importorskip("openpyxl")
    opening = ([{"type": "unit", "id": u, "kind": "workshop"} for u in WORKSHOPS]
               + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"} for d in DEPARTMENTS]
               + [{"type": "round", "id": "plant-2026-03", "ruleset": "plant-50", "period": "2026-03",
                   "due": "2026-03-28", "rule": {"raters": "workshop", "subjects": "department"}}])
    sheets, lines = fresh_db("sheets"), fresh_db("lines")
    for target in (sheets, lines):
        with Engine.open(target) as e:
            e.append(opening)
    cli = Cli(sheets)
    out = cli("form", "plant-2026-03", "-o", str(tmp_path / "forms")).stdout
    assert out.count("wrote ") == 5
    path = tmp_path / "forms" / "ws-1.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book.active
    heads = [c.value for c in sheet[1]]
    assert heads[:6] == ["编号", "轮次", "规则", "月份", "被考核单位", "评价单位"] and heads[-1] == "无业务往来"
    assert "服务态度" in heads and "原因：响应速度" in heads
    lists = [dv.formula1 for dv in sheet.data_validations.dataValidation]
    assert '"满意,一般,不满意,很不满意,N/A"' in lists
    assert sheet.cell(row=1, column=heads.index("响应速度") + 1).comment is not None
    answered = []
    for row in (10, 11):  # the last two departments: no dealings this month
        sheet.cell(row=row, column=len(heads), value="是")
    for row in range(2, 10):  # eight departments answered
        subject = sheet.cell(row=row, column=heads.index("被考核单位") + 1).value
        answers = {"attitude": "满意", "response": "不满意" if row % 2 else "一般", "solution": "满意"}
        for item, label in (("attitude", "服务态度"), ("response", "响应速度"), ("solution", "问题解决")):
            sheet.cell(row=row, column=heads.index(label) + 1, value=answers[item])
        reasons = {}
        if answers["response"] == "不满意":
            reasons["response"] = f"{subject} slow"
            sheet.cell(row=row, column=heads.index("原因：响应速度") + 1, value=reasons["response"])
        answered.append({"type": "response", "id": sheet.cell(row=row, column=1).value, "ruleset": "plant-50",
                         "period": "2026-03", "subject": subject, "rater": "ws-1", "answers": answers,
                         **({"reasons": reasons} if reasons else {})})
    book.save(path)
    cli("ingest", str(path))
    with Engine.open(lines) as e:
        e.append(answered)
    assert cli.json("scores") == Cli(lines).json("scores") != []
    with Engine.open(sheets) as e:
        ws1 = {r["rater"]: r for r in e.round_status("plant-2026-03")["raters"]}["ws-1"]
        assert (ws1["answered"], ws1["declined"], ws1["missing"], ws1["rate"]) == (8, 2, 0, "100.0")


def test_announced_results_and_a_revision_after_them(plant_round, tmp_path):
    """公示 (issue 22.5): the month's figures announced; a later correction moves one department;
    scores, explain and the report show it as revised since the announcement, with the delta and
    the correcting event; --announced gives the figures exactly as announced."""
    cli = Cli(plant_round)
    published = {(r["subject"], r["metric"]): r for r in cli.json("scores", "--period", "2026-03")}
    cli("announce", "-r", "plant-50", "-p", "2026-03", "--date", "2026-04-03")
    assert all(r["announced"] is None for r in cli.json("scores", "--period", "2026-03"))  # nothing moved yet
    fix = {"type": "correction", "id": "fix-ws-1-dept-3", "response": "r-ws-1-dept-3", "reason": "typed wrong",
           "answers": {"attitude": "很不满意", "response": "很不满意", "solution": "不满意"},
           "reasons": {"attitude": "no one came", "response": "no one came", "solution": "still broken"}}
    with Engine.open(plant_round) as e:
        e.append([fix])
    now = {(r["subject"], r["metric"]): r for r in cli.json("scores", "--period", "2026-03")}
    moved = [k for k, r in now.items() if r["announced"] is not None]
    assert moved == [("dept-3", "service")]
    row = now[("dept-3", "service")]
    was = published[("dept-3", "service")]["score"]
    assert row["announced"] == was and row["announced_delta"] == row["score"] - was != 0
    assert row["announced_on"] == "2026-04-03"
    as_announced = {(r["subject"], r["metric"]): r["score"] for r in
                    cli.json("scores", "--period", "2026-03", "--announced")}
    assert as_announced == {k: r["score"] for k, r in published.items()}
    x = cli.json("explain", "-r", "plant-50", "-s", "dept-3", "-p", "2026-03")
    revised = x["revised_since_announced"]
    assert revised["on"] == "2026-04-03" and revised["score"] == was
    assert [e["id"] for e in revised["events"]] == ["fix-ws-1-dept-3"]
    text = cli("explain", "-r", "plant-50", "-s", "dept-3", "-p", "2026-03").stdout
    assert "revised since announced on 2026-04-03" in text and "fix-ws-1-dept-3" in text
    assert "revised_since_announced" not in cli.json("explain", "-r", "plant-50", "-s", "dept-0", "-p", "2026-03")
    html = tmp_path / "r.html"
    cli("report", "-p", "2026-03", "-o", str(html))
    assert f"公示 {was} (2026-04-03)" in html.read_text("utf-8")


def test_late_answers_count_unless_the_parameters_exclude_them(plant_round, monkeypatch):
    """Whether an answer recorded after the due date counts is the rule set's parameter
    ``late_answers`` (default "count"); excluded, explain says why, and a round opened after the
    answers moves the figures it excludes, incrementally as in a rebuild."""
    cli = Cli(plant_round)
    explain = ("explain", "-r", "plant-50", "-s", "dept-0", "-p", "2026-03")

    def used(x: dict) -> dict[str, tuple[bool, str | None]]:
        return {e["id"]: (e["used"], e.get("why")) for e in x["events"] if e["type"] == "response"}

    assert cli.json(*explain)["responses"] == 4 and used(cli.json(*explain))["r-ws-4-dept-0"][0] is True
    with Engine.open(plant_round) as e:
        e.append([{"type": "adoption", "id": "on-time-only", "ruleset": "plant-50", "from": "2026-03",
                   "params": {"late_answers": "exclude"}}])
    x = cli.json(*explain)
    late = "late: recorded 2026-03-30, after the round's due date 2026-03-28 (late_answers = \"exclude\")"
    assert x["responses"] == 3 and used(x)["r-ws-4-dept-0"] == (False, late)
    assert used(x)["r-ws-1-dept-0"] == (True, None)
    counts = {r["subject"]: r["responses"] for r in cli.json("scores", "-p", "2026-03")}
    assert counts == {d: 2 if d in DEPARTMENTS[8:] else 3 for d in DEPARTMENTS}  # ws-4's 10 late answers out
    incremental = cli.json("scores")
    cli("rebuild")
    assert cli.json("scores") == incremental
    with Engine.open(plant_round) as e:  # a second round of the month, due later: the latest due date holds
        e.append([{"type": "round", "id": "plant-2026-03-b", "ruleset": "plant-50", "period": "2026-03",
                   "due": "2026-03-31", "assignments": [{"rater": "ws-4", "subjects": ["dept-0"]}]}])
    assert cli.json(*explain)["responses"] == 4 and cli.json("explain", "-r", "plant-50", "-s", "dept-1", "-p",
                                                             "2026-03")["responses"] == 4
    with Engine.open(plant_round) as e, pytest.raises(IngestFailed) as err:
        e.append([{"type": "adoption", "id": "sometimes", "ruleset": "plant-50", "from": "2026-04",
                   "params": {"late_answers": "sometimes"}}])
    assert "late_answers" in str(err.value.problems)


def test_a_store_of_schema_10_learns_its_responses_recording_times(plant_round):
    """Schema 10 → 11 is a migration: each stored response gets its recording time from the log
    (no rebuild: an uninstalled rule set's published figures would not survive one)."""
    from csat.engine.read.readmodel import decode_state, encode_state
    import msgspec
    with Engine.open(plant_round) as e:
        e.catch_up()
    with connect(plant_round) as conn:
        rows = conn.execute("SELECT id, state FROM rm_responses").fetchall()
        conn.executemany("UPDATE rm_responses SET state = ? WHERE id = ?",
                         [(encode_state(msgspec.structs.replace(decode_state(bytes(b)), recorded=None)), i)
                          for i, b in rows])
        conn.execute("UPDATE rm_meta SET value = '10' WHERE key = 'schema'")
        conn.execute("UPDATE scores SET grade_label = 'kept' WHERE subject = 'dept-0'")  # a rebuild would lose it
    with Engine.open(plant_round) as e:
        e.catch_up()
        assert e.store.conn.execute("SELECT grade_label FROM scores WHERE subject = 'dept-0'").fetchone()[0] == "kept"
        states = {i: decode_state(bytes(b)) for i, b in e.store.conn.execute("SELECT id, state FROM rm_responses")}
    assert states["r-ws-4-dept-0"].recorded == "2026-03-30T09:00:00.000000Z"
    assert states["r-ws-1-dept-0"].recorded == "2026-03-20T10:00:00.000000Z"


def test_a_store_of_schema_11_reads_a_subject_s_months_by_one_index(plant_round):
    """Schema 11 → 12 is a migration: the index a subject's month figures are read by (roll-ups,
    sequences) is replaced by one the planner always uses — the published rows stay as they are."""
    with Engine.open(plant_round) as e:
        e.catch_up()
        before = e.scores()
    with connect(plant_round) as conn:
        conn.execute("DROP INDEX idx_scores_subject_kind_period")
        conn.execute("CREATE INDEX idx_scores_ruleset_subject_kind ON scores (ruleset, subject, kind)")
        conn.execute("UPDATE rm_meta SET value = '11' WHERE key = 'schema'")
        conn.execute("UPDATE scores SET grade_label = 'kept' WHERE subject = 'dept-0'")  # a rebuild would lose it
    with Engine.open(plant_round) as e:
        e.catch_up()
        conn = e.store.conn
        assert conn.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()[0] == "13"
        assert conn.execute("SELECT grade_label FROM scores WHERE subject = 'dept-0'").fetchone()[0] == "kept"
        postgres = plant_round.startswith("postgresql")
        indexes = {n for (n,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'scores' AND schemaname = current_schema()" if postgres
            else "SELECT name FROM sqlite_master WHERE tbl_name = 'scores'")}
        if not postgres:  # (PostgreSQL's planner has statistics of its own)
            plan = str(conn.execute("EXPLAIN QUERY PLAN SELECT period FROM scores WHERE ruleset = 'plant-50' AND "
                                    "subject = 'dept-1' AND kind = 'month' ORDER BY period").fetchall())
            assert "idx_scores_subject_kind_period" in plan and "TEMP B-TREE" not in plan
        assert [r for r in e.scores() if r["subject"] != "dept-0"] == [r for r in before if r["subject"] != "dept-0"]
    assert "idx_scores_subject_kind_period" in indexes and "idx_scores_ruleset_subject_kind" not in indexes


def test_a_store_of_schema_12_finds_a_month_s_units_with_cases_by_index(plant_round):
    """Schema 12 → 13 is a migration: the units with complaints or due rectifications in a month
    (read once per month scored) are found by index, not by reading every case once per month."""
    with Engine.open(plant_round) as e:
        e.catch_up()
    with connect(plant_round) as conn:
        conn.execute("DROP INDEX idx_rm_cases_period_kind")
        conn.execute("DROP INDEX idx_rm_rectifications_due")
        conn.execute("UPDATE rm_meta SET value = '12' WHERE key = 'schema'")
    with Engine.open(plant_round) as e:
        e.catch_up()
        conn = e.store.conn
        assert conn.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()[0] == "13"
        postgres = plant_round.startswith("postgresql")
        indexes = {n for (n,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()" if postgres
            else "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"idx_rm_cases_period_kind", "idx_rm_rectifications_due"} <= indexes
        if not postgres:
            plan = " ".join(str(r) for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT subject FROM rm_cases WHERE kind = 'complaint' AND period = ?",
                ("2026-03",)))
            assert "idx_rm_cases_period_kind" in plan, plan
