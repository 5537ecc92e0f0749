"""dealership-cs: team moves, nested chains, shared jobs, N/A, pooled quarters, failed callbacks, remedy cases."""
from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import write_jsonl, connect

from csat.engine import IngestFailed

S, B, D, C = "satisfied", "basic", "dissatisfied", "complaint"


def unit(id_, parent=None, kind="consultant", from_=None):
    e = {"type": "unit", "id": id_, "kind": kind}
    if parent:
        e["parent"] = parent
    if from_:
        e["from"] = from_
    return e


def sales(id_, month, subject, answers, status=None):
    e = {"type": "response", "id": id_, "ruleset": "dealership-cs", "form": "sales", "period": month,
         "subject": subject, "answers": dict(zip(("q1", "q2", "q3", "q4"), answers))}
    if status:
        e["status"] = status
    return e


def service(id_, month, sa, bays, answers):
    return {"type": "response", "id": id_, "ruleset": "dealership-cs", "form": "service", "period": month,
            "subject": sa, "roles": {"workshop": bays},
            "answers": dict(zip(("q1", "q2", "q3", "q4", "q5", "q6"), answers))}


def score(engine, subject, period, metric="sales_cs"):
    rows = engine.scores(ruleset="dealership-cs", subject=subject, period=period, metric=metric)
    return rows[0] if rows else None


ORG = [unit("dealer", kind="dealer"), unit("team-a", "dealer", "team"), unit("team-b", "dealer", "team"),
       unit("c1", "team-a"), unit("c2", "team-a"), unit("c3", "team-b")]


def test_team_move_credits_old_team_before_and_new_team_after(engine):
    engine.append([*ORG, unit("c3", "team-a", from_="2026-05"),
                   sales("apr", "2026-04", "c3", [S, S, S, S]), sales("may", "2026-05", "c3", [B, B, B, B])])
    assert score(engine, "team-b", "2026-04")["score"] == Decimal("100.00")
    assert score(engine, "team-a", "2026-04") is None
    assert score(engine, "team-a", "2026-05")["score"] == Decimal("75.00")
    assert score(engine, "team-b", "2026-05") is None
    assert score(engine, "dealer", "2026-Q2")["responses"] == 2  # nested: consultant → team → dealer


def test_a_move_declared_after_the_callbacks_recredits_them(engine):
    engine.append([*ORG, sales("may", "2026-05", "c3", [B, B, B, B]), sales("apr", "2026-04", "c3", [S, S, S, S])])
    assert score(engine, "team-b", "2026-05")["score"] == Decimal("75.00")
    engine.append([unit("c3", "team-a", from_="2026-05")])
    assert score(engine, "team-b", "2026-05") is None
    assert score(engine, "team-a", "2026-05")["score"] == Decimal("75.00")
    assert score(engine, "team-b", "2026-04")["score"] == Decimal("100.00")
    x = engine.explain("dealership-cs", "team-a", "2026-05")
    (ev,) = [e for e in x["events"] if e["id"] == "may"]
    assert ev["used"] and "credited through c3" in ev["why"] and "c3 ∈ team-a from 2026-05" in ev["why"]


def test_a_unit_declared_after_its_callbacks_gets_its_team_rows(engine):
    engine.append([sales("x", "2026-03", "c9", [S, S, S, B])])
    assert score(engine, "team-z", "2026-03") is None
    engine.append([unit("team-z", kind="team"), unit("c9", "team-z")])
    assert score(engine, "team-z", "2026-03")["score"] == Decimal("93.75")
    assert score(engine, "team-z", "2026-03")["level"] == "team"


def test_a_job_of_two_bays_counts_once_for_their_workshop(engine):
    engine.append([unit("shop", kind="workshop"), unit("bay-1", "shop", "bay"), unit("bay-2", "shop", "bay"),
                   service("j1", "2026-03", "sa", ["bay-1", "bay-2"], [S, S, D, S, S, S]),
                   service("j2", "2026-03", "sa", ["bay-1"], [S, S, S, S, S, S])])
    assert score(engine, "bay-1", "2026-03", "repair_quality")["score"] == Decimal("62.50")  # (25 + 100) / 2
    assert score(engine, "bay-2", "2026-03", "repair_quality")["score"] == Decimal("25.00")  # the full figure
    shop = score(engine, "shop", "2026-03", "repair_quality")
    assert (shop["score"], shop["responses"], shop["level"]) == (Decimal("62.50"), 2, "workshop")
    assert "failed" not in shop
    assert score(engine, "sa", "2026-03", "repair_quality") is None  # repair quality goes to the bays


def test_na_inside_a_metric_drops_the_callback_from_that_metric_only(engine):
    engine.append([service("j1", "2026-03", "sa", [], [S, B, S, "N/A", S, S]),
                   service("j2", "2026-03", "sa", [], [B, B, B, B, B, B])])
    assert score(engine, "sa", "2026-03", "explanation")["responses"] == 1       # q4 N/A in j1
    assert score(engine, "sa", "2026-03", "service_cs")["score"] == Decimal("75.00")  # j1 dropped: q4 is in it
    assert score(engine, "sa", "2026-03", "overall")["score"] == Decimal("87.50")     # (100 + 75) / 2
    x = engine.explain("dealership-cs", "sa", "2026-03", "service_cs")
    assert {e["id"]: e.get("why") for e in x["events"]}["j1"] == "N/A in q4: does not count for service_cs"


