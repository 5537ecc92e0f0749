"""Ingest: all or nothing, every bad line named, idempotent, conflicts rejected."""
from __future__ import annotations

import json

from conftest import EXAMPLES, write_jsonl, connect

AIR = str(EXAMPLES / "airline-1000.jsonl")


def resp(id_, period="2026-03", subject="hr", rater="flight-ops", answers=None, **kw):
    ev = {"type": "response", "id": id_, "ruleset": "airline-1000", "period": period, "subject": subject,
          "rater": rater, "answers": answers or {"quality": "A", "efficiency": "B"}}
    ev.update(kw)
    return ev


def log_rows(db):
    with connect(db) as conn:
        return conn.execute("SELECT rowid, originator_id, state FROM stored_events ORDER BY rowid").fetchall()


def test_reingest_appends_nothing(cli, db):
    assert cli("ingest", AIR).stdout.strip() == "8 appended, 0 already present"
    before = log_rows(db)
    assert cli("ingest", AIR).stdout.strip() == "0 appended, 8 already present"
    assert log_rows(db) == before


def test_bad_lines_all_reported_and_nothing_appended(cli, db, tmp_path):
    cli("ingest", AIR)
    before, scores_before = log_rows(db), cli.json("scores")
    lines = [
        json.dumps(resp("ok-1")),
        json.dumps(resp("bad-period", period="2026-13")),
        "{not json",
        json.dumps(resp("bad-grade", answers={"quality": "F"})),
        "",
        json.dumps(resp("no-reason", answers={"quality": "D"})),
        json.dumps({**resp("typo"), "commment": "misspelt"}),
        json.dumps({"type": "correction", "id": "c-1", "response": "nowhere", "answers": {"q": "A"}, "reason": "x"}),
        json.dumps(resp("no-rater", rater=None)),
        json.dumps({**resp("other"), "ruleset": "no-such-rules"}),
        json.dumps({"type": "vote", "id": "v"}),
    ]
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = cli("ingest", str(f), expect=1)
    err = r.stderr.splitlines()
    assert f"{f}:2: field `period`: expected a real month YYYY-MM (01-12), got '2026-13'" in err
    assert any(e.startswith(f"{f}:3: not valid JSON") for e in err)
    assert any(e.startswith(f"{f}:4: field `answers.quality`: expected a grade") and "'F'" in e for e in err)
    assert any(e.startswith(f"{f}:6: field `reasons.quality`: a reason is required for grade D") for e in err)
    assert f"{f}:7: unknown field `commment`" in err
    assert any(e.startswith(f"{f}:8: field `response`: no response 'nowhere'") for e in err)
    assert any(e.startswith(f"{f}:9: field `rater`: required by airline-1000") for e in err)
    assert any(e.startswith(f"{f}:10: field `ruleset`: rule set 'no-such-rules' is not installed") for e in err)
    assert any(e.startswith(f"{f}:11: field `type`: 'vote' is not an event type") for e in err)
    assert not any(":1:" in e for e in err), "the good line is not a problem"
    assert err[-1] == "csat: 9 problems; nothing appended"
    assert "Traceback" not in r.stderr
    assert log_rows(db) == before
    assert cli.json("scores") == scores_before


def test_conflicting_resend_is_rejected(cli, db, tmp_path):
    cli("ingest", AIR)
    with open(AIR, encoding="utf-8") as f:
        first = json.loads(f.readlines()[1])
    first["answers"]["quality"] = "A"
    r = cli("ingest", write_jsonl(tmp_path / "resend.jsonl", [first]), expect=1)
    assert "conflict: response 'air-2026-01-1' is already in the log with a different body" in r.stderr
    # the same key twice in one file with different bodies is a conflict too
    r = cli("ingest", write_jsonl(tmp_path / "twice.jsonl", [resp("x1"), resp("x1", rater="maintenance")]), expect=1)
    assert ":2: conflict: response 'x1'" in r.stderr


def test_same_body_twice_in_one_file_is_present_once(cli, tmp_path):
    r = cli("ingest", write_jsonl(tmp_path / "dup.jsonl", [resp("x1"), resp("x1")]))
    assert r.stdout.strip() == "2 appended, 1 already present"  # the implicit adoption + x1


def test_dry_run_appends_nothing(cli, db):
    r = cli("ingest", "--dry-run", AIR)
    assert r.stdout.strip() == "8 would be appended, 0 already present"
    assert log_rows(db) == []


