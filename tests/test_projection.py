"""Projections: corrections and withdrawals move scores; incremental equals rebuild; only touched groups rescore."""
from __future__ import annotations

from decimal import Decimal

import pytest

import synth
from conftest import EXAMPLES, write_jsonl, connect

from csat.engine import Engine
from csat.rulesets.airline_1000 import Airline1000

AIR = EXAMPLES / "airline-1000.jsonl"


def score_of(engine, period="2026-03", subject="finance"):
    (row,) = engine.scores(ruleset="airline-1000", period=period, subject=subject)
    return row


def test_correction_and_withdrawal_move_scores_and_explain_shows_them(engine, tmp_path):
    engine.ingest([AIR])
    assert score_of(engine)["score"] == Decimal("720.00")
    # maintenance's questionnaire (C, D, B) = 600 is corrected to (B, B, B) = 800 → (840 + 800) / 2 = 820
    engine.ingest([write_jsonl(tmp_path / "c.jsonl", [
        {"type": "correction", "id": "fix-1", "response": "air-2026-03-3",
         "answers": {"professionalism": "B", "efficiency": "B", "quality": "B"}, "reason": "scanned the wrong sheet"}])])
    row = score_of(engine)
    assert (row["score"], row["final"]) == (Decimal("820.00"), Decimal("123.00"))
    assert score_of(engine, "2026-Q1")["score"] == Decimal("756.67")  # (700 + 750 + 820) / 3
    # withdraw flight-ops' second questionnaire (800): flight-ops = 880 → (880 + 800) / 2 = 840
    engine.ingest([write_jsonl(tmp_path / "w.jsonl", [
        {"type": "withdrawal", "id": "wd-1", "response": "air-2026-03-2", "reason": "deputy was on leave"}])])
    assert score_of(engine)["score"] == Decimal("840.00")
    assert score_of(engine)["responses"] == 2
    x = engine.explain("airline-1000", "finance", "2026-03")
    by_id = {e["id"]: e for e in x["events"]}
    assert by_id["air-2026-03-2"]["used"] is False and "withdrawn by wd-1" in by_id["air-2026-03-2"]["why"]
    assert by_id["wd-1"]["type"] == "withdrawal" and by_id["wd-1"]["used"] is True
    assert by_id["fix-1"]["type"] == "correction" and by_id["fix-1"]["used"] is True
    assert by_id["air-2026-03-3"]["used"] is True
    positions = [e["position"] for e in x["events"]]
    assert positions == sorted(positions) and by_id["wd-1"]["position"] > by_id["fix-1"]["position"]
    assert any("800" in s["formula"] for s in x["steps"] if "maintenance" in s["label"])


def test_explain_agrees_with_the_published_row(engine):
    engine.ingest([AIR])
    for row in engine.scores():
        x = engine.explain(row["ruleset"], row["subject"], row["period"], row["metric"])
        assert {k: x[k] for k in row} == row
        assert x["params_hash"].startswith("sha256:")
        assert x["steps"] and x["events"]


@pytest.fixture(autouse=True)
def one_recording_time(monkeypatch):
    """Tests here compare the read models of different stores row for row: each response's state
    keeps its recording time, so every store records at the same time."""
    from csat.engine.app import ingest
    monkeypatch.setattr(ingest, "now", lambda: "2026-03-01T08:00:00.000000Z")


def dump(db: str) -> dict[str, list[tuple]]:
    with connect(db) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").fetchall()
                for t in ("scores", "rm_responses", "rm_credits", "rm_adoptions", "rm_units")}


def test_incremental_equals_rebuild_row_for_row(fresh_db, tmp_path):
    events = list(synth.airline(3000, departments=6, raters=5, managers=2, corrections=0.05, withdrawals=0.03))
    parts = [events[:700], events[700:1900], events[1900:]]
    inc = fresh_db("inc")
    with Engine.open(inc) as e:
        for i, part in enumerate(parts):
            e.ingest([write_jsonl(tmp_path / f"p{i}.jsonl", part)])
            e.catch_up()
        assert len(e.scores()) > 50
    incremental = dump(inc)
    with Engine.open(inc) as e:
        e.rebuild()
    assert dump(inc) == incremental
    once = fresh_db("once")
    with Engine.open(once) as e:
        e.ingest([write_jsonl(tmp_path / "all.jsonl", events)])
        e.catch_up()
    assert dump(once)["scores"] == incremental["scores"]


class CountingAirline(Airline1000):
    def __init__(self):
        self.scored: list[tuple[str, str]] = []

    def score_month(self, month, trace):
        self.scored.append((month.subject, month.month))
        return super().score_month(month, trace)


