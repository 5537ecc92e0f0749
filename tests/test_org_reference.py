"""The org chart is the reference for the units events name (issue 31, items 4 and 14): a typo is
a problem line, not a new department; a unit's unambiguous name is stored as its id; ids that
break links are refused; a store without unit events keeps free ids."""
from __future__ import annotations

from conftest import EXAMPLES, ROOT, connect, write_jsonl

CHART = [
    {"type": "unit", "id": "finance", "name": "财务部", "kind": "department"},
    {"type": "unit", "id": "purchasing", "name": "采购部", "kind": "department"},
    {"type": "unit", "id": "ws-1", "name": "一车间", "kind": "workshop"},
    {"type": "unit", "id": "ws-2", "name": "二车间", "kind": "workshop"},
]
GOOD = {"attitude": "满意", "response": "满意", "solution": "满意"}


def plant(id_, subject, rater="ws-1", period="2026-03", **kw):
    return {"type": "response", "id": id_, "ruleset": "plant-50", "period": period, "subject": subject,
            "rater": rater, "answers": GOOD, **kw}


def plant_store(cli, tmp_path):
    cli("ingest", write_jsonl(tmp_path / "chart.jsonl", CHART + [
        plant("p-fin-1", "finance"), plant("p-pur-1", "purchasing", "ws-2")]))


def log_count(db) -> int:
    with connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]


def stored(cli, id_):
    return cli.json("log", "--id", id_)[0]["event"]


def test_a_typo_in_a_sheet_is_a_problem_line_and_a_name_is_stored_as_the_id(cli, db, tmp_path):
    plant_store(cli, tmp_path)
    before = log_count(db)
    sheet = tmp_path / "march.csv"
    sheet.write_text("id,ruleset,period,subject,rater,attitude,response,solution\n"
                     "t1,plant-50,2026-03,财务部,ws-1,满意,满意,满意\n"
                     "t2,plant-50,2026-03,nosuchdept,ws-1,满意,满意,满意\n"
                     "t3,plant-50,2026-03,purchasing,ws-nosuch,满意,满意,满意\n"
                     "t4,plant-50,2026-03,finanse,ws-2,满意,满意,满意\n", encoding="utf-8")
    r = cli("ingest", str(sheet), expect=1)
    err = r.stderr.splitlines()
    assert not any(line.startswith(f"{sheet}:2:") for line in err), "财务部 is finance's name"
    assert (f"{sheet}:3: field `subject`: 'nosuchdept' is not a unit as of 2026-03 (the org chart is the reference "
            "for plant-50's subjects) — expected one of the 4 units as of 2026-03 (finance (财务部), purchasing "
            "(采购部), ws-1 (一车间), ws-2 (二车间)): csat units --as-of 2026-03") in err
    assert any(line.startswith(f"{sheet}:4: field `rater`: 'ws-nosuch' is not a unit as of 2026-03") for line in err)
    assert any(line.startswith(f"{sheet}:5: field `subject`: 'finanse' is not a unit as of 2026-03")
               and line.endswith("— did you mean finance (财务部)?") for line in err)
    assert err[-1] == "csat: 3 problems; nothing appended" and "Traceback" not in r.stderr
    assert log_count(db) == before
    # the good row alone: stored under the id, and a re-sent sheet is present, not a conflict
    sheet.write_text("id,ruleset,period,subject,rater,attitude,response,solution\n"
                     "t1,plant-50,2026-03,财务部,ws-1,满意,满意,满意\n", encoding="utf-8")
    assert cli("ingest", str(sheet)).stdout.strip() == "1 appended, 0 already present"
    assert stored(cli, "t1")["subject"] == "finance"
    assert cli("ingest", str(sheet)).stdout.strip() == "0 appended, 1 already present"
    assert {r["subject"] for r in cli.json("scores")} == {"finance", "purchasing"}