def test_quarters_pool_callbacks_not_monthly_means(engine):
    engine.append([sales("a", "2026-01", "c1", [S, S, S, S]),
                   sales("b", "2026-02", "c1", [B, B, B, B]), sales("c", "2026-02", "c1", [B, B, B, B]),
                   sales("d", "2026-02", "c1", [B, B, B, B])])
    q = score(engine, "c1", "2026-Q1")
    assert (q["score"], q["responses"]) == (Decimal("81.25"), 4)  # (100 + 3 × 75) / 4, not (100 + 75) / 2


def test_failed_callbacks_are_kept_excluded_and_counted(engine):
    engine.append([*ORG, sales("ok", "2026-03", "c1", [S, S, S, S]), sales("r", "2026-03", "c1", [], "refused"),
                   sales("u", "2026-03", "c1", [], "unreachable")])
    row = score(engine, "c1", "2026-03")
    assert (row["score"], row["responses"], row["failed"], row["level"]) == (Decimal("100.00"), 1, 2, "unit")
    assert "failed" not in score(engine, "team-a", "2026-03")
    why = {e["id"]: e.get("why") for e in engine.explain("dealership-cs", "c1", "2026-03")["events"]}
    assert why["r"] == "status refused: only completed responses are scored"
    assert why["u"] == "status unreachable: only completed responses are scored"


def test_remedy_cases_open_close_and_follow_corrections(engine, cli):
    engine.append([sales("bad", "2026-03", "c1", [S, S, S, D]), sales("worse", "2026-03", "c1", [C, S, S, S]),
                   sales("fine", "2026-03", "c1", [S, B, S, S])])
    cases = {c["id"]: c for c in engine.complaints()}
    assert set(cases) == {"remedy:bad", "remedy:worse"}
    assert cases["remedy:bad"]["status"] == "open" and cases["remedy:bad"]["response"] == "bad"
    engine.append([{"type": "complaint_closed", "id": "cl-1", "complaint": "remedy:bad", "date": "2026-03-20"}])
    cases = {c["id"]: c for c in engine.complaints()}
    assert (cases["remedy:bad"]["status"], cases["remedy:bad"]["closed"]) == ("resolved", "2026-03-20")
    assert [c["id"] for c in engine.complaints(open_only=True)] == ["remedy:worse"]
    # a correction that removes the complaint-level answer removes the derived case; nothing was ever logged
    engine.append([{"type": "correction", "id": "co-1", "response": "worse", "answers": {"q1": S, "q2": S, "q3": S,
                                                                                        "q4": S}, "reason": "typo"}])
    assert [c["id"] for c in engine.complaints()] == ["remedy:bad"]
    assert not [e for e in engine.log() if e["id"].startswith("remedy:")]
    with pytest.raises(IngestFailed) as e:
        engine.append([{"type": "complaint_closed", "id": "cl-2", "complaint": "remedy:bad", "date": "2026-03-21"}])
    assert e.value.problems == ["events[0]: field `complaint`: 'remedy:bad' was already closed by 'cl-1'"]
    before = engine.complaints()
    engine.rebuild()
    assert engine.complaints() == before


def test_complaints_command_lists_filed_complaints_with_rectifications(cli, tmp_path):
    cli("ingest", write_jsonl(tmp_path / "c.jsonl", [
        sales("bad", "2026-03", "c1", [S, S, S, D]),
        {"type": "complaint", "id": "k1", "subject": "c2", "period": "2026-02", "text": "rude", "severity": "major",
         "source": "hotline"},
        {"type": "rectification", "id": "rx", "subject": "c2", "period": "2026-02", "issue": "training",
         "due": "2026-03-31", "complaint": "k1"},
        {"type": "complaint_closed", "id": "cl", "complaint": "k1", "date": "2026-03-02", "outcome": "rejected"}]))
    rows = cli.json("complaints")
    assert [(r["id"], r["status"], r["rectifications"]) for r in rows] == [
        ("k1", "rejected", ["rx"]), ("remedy:bad", "open", [])]
    assert [r["id"] for r in cli.json("complaints", "--open")] == ["remedy:bad"]
    assert [r["id"] for r in cli.json("complaints", "--subject", "c2", "--period", "2026-Q1")] == ["k1"]
    assert "remedy:bad" in cli("complaints").stdout


def test_org_chart_cycles_are_rejected_at_ingest(engine):
    engine.append(ORG)
    with pytest.raises(IngestFailed) as e:
        engine.append([unit("dealer", "c1", "dealer", from_="2026-06")])
    assert e.value.problems == ["events[0]: field `parent`: 'c1' would make a cycle in the org chart: "
                                "dealer → c1 → team-a → dealer"]
    with pytest.raises(IngestFailed) as e:
        engine.append([unit("c1", "c1", from_="2026-07")])
    assert e.value.problems == ["events[0]: field `parent`: a unit cannot be its own parent ('c1')"]


