"""One return per assignment of a round, whatever the channel (issue 31, item 1): JSON Lines sent
twice under two ids, a CSV with the same rater × department on two rows, a filled workbook plus
an ``Engine.append``, the web through two sets of links — a second return is a correction of the
first (the round allows changes, until its due date) or refused with one line naming it; the
figures count one response per rater. Making links again revokes the earlier set. On SQLite and
on a real PostgreSQL server."""
from __future__ import annotations

import re
import warnings

import pytest

from conftest import Cli, write_jsonl

from csat.engine import Engine, IngestFailed
from csat.engine.app import ingest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

RATERS = ["ws-1", "ws-2"]
DEPTS = ["dept-0", "dept-1"]
GOOD = {"attitude": "满意", "response": "满意", "solution": "满意"}
FAIR = {"attitude": "一般", "response": "一般", "solution": "满意"}


def answer(id_: str, rater: str, dept: str, answers: dict | None = None, **extra) -> dict:
    return {"type": "response", "id": id_, "ruleset": "plant-50", "period": "2026-03", "subject": dept,
            "rater": rater, "answers": answers or GOOD, **extra}


def opened(db: str, monkeypatch, due: str = "2026-03-28", **round_fields) -> dict:
    """Two workshops rate two departments by rule; the clock stands on 2026-03-20 (settable)."""
    clock = {"now": "2026-03-20T10:00:00.000000Z"}
    monkeypatch.setattr(ingest, "now", lambda: clock["now"])
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": u, "kind": "workshop"} for u in RATERS]
                 + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"} for d in DEPTS])
        e.append([{"type": "round", "id": "r", "ruleset": "plant-50", "period": "2026-03", "due": due,
                   "rule": {"raters": "workshop", "subjects": "department"}, **round_fields}])
    return clock


def counted(db: str) -> dict[str, int]:
    with Engine.open(db) as e:
        return {r["subject"]: r["responses"] for r in e.scores(period="2026-03")}


def kinds(db: str) -> list[tuple[str, str]]:
    with Engine.open(db) as e:
        return [(r["type"], r["id"]) for r in e.log() if r["type"] in ("response", "correction")]


def test_json_lines_sent_twice_under_two_ids_correct_the_first(db, monkeypatch, tmp_path):
    opened(db, monkeypatch)
    cli = Cli(db)
    first = write_jsonl(tmp_path / "a.jsonl", [answer(f"a-{w}-{d}", w, d) for w in RATERS for d in DEPTS])
    again = write_jsonl(tmp_path / "b.jsonl", [answer(f"b-{w}-{d}", w, d, FAIR) for w in RATERS for d in DEPTS])
    cli("ingest", first)
    assert cli("ingest", again).stdout.startswith("4 appended")
    assert counted(db) == {"dept-0": 2, "dept-1": 2}  # one response per rater, not two
    log = kinds(db)
    assert [k for k, _ in log].count("response") == 4 and [k for k, _ in log].count("correction") == 4
    fix = next(i for k, i in log if k == "correction" and i.startswith("b-ws-1-dept-0~"))
    with Engine.open(db) as e:
        now = e.response("a-ws-1-dept-0")
        assert now["answers"] == FAIR and now["corrections"] == [fix]  # the second's answers, on the first
        assert e.response("b-ws-1-dept-0") is None
    assert cli("ingest", again).stdout.startswith("0 appended, 4 already present")  # sent again: idempotent
    with Engine.open(db) as e:  # outside every round: two responses stay two, as before
        e.append([answer("x-1", "ws-1", "dept-0", period="2026-05"), answer("x-2", "ws-1", "dept-0", period="2026-05")])
        assert {r["subject"]: r["responses"] for r in e.scores(period="2026-05")} == {"dept-0": 2}