def test_references_to_earlier_lines_of_the_same_file(cli, tmp_path):
    events = [resp("r1"), {"type": "correction", "id": "c1", "response": "r1", "answers": {"quality": "C"},
                           "reason": "wrong box ticked"},
              resp("r2"), {"type": "withdrawal", "id": "w2", "response": "r2", "reason": "duplicate"},
              {"type": "correction", "id": "c2", "response": "r2", "answers": {"quality": "C"}, "reason": "late"}]
    r = cli("ingest", write_jsonl(tmp_path / "refs.jsonl", events), expect=1)
    assert r.stderr.splitlines()[0].endswith(
        ":5: field `response`: response 'r2' was withdrawn by 'w2' and cannot be corrected")
    cli("ingest", write_jsonl(tmp_path / "refs-ok.jsonl", events[:4]))
    r = cli("ingest", write_jsonl(tmp_path / "again.jsonl",
                                  [{"type": "withdrawal", "id": "w2b", "response": "r2", "reason": "x"}]), expect=1)
    assert "was withdrawn by 'w2' and cannot be withdrawn again" in r.stderr


def test_correction_answers_are_checked_by_the_rule_set(cli, tmp_path):
    cli("ingest", write_jsonl(tmp_path / "a.jsonl", [resp("r1")]))
    r = cli("ingest", write_jsonl(tmp_path / "b.jsonl", [
        {"type": "correction", "id": "c1", "response": "r1", "answers": {"quality": "E"}, "reason": "x"}]), expect=1)
    assert "field `reasons.quality`: a reason is required for grade E" in r.stderr


def test_adoption_params_are_validated_with_their_key(cli, tmp_path):
    bad = {"type": "adoption", "id": "p1", "ruleset": "airline-1000", "from": "2026-01",
           "params": {"departments": {"finance": {"weight": "heavy"}}}}
    r = cli("ingest", write_jsonl(tmp_path / "p.jsonl", [bad]), expect=1)
    assert ":1: params: key `departments.finance.weight`: expected a number" in r.stderr
    unknown = {**bad, "params": {"precison": 3}}
    r = cli("ingest", write_jsonl(tmp_path / "q.jsonl", [unknown]), expect=1)
    assert "params: unknown key `precison`" in r.stderr or "unknown field `precison`" in r.stderr


def test_adoption_stores_complete_parameters(engine, tmp_path):
    engine.ingest([EXAMPLES / "airline-1000.jsonl"])
    (adoption,) = [e for e in engine.log(type="adoption")]
    params = adoption["event"]["params"]
    assert params["grades"]["A"] == {"points": "1000", "label": "优秀", "reason_required": False}
    assert params["departments"]["finance"]["weight"] == "0.15"
    assert params["precision"] == 2


def test_implicit_default_adoption_takes_the_earliest_period(engine, tmp_path):
    f = write_jsonl(tmp_path / "r.jsonl", [resp("m3", period="2026-03"), resp("m1", period="2026-01")])
    report = engine.ingest([f])
    assert report.implicit_adoptions == ["airline-1000:default"]
    adoptions = list(engine.log(type="adoption"))
    assert [(a["id"], a["event"]["from"], a["position"]) for a in adoptions] == [("default", "2026-01", 1)]
    assert {r["period"]: r["adoption"] for r in engine.scores()}["2026-01"] == "default"
    # a later, earlier month with no adoption in force gets its own implicit adoption
    engine.ingest([write_jsonl(tmp_path / "s.jsonl", [resp("m0", period="2025-12")])])
    assert [a["id"] for a in engine.log(type="adoption")] == ["default", "default-2025-12"]


def test_missing_file_is_one_line(cli, tmp_path):
    r = cli("ingest", str(tmp_path / "nope.jsonl"), expect=1)
    assert r.stderr.splitlines()[0] == f"{tmp_path / 'nope.jsonl'}: cannot read: no such file"


def test_api_append_takes_dicts_and_validates(engine):
    from csat.engine import IngestFailed
    report = engine.append([resp("a1"), resp("a2", answers={"quality": "B"})])
    assert report.appended == 3
    try:
        engine.append([resp("a3", period="2026-00")])
    except IngestFailed as e:
        assert e.problems == ["events[0]: field `period`: expected a real month YYYY-MM (01-12), got '2026-00'"]
    else:
        raise AssertionError("expected IngestFailed")