def test_units_command_shows_the_chain_as_of_a_month(cli, tmp_path):
    cli("ingest", write_jsonl(tmp_path / "u.jsonl", [*ORG, unit("c3", "team-a", from_="2026-05")]))
    (before,) = cli.json("units", "c3", "--as-of", "2026-04")
    (after,) = cli.json("units", "c3", "--as-of", "2026-05")
    assert before["chain"] == ["team-b", "dealer"] and after["chain"] == ["team-a", "dealer"]
    assert after["since"] == "2026-05"


def test_validation_lines(cli, tmp_path):
    bad = [sales("x1", "2026-03", "c1", [S, S, S, "great"]), {**sales("x2", "2026-03", "c1", [S, S, S, S]),
                                                               "form": "test-drive"},
           sales("x3", "2026-03", "c1", [S, S, S]), sales("x4", "2026-03", "c1", [S, S, S, 101])]
    lines = cli("ingest", write_jsonl(tmp_path / "bad.jsonl", bad), expect=1).stderr.splitlines()
    assert "1: field `answers.q4`: expected an answer (很好 / 比较好" in lines[0] and "got 'great'" in lines[0]
    assert lines[1].endswith(":2: field `form`: expected one of sales, service for dealership-cs, got 'test-drive'")
    assert lines[2].endswith(':3: field `answers.q4`: missing item (answer it or give "N/A")')
    assert lines[3].endswith(":4: field `answers.q4`: expected points 0–100, got 101")


def test_rebuild_equals_incremental_with_org_changes(db, tmp_path):
    from csat.engine import Engine
    events = [*ORG, sales("a", "2026-04", "c3", [S, S, S, S]), sales("b", "2026-05", "c3", [B, B, D, B]),
              service("j", "2026-05", "c1", ["c2", "c3"], [S, S, S, S, S, S])]
    with Engine.open(db) as e:
        for ev in events:
            e.append([ev])
            e.catch_up()
        e.append([unit("c3", "team-a", from_="2026-05")])
        e.catch_up()
        with connect(db) as conn:
            before = conn.execute("SELECT * FROM scores ORDER BY 1, 2, 3, 4").fetchall()
            cases = conn.execute("SELECT * FROM rm_cases ORDER BY id").fetchall()
        e.rebuild()
        with connect(db) as conn:
            assert conn.execute("SELECT * FROM scores ORDER BY 1, 2, 3, 4").fetchall() == before
            assert conn.execute("SELECT * FROM rm_cases ORDER BY id").fetchall() == cases


def test_an_adoption_that_changes_crediting_recredits_and_one_that_does_not_is_cheap(engine):
    engine.append([unit("shop", kind="workshop"), unit("bay-1", "shop", "bay"),
                   service("j1", "2026-03", "sa", ["bay-1"], [S, S, D, S, S, S])])
    assert score(engine, "bay-1", "2026-03", "repair_quality")["score"] == Decimal("25.00")
    # the implicit default adoption runs from 2026-03; the same `from` and a later event wins
    engine.append([{"type": "adoption", "id": "points", "ruleset": "dealership-cs", "from": "2026-03",
                    "params": {"levels": {"dissatisfied": {"points": 20}}}}])
    assert score(engine, "bay-1", "2026-03", "repair_quality")["score"] == Decimal("20.00")
    engine.append([{"type": "adoption", "id": "to-advisor", "ruleset": "dealership-cs", "from": "2026-03",
                    "params": {"forms": {"service": {"metrics": {"repair_quality": {"credit": "subject"}}}}}}])
    assert score(engine, "bay-1", "2026-03", "repair_quality") is None
    assert score(engine, "shop", "2026-03", "repair_quality") is None
    # merged over the policy in force (events.md §2), not the shipped defaults: 20 points stay
    assert score(engine, "sa", "2026-03", "repair_quality")["score"] == Decimal("20.00")


def test_points_given_as_90_and_as_90_0_keep_their_digits_in_any_process(db):
    """Two callbacks answered alike in value (90 and 90.0 are equal in Python, and hash alike) are
    not one answer pattern: a month's digits do not depend on which the rule set saw first, so a
    rebuild in several processes publishes what the incremental path published."""
    from csat.engine import Engine
    with Engine.open(db) as e:
        e.append([sales("x", "2026-04", "c1", [90.0, 90.0, 90.0, 90.0])])
        e.catch_up()
        e.append([sales("y", "2026-05", "c1", [90, 90, 90, 90])])
        e.catch_up()
        states = ("SELECT period, score, state FROM scores WHERE ruleset = 'dealership-cs' AND kind = 'month' "
                  "ORDER BY period")
        with connect(db) as conn:
            incremental = conn.execute(states).fetchall()
        assert [s for _, s, _ in incremental] == ["90.00", "90.00"]
        assert ['"sum":"90.0"' in incremental[0][2], '"sum":"90"' in incremental[1][2]] == [True, True]
        e.rebuild(jobs=2)
        with connect(db) as conn:
            assert conn.execute(states).fetchall() == incremental