def test_a_name_of_two_units_is_refused_listing_them(cli, db, tmp_path):
    plant_store(cli, tmp_path)
    cli("ingest", write_jsonl(tmp_path / "more.jsonl", [
        {"type": "unit", "id": "fin-2", "name": "财务部", "kind": "department", "from": "2026-04"}]))
    before = log_count(db)
    r = cli("ingest", write_jsonl(tmp_path / "april.jsonl", [plant("a1", "财务部", period="2026-04")]), expect=1)
    assert (f"{tmp_path / 'april.jsonl'}:1: field `subject`: '财务部' is the name of 2 units as of 2026-04: give the "
            "id of one — fin-2 (财务部), finance (财务部)") in r.stderr.splitlines()
    assert log_count(db) == before
    cli("ingest", write_jsonl(tmp_path / "march.jsonl", [plant("m1", "财务部")]))  # one of them in March
    assert stored(cli, "m1")["subject"] == "finance"


def test_a_unit_is_one_from_its_month_on_and_moving_keeps_it(cli, tmp_path):
    plant_store(cli, tmp_path)
    cli("ingest", write_jsonl(tmp_path / "moves.jsonl", [
        {"type": "unit", "id": "ws-1", "name": "一车间", "kind": "workshop", "parent": "purchasing", "from": "2026-04"},
        {"type": "unit", "id": "quality", "name": "质量部", "kind": "department", "from": "2026-04"}]))
    cli("ingest", write_jsonl(tmp_path / "both.jsonl", [
        plant("before", "finance", "ws-1", "2026-02"), plant("after", "finance", "ws-1", "2026-05"),
        plant("q-apr", "quality", period="2026-04")]))
    f = write_jsonl(tmp_path / "early.jsonl", [plant("q-mar", "quality", period="2026-03")])
    r = cli("ingest", f, expect=1)
    assert (f"{f}:1: field `subject`: 'quality' is not a unit as of 2026-03 (the org chart is the reference for "
            "plant-50's subjects): it is declared from 2026-04 — csat units --as-of 2026-03") in r.stderr.splitlines()


def test_free_ids_where_the_org_chart_does_not_hold_the_rule_sets_units(cli, tmp_path):
    # no unit events at all: any subject, any rater
    cli("ingest", write_jsonl(tmp_path / "free.jsonl", [plant("f1", "nosuchdept", "ws-nosuch")]))
    # another rule set's org chart (dealership-cs) leaves airline-1000's departments free
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"), str(EXAMPLES / "airline-1000.jsonl"))
    assert {r["subject"] for r in cli.json("scores", "--ruleset", "airline-1000")} == {"finance"}
    # …until its departments are units: then a typo is refused, a customer (no unit rates) still free
    cli("ingest", write_jsonl(tmp_path / "depts.jsonl", [{"type": "unit", "id": "finance", "name": "财务部"}]))
    air = {"type": "response", "ruleset": "airline-1000", "period": "2026-04", "rater": "maintenance",
           "answers": {"professionalism": "A", "efficiency": "B", "quality": "B"}}
    f = write_jsonl(tmp_path / "typo.jsonl", [{**air, "id": "a1", "subject": "财务部"},
                                              {**air, "id": "a2", "subject": "finanse"}])
    r = cli("ingest", f, expect=1)
    assert [line.split(": ", 2)[:2] for line in r.stderr.splitlines()[:-1]] == [[f"{f}:2", "field `subject`"]]
    assert "did you mean finance (财务部)?" in r.stderr


