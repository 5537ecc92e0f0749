"""A plant-50 month end to end, through the CLI as a quality office runs it (issue 22): the round
opened by rule (5 workshops × 10 departments), the forms written, three workshops' forms back (one as CSV)
on time (one declining two departments), one after the due date, one never; the returns and
回收率; the figures announced (公示); a correction after it moves one department, and scores,
explain and the report show it as revised since the announcement, with the change and the event.
On SQLite and on a real PostgreSQL server."""
from __future__ import annotations

import csv

import pytest

from conftest import Cli, write_jsonl

from csat.engine.app import ingest

openpyxl = pytest.importorskip("openpyxl")

WORKSHOPS = [f"ws-{i}" for i in range(1, 6)]
DEPARTMENTS = [f"dept-{i}" for i in range(10)]
LABELS = {"attitude": "服务态度", "response": "响应速度", "solution": "问题解决"}


def fill(path, answers) -> None:
    """Fill a workshop's workbook as a person does: ``answers(subject)`` gives the row's answers
    (item → (answer, reason or None)), or None for 无业务往来 (no dealings this month)."""
    book = openpyxl.load_workbook(path)
    sheet = book.active
    heads = [c.value for c in sheet[1]]
    col = {h: i + 1 for i, h in enumerate(heads)}
    for row in range(2, sheet.max_row + 1):
        subject = sheet.cell(row=row, column=col["被考核单位"]).value
        given = answers(subject)
        if given is None:
            sheet.cell(row=row, column=col["无业务往来"], value="是")
            continue
        for item, (answer, reason) in given.items():
            sheet.cell(row=row, column=col[LABELS[item]], value=answer)
            if reason:
                sheet.cell(row=row, column=col[f"原因：{LABELS[item]}"], value=reason)
    book.save(path)