def test_a_new_response_rescores_only_its_subject_month(db, tmp_path):
    rs = CountingAirline()
    events = list(synth.airline(600, departments=5, raters=4, managers=1))
    with Engine.open(db, rulesets=[rs]) as e:
        e.ingest([write_jsonl(tmp_path / "a.jsonl", events)])
        e.catch_up()
        assert len(set(rs.scored)) > 20
        rs.scored.clear()
        before = {(r["period"], r["subject"]): r for r in e.scores()}
        e.append([{"type": "response", "id": "extra", "ruleset": "airline-1000", "period": "2024-02",
                   "subject": "dept-03", "rater": "unit-09", "answers": {"overall": "E"},
                   "reasons": {"overall": "missed deadline"}}])
        after = {(r["period"], r["subject"]): r for r in e.scores()}
        assert rs.scored == [("dept-03", "2024-02")]
        changed = {k for k in after if after[k] != before.get(k)}
        assert changed == {("2024-02", "dept-03"), ("2024-Q1", "dept-03"), ("2024", "dept-03")}


def test_adoption_rescores_months_from_its_from(engine, tmp_path):
    engine.ingest([AIR])
    finance = {"weight": "0.2", "indicators": {"professionalism": 0.4, "efficiency": 0.3, "quality": 0.3}}
    engine.append([{"type": "adoption", "id": "march-weights", "ruleset": "airline-1000", "from": "2026-03",
                    "params": {"departments": {"finance": finance}}}])
    rows = {r["period"]: r for r in engine.scores()}
    assert rows["2026-02"]["adoption"] == "airline-policy-2026" and rows["2026-02"]["final"] == Decimal("112.50")
    assert rows["2026-03"]["adoption"] == "march-weights" and rows["2026-03"]["final"] == Decimal("144.00")
    assert rows["2026-Q1"]["final"] == Decimal("120.50")  # (105 + 112.5 + 144) / 3


def test_adoption_merges_over_the_policy_in_force_and_replace_takes_tables_whole(engine):
    engine.ingest([AIR])
    before = score_of(engine)
    engine.append([{"type": "adoption", "id": "weight-only", "ruleset": "airline-1000", "from": "2026-03",
                    "params": {"departments": {"finance": {"weight": "0.2"}}}}])
    row = score_of(engine)
    # the indicator weights in force stay; only the department weight moves
    assert row["score"] == before["score"] and row["final"] == (before["score"] * Decimal("0.2")).quantize(
        Decimal("0.01"))
    engine.append([{"type": "adoption", "id": "weight-and-no-indicators", "ruleset": "airline-1000",
                    "from": "2026-03", "replace": ["departments.finance"],
                    "params": {"departments": {"finance": {"weight": "0.2"}}}}])
    row = score_of(engine)
    # finance taken whole: no indicator weights any more, every answered indicator weighs the same
    # flight-ops (866.67 + 800) / 2 = 833.33; maintenance 600; (833.33 + 600) / 2 = 716.67; × 0.2 = 143.33
    assert (row["score"], row["final"]) == (Decimal("716.67"), Decimal("143.33"))


def test_two_engines_on_one_store_stay_consistent(db, tmp_path):
    """One process catches up the shared read models; the other's in-memory state must follow."""
    with Engine.open(db) as a, Engine.open(db) as b:
        a.ingest([AIR])
        assert score_of(a)["adoption"] == "airline-policy-2026"
        assert score_of(b)["final"] == Decimal("108.00")
        finance = {"weight": "0.2", "indicators": {"professionalism": 0.4, "efficiency": 0.3, "quality": 0.3}}
        b.append([{"type": "adoption", "id": "b-weights", "ruleset": "airline-1000", "from": "2026-03",
                   "params": {"departments": {"finance": finance}}}])
        b.catch_up()  # b moves the shared views past the adoption
        a.append([{"type": "response", "id": "late-form", "ruleset": "airline-1000", "period": "2026-03",
                   "subject": "finance", "rater": "cabin", "answers": {"professionalism": "A", "efficiency": "A",
                                                                       "quality": "A"}}])
        row = score_of(a)
        assert row["adoption"] == "b-weights"  # a knows the adoption b applied
        assert row["final"] == Decimal("162.67")  # (840 + 600 + 1000) / 3 = 813.33…, × 0.2


def test_both_ways_of_reading_a_month_give_the_same_rows(fresh_db, tmp_path):
    """Few dirty subjects: a join per subject; many (a rebuild): range scans. Same rows either way."""
    events = list(synth.dealership(3000, consultants=60, advisors=10, bays=4))
    events += list(synth.supplier(600, suppliers=12))
    dumps = []
    for threshold in (0, 10_000):
        db = fresh_db(f"t{threshold}")
        with Engine.open(db) as e:
            e.projection.MANY_SUBJECTS = threshold
            e.ingest([write_jsonl(tmp_path / "d.jsonl", events)])
            e.rebuild()
        dumps.append(dump(db))
    assert dumps[0]["scores"] and dumps[0] == dumps[1]