def test_units_of_the_same_input_count_before_and_after_their_responses(cli, db, tmp_path):
    f = write_jsonl(tmp_path / "first.jsonl", [
        plant("early", "quality", "ws-1"),  # quality is declared further down
        *CHART, plant("p1", "采购部", "一车间"), plant("p2", "purchasng", "ws-1"),
        {"type": "unit", "id": "quality", "name": "质量部", "kind": "department"}])
    r = cli("ingest", f, expect=1)
    problems = r.stderr.splitlines()[:-1]
    assert len(problems) == 1 and problems[0].startswith(f"{f}:7: field `subject`: 'purchasng' is not a unit")
    assert problems[0].endswith("did you mean purchasing (采购部)?")
    lines = [line for line in open(f, encoding="utf-8") if "purchasng" not in line]
    (tmp_path / "first.jsonl").write_text("".join(lines), encoding="utf-8")
    assert cli("ingest", f).stdout.strip() == "8 appended, 0 already present"  # (and the implicit adoption)
    assert (stored(cli, "p1")["subject"], stored(cli, "p1")["rater"]) == ("purchasing", "ws-1")


def test_a_round_names_units_of_the_org_chart(cli, db, tmp_path):
    plant_store(cli, tmp_path)
    before = log_count(db)
    f = write_jsonl(tmp_path / "round.jsonl", [{
        "type": "round", "id": "r-03", "ruleset": "plant-50", "period": "2026-03", "due": "2026-03-28",
        "assignments": [{"rater": "一车间", "subjects": ["finance", "purchasing"]},
                        {"rater": "ws-2", "subjects": ["finance", "purchasin"]}]}])
    r = cli("ingest", f, expect=1)
    assert r.stderr.splitlines()[0].startswith(
        f"{f}:1: field `assignments[1].subjects`: 'purchasin' is not a unit as of 2026-03")
    assert log_count(db) == before


def test_ids_that_break_links_are_refused_in_one_line_each(cli, db, tmp_path):
    plant_store(cli, tmp_path)
    before = log_count(db)
    f = write_jsonl(tmp_path / "slash.jsonl", [
        {"type": "unit", "id": "plant/2", "name": "二厂"},
        plant("p/1", "finance"),
        plant("p2", "fin#ance", "ws?1"),
        {"type": "complaint", "id": "c\\1", "subject": "finance", "period": "2026-03", "text": "x"}])
    r = cli("ingest", f, expect=1)
    err = r.stderr.splitlines()
    what = "an id may not contain / \\ ? # or control characters (it names pages, links and files)"
    assert err == [f"{f}:1: field `id`: 'plant/2' contains '/': {what}",
                   f"{f}:2: field `id`: 'p/1' contains '/': {what}",
                   f"{f}:3: field `subject`: 'fin#ance' contains '#': {what}",
                   f"{f}:3: field `rater`: 'ws?1' contains '?': {what}",
                   f"{f}:4: field `id`: 'c\\\\1' contains '\\\\': {what}",
                   "csat: 5 problems; nothing appended"]
    assert log_count(db) == before


def test_the_worked_examples_ingest_together_and_keep_their_checks(cli, fresh_db, tmp_path):
    from conftest import Cli
    demo = Cli(fresh_db("demo"))  # the demo's files in one call, as `csat demo` ingests them
    demo("ingest", *map(str, sorted((ROOT / "rulesets" / "examples").glob("*.jsonl"))))
    assert {"finance", "company", "purchasing", "s1", "sup-ic"} <= {r["subject"] for r in demo.json("scores")}
    cli("ingest", *map(str, sorted(EXAMPLES.glob("*.jsonl"))))
    # dealership-cs holds its consultants: a typo'd one is refused, a new customer is not
    cb = {"type": "response", "ruleset": "dealership-cs", "form": "sales", "period": "2026-04",
          "rater": "customer-new", "answers": {"q1": "很好", "q2": "很好", "q3": "比较满意", "q4": "satisfied"}}
    f = write_jsonl(tmp_path / "cb.jsonl", [{**cb, "id": "n1", "subject": "王伟"}, {**cb, "id": "n2", "subject": "s9"}])
    r = cli("ingest", f, expect=1)
    assert [line.split(": ", 2)[:2] for line in r.stderr.splitlines()[:-1]] == [[f"{f}:2", "field `subject`"]]