def as_csv(book_path, csv_path) -> None:
    """What Excel's "Save as CSV" writes of a filled form (Chinese Windows: GBK)."""
    sheet = openpyxl.load_workbook(book_path).active
    with open(csv_path, "w", newline="", encoding="gbk") as f:
        csv.writer(f).writerows([["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)])


def satisfied(subject: str) -> dict:
    return {item: ("满意", None) for item in LABELS}


def mixed(subject: str) -> dict:
    n = int(subject[-1])
    return {"attitude": ("满意", None), "response": ("一般" if n % 2 else "满意", None),
            "solution": ("不满意", f"{subject}: fault not fixed") if n == 7 else ("满意", None)}


def test_a_plant_month_from_round_to_revision(db, tmp_path, monkeypatch):
    clock = {"now": "2026-03-01T08:00:00.000000Z"}
    monkeypatch.setattr(ingest, "now", lambda: clock["now"])
    cli = Cli(db)
    units = write_jsonl(tmp_path / "units.jsonl",
                        [{"type": "unit", "id": w, "kind": "workshop", "name": f"{w[-1]}号车间"} for w in WORKSHOPS]
                        + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"}
                           for d in DEPARTMENTS])
    cli("ingest", str(units))
    spec = tmp_path / "2026-03.toml"
    spec.write_text('id = "plant-2026-03"\nruleset = "plant-50"\nperiod = "2026-03"\ndue = "2026-03-28"\n'
                    '[rule]\nraters = "workshop"\nsubjects = "department"\n', encoding="utf-8")
    assert cli("round", "open", str(spec)).stdout.startswith("1 appended")

    forms = tmp_path / "forms"
    assert cli("form", "plant-2026-03", "-o", str(forms)).stdout.count("wrote ") == 5
    fill(forms / "ws-1.xlsx", mixed)
    fill(forms / "ws-2.xlsx", lambda s: None if s in ("dept-8", "dept-9") else satisfied(s))
    fill(forms / "ws-3.xlsx", satisfied)
    fill(forms / "ws-4.xlsx", mixed)
    clock["now"] = "2026-03-26T09:30:00.000000Z"
    as_csv(forms / "ws-3.xlsx", forms / "ws-3.csv")  # one workshop saves its form as CSV (GBK, as Chinese Excel does)
    for form in ("ws-1.xlsx", "ws-2.xlsx", "ws-3.csv"):
        cli("ingest", str(forms / form))
    clock["now"] = "2026-03-30T16:00:00.000000Z"  # after the due date
    cli("ingest", str(forms / "ws-4.xlsx"))

    status = cli.json("round", "status", "plant-2026-03")
    assert status["overall"] == {"assigned": 50, "answered": 38, "declined": 2, "missing": 10, "late": 10,
                                 "rate": "79.2"}  # 38 of the 48 expected
    raters = {r["rater"]: (r["answered"], r["declined"], r["missing"], r["late"], r["rate"]) for r in status["raters"]}
    assert raters == {"ws-1": (10, 0, 0, 0, "100.0"), "ws-2": (8, 2, 0, 0, "100.0"), "ws-3": (10, 0, 0, 0, "100.0"),
                      "ws-4": (10, 0, 0, 10, "100.0"), "ws-5": (0, 0, 10, 0, "0.0")}
    subjects = {r["subject"]: r["rate"] for r in status["subjects"]}
    assert subjects == {d: "75.0" if d in ("dept-8", "dept-9") else "80.0" for d in DEPARTMENTS}
    by_the_due_date = cli.json("round", "status", "plant-2026-03", "--as-of", "2026-03-28")["overall"]
    assert (by_the_due_date["answered"], by_the_due_date["rate"]) == (28, "58.3")
    chase = cli.json("round", "status", "plant-2026-03", "--missing")["assignments"]
    assert [(r["rater"], r["subject"]) for r in chase] == [("ws-5", d) for d in DEPARTMENTS]
    text = cli("round", "status", "plant-2026-03").stdout
    assert "回收率 79.2 % · answered 38 of 48 (declined 2, missing 10, late 10)" in text and "部门9" in text

    published = {r["subject"]: r for r in cli.json("scores", "-p", "2026-03")}
    assert set(published) == set(DEPARTMENTS)
    assert published["dept-8"]["responses"] == 3 and published["dept-0"]["responses"] == 4
    cli("announce", "-r", "plant-50", "-p", "2026-03", "--date", "2026-04-03")

    # the correction: ws-3 meant dept-3's service was very poor
    response_id = _response_of(cli, "ws-3", "dept-3")
    fix = write_jsonl(tmp_path / "fix.jsonl", [{
        "type": "correction", "id": "fix-ws-3-dept-3", "response": response_id, "reason": "entered in the wrong row",
        "answers": {"attitude": "很不满意", "response": "很不满意", "solution": "不满意"},
        "reasons": {"attitude": "no one came", "response": "three weeks late", "solution": "still broken"}}])
    clock["now"] = "2026-04-08T10:00:00.000000Z"
    cli("ingest", str(fix))

    now = {r["subject"]: r for r in cli.json("scores", "-p", "2026-03")}
    assert [s for s, r in now.items() if r["announced"] is not None] == ["dept-3"]
    revised, was = now["dept-3"], published["dept-3"]["score"]
    assert revised["score"] != was and revised["announced"] == was
    assert revised["announced_delta"] == revised["score"] - was and revised["announced_on"] == "2026-04-03"
    assert revised["announced_events"] == ["fix-ws-3-dept-3"]
    assert {s: r["score"] for s, r in now.items() if s != "dept-3"} == \
        {s: r["score"] for s, r in published.items() if s != "dept-3"}
    as_announced = {r["subject"]: r["score"] for r in cli.json("scores", "-p", "2026-03", "--announced")}
    assert as_announced == {s: r["score"] for s, r in published.items()}

    x = cli.json("explain", "-r", "plant-50", "-s", "dept-3", "-p", "2026-03")
    assert x["revised_since_announced"]["on"] == "2026-04-03" and x["revised_since_announced"]["score"] == was
    assert x["revised_since_announced"]["delta"] == revised["announced_delta"]
    assert [e["id"] for e in x["revised_since_announced"]["events"]] == ["fix-ws-3-dept-3"]
    words = cli("explain", "-r", "plant-50", "-s", "dept-3", "-p", "2026-03").stdout
    assert "revised since announced on 2026-04-03" in words and "fix-ws-3-dept-3" in words

    report = tmp_path / "2026-03.html"
    cli("report", "-p", "2026-03", "-o", str(report))
    html = report.read_text("utf-8")
    delta = f"{revised['announced_delta']:+.2f}"
    assert f"公示 {was} (2026-04-03) · Δ {delta} · fix-ws-3-dept-3" in html
    assert html.count("公示 ") == 1  # the one revised figure


def _response_of(cli: Cli, rater: str, subject: str) -> str:
    """The id the form gave a rater's response about a subject (read back from the log)."""
    for r in cli.json("log", "--type", "response"):
        event = r.get("event") or {}
        if event.get("rater") == rater and event.get("subject") == subject:
            return r["id"]
    raise AssertionError(f"no response of {rater} about {subject}")