def test_a_round_without_changes_refuses_a_second_return_naming_the_first(db, monkeypatch, tmp_path):
    opened(db, monkeypatch, changes=False)
    cli = Cli(db)
    cli("ingest", write_jsonl(tmp_path / "a.jsonl", [answer("a-1", "ws-1", "dept-0")]))
    second = write_jsonl(tmp_path / "b.jsonl", [answer("b-2", "ws-2", "dept-0"), answer("b-1", "ws-1", "dept-0", FAIR)])
    out = cli("ingest", second, expect=1)
    assert out.stderr.strip().splitlines()[0] == (
        f"{second}:2: a return for (round r, rater ws-1, subject dept-0) is already in the log: response 'a-1' "
        "(recorded 2026-03-20); send a correction of it instead")
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 2  # and "1 problem; …"
    assert kinds(db) == [("response", "a-1")]  # all or nothing: ws-2's return waits for the file's fix
    sheet = tmp_path / "two-rows.csv"  # the same rater × department on two rows under two ids
    sheet.write_text("编号,规则,月份,被考核部门,评价单位,服务态度,响应速度,问题解决\n"
                     "c-1,plant-50,2026-03,dept-1,ws-2,满意,满意,满意\n"
                     "c-2,plant-50,2026-03,dept-1,ws-2,一般,一般,满意\n", encoding="utf-8")
    out = cli("ingest", str(sheet), expect=1)
    assert out.stderr.strip().splitlines()[0] == (f"{sheet}:3: a return for (round r, rater ws-2, subject dept-1) is already earlier "
                                  "in this input: response 'c-1'; send a correction of it instead")
    cli("ingest", write_jsonl(tmp_path / "fix.jsonl", [{  # the way it says stays open
        "type": "correction", "id": "fix-1", "response": "a-1", "answers": FAIR, "reason": "the workshop's change"}]))
    assert counted(db) == {"dept-0": 1}


def test_a_csv_with_one_assignment_on_two_rows_records_one_response(db, monkeypatch, tmp_path):
    opened(db, monkeypatch)
    sheet = tmp_path / "two-rows.csv"
    sheet.write_text("编号,规则,月份,被考核部门,评价单位,服务态度,响应速度,问题解决\n"
                     "c-1,plant-50,2026-03,dept-1,ws-2,满意,满意,满意\n"
                     "c-2,plant-50,2026-03,dept-1,ws-2,一般,一般,满意\n", encoding="utf-8")
    assert Cli(db)("ingest", str(sheet)).stdout.startswith("3 appended")  # (with the implicit adoption)
    assert [k for k, _ in kinds(db)] == ["response", "correction"]
    assert counted(db) == {"dept-1": 1}
    with Engine.open(db) as e:
        assert e.response("c-1")["answers"] == FAIR


def test_after_the_due_date_a_second_return_is_refused(db, monkeypatch, tmp_path):
    clock = opened(db, monkeypatch)
    with Engine.open(db) as e:
        e.append([answer("a-1", "ws-1", "dept-0")])
        clock["now"] = "2026-03-30T09:00:00.000000Z"
        with pytest.raises(IngestFailed) as got:
            e.append([answer("b-1", "ws-1", "dept-0", FAIR)])
        assert got.value.problems == [
            "events[0]: a return for (round r, rater ws-1, subject dept-0) is already in the log: response 'a-1' "
            "(recorded 2026-03-20), and changes close with the due date 2026-03-28 (this one recorded 2026-03-30); "
            "send a correction of it instead"]
        e.append([{"type": "withdrawal", "id": "w-1", "response": "a-1", "reason": "wrong workshop"}])
        e.append([answer("b-1", "ws-1", "dept-0", FAIR)])  # the first withdrawn: a return of its own
        assert e.response("b-1")["answers"] == FAIR
    assert counted(db) == {"dept-0": 1}


def test_a_filled_workbook_and_an_append_of_the_same_assignment(db, monkeypatch, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    opened(db, monkeypatch)
    cli = Cli(db)
    cli("form", "r", "-o", str(tmp_path / "forms"))
    path = tmp_path / "forms" / "ws-1.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book.active
    heads = [c.value for c in sheet[1]]
    for row in (2, 3):
        for label in ("服务态度", "响应速度", "问题解决"):
            sheet.cell(row=row, column=heads.index(label) + 1, value="满意")
    book.save(path)
    cli("ingest", str(path))
    with Engine.open(db) as e:  # the same return, keyed in by the office under an id of its own
        report = e.append([answer("office-ws-1-dept-0", "ws-1", "dept-0", FAIR)])
        assert report.appended == 1 and [k for k, _ in kinds(db)][-1] == "correction"
        assert e.response("r-ws-1-dept-0")["answers"] == FAIR
    assert counted(db) == {"dept-0": 1, "dept-1": 1}


def test_named_respondents_each_return_once(db, monkeypatch):
    opened(db, monkeypatch)
    with Engine.open(db) as e:
        e.append([{"type": "round", "id": "named", "ruleset": "plant-50", "period": "2026-04", "due": "2026-04-28",
                   "assignments": [{"rater": "ws-1", "subjects": ["dept-0"], "respondents": ["张三", "李四"]}]}])
        e.append([answer("n-1", "ws-1", "dept-0", period="2026-04", respondent="张三"),
                  answer("n-2", "ws-1", "dept-0", period="2026-04", respondent="李四")])
        e.append([answer("n-3", "ws-1", "dept-0", FAIR, period="2026-04", respondent="张三")])  # 张三 again
        assert e.response("n-1")["answers"] == FAIR and e.response("n-3") is None
        assert {r["subject"]: r["responses"] for r in e.scores(period="2026-04")} == {"dept-0": 2}


# -- the web ----------------------------------------------------------------------------------

SECRET = "test-secret-not-for-production"


def _form(c: TestClient, token: str, answers: dict) -> dict:
    page = c.get(f"/r/{token}").text
    keys = {k: re.search(rf'name="{k}" value="([^"]+)"', page).group(1) for k in ("csrf", "nonce")}
    return {**keys, **{f"dept-0::{k}": v for k, v in answers.items()}}


def test_links_made_again_revoke_the_earlier_set_and_a_second_return_corrects(db, monkeypatch):
    from csat.web import create_app
    opened(db, monkeypatch, due="2099-03-28")
    with Engine.open(db) as e:
        old = {r["rater"]: r["token"] for r in e.round_links("r")}
        new = {r["rater"]: r["token"] for r in e.round_links("r", actor="qo")}
        live = e.store.conn.execute("SELECT COUNT(*) FROM csat_links WHERE round = 'r' AND revoked = 0").fetchone()[0]
        trail = [(a["action"], a["details"].get("links")) for a in e.accounts.audit() if a["target"] == "r"]
    assert live == 2 and trail == [("links.new", 2), ("links.revoke", 2), ("links.new", 2)]
    app = create_app(db, secret=SECRET, engines=2)
    with TestClient(app, follow_redirects=False) as c:
        assert c.get(f"/r/{old['ws-1']}").status_code == 404  # the earlier set no longer opens
        assert "已提交" in c.post(f"/r/{new['ws-1']}", data=_form(c, new["ws-1"], GOOD)).text
        with Engine.open(db) as e:
            third = {r["rater"]: r["token"] for r in e.round_links("r")}  # made again after an answer
        assert c.get(f"/r/{new['ws-1']}").status_code == 404
        assert "已提交" in c.post(f"/r/{third['ws-1']}", data=_form(c, third["ws-1"], FAIR)).text
    assert [k for k, _ in kinds(db)] == ["response", "correction"]
    assert counted(db) == {"dept-0": 1}
    with Engine.open(db) as e:
        (first,) = [i for k, i in kinds(db) if k == "response"]
        assert e.response(first)["answers"] == FAIR
