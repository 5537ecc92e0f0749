"""A rule set lost and regained: events that concern every rule set (unit moves, complaints for no
rule set in particular) arrive while it is not installed; once it is back, the next read shows
exactly what a store that always had it shows (issue 20.1) — and a department answers for its
wards' complaints through ``MonthInput.below`` (issue 20.2)."""
from __future__ import annotations

from decimal import Decimal


from csat.engine import Engine
from csat.plugins import installed_rulesets, make_plugin_manager
from conftest import connect
from wardcare import WardCare


def builtins():
    return [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]


def unit(id_, parent, from_="", kind="ward", name=None):
    e = {"type": "unit", "id": id_, "parent": parent, "kind": kind, "name": name or id_}
    if from_:
        e["from"] = from_
    return e


def rating(i, subject, period, care):
    return {"type": "response", "id": f"w{i}", "ruleset": "ward-care", "period": period, "subject": subject,
            "rater": f"patient-{i}", "answers": {"care": care}}


def complaint(id_, subject, period, ruleset=None):
    e = {"type": "complaint", "id": id_, "subject": subject, "period": period, "date": f"{period}-10",
         "severity": "minor", "text": "waited"}
    if ruleset:
        e["ruleset"] = ruleset
    return e


PHASES = [
    ("with", [unit("medicine", None, kind="department"), unit("surgery", None, kind="department"),
              unit("w1", "medicine"), unit("w2", "medicine"), unit("w3", "surgery")]
     + [rating(i, f"w{1 + i % 3}", f"2026-0{1 + i % 3}", 60 + 3 * i) for i in range(14)]
     + [complaint("c1", "w1", "2026-01", "ward-care")]),
    ("without", [unit("w2", "surgery", "2026-02"),                      # a ward moves to another department
                 complaint("c2", "w3", "2026-02"),                       # for every rule set
                 complaint("c3", "w2", "2026-03")]),
    ("with", [{"type": "correction", "id": "fix-w4", "response": "w4", "answers": {"care": 99}, "reason": "typo"},
              {"type": "withdrawal", "id": "wd-w5", "response": "w5", "reason": "duplicate"},
              {"type": "adoption", "id": "harsher", "ruleset": "ward-care", "from": "2026-03",
               "params": {"deduction": "7.5"}}]),
    ("without", [unit("w1", "surgery", "2026-03"), complaint("c4", "w1", "2026-03"),
                 {"type": "response", "id": "air-1", "ruleset": "airline-1000", "period": "2026-03",
                  "subject": "finance", "rater": "ops", "answers": {"quality": "A"}}]),
    ("with", []),
]


def published(db):
    with connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT * FROM scores ORDER BY ruleset, period, subject, metric")]


def test_a_rule_set_lost_and_regained_publishes_what_a_store_that_always_had_it_publishes(db, fresh_db):
    always, regained = db, fresh_db("regained")
    for have, events in PHASES:
        with Engine.open(always, rulesets=[*builtins(), WardCare()]) as engine:
            engine.append(events)
            engine.catch_up()
        with Engine.open(regained, rulesets=[*builtins(), *([WardCare()] if have == "with" else [])]) as engine:
            engine.append(events)
            engine.catch_up()  # as csat ingest does: each phase is applied by the plugins of its time
            if have == "without":
                assert any("ward-care" in w for w in engine.warnings())
    with Engine.open(regained, rulesets=[*builtins(), WardCare()]) as engine:
        engine.scores()  # the first read re-derives the regained rule set
        assert engine.warnings() == []
    assert published(regained) == published(always)
    with Engine.open(always, rulesets=[*builtins(), WardCare()]) as engine:  # and a rebuild agrees
        engine.rebuild()
    assert published(regained) == published(always)


def test_a_department_answers_for_its_wards_complaints(db):
    with Engine.open(db, rulesets=[WardCare()]) as engine:
        engine.append([unit("medicine", None, kind="department"), unit("w1", "medicine"), unit("w2", "medicine"),
                       rating(1, "w1", "2026-01", 80), rating(2, "w2", "2026-01", 90)])
        engine.append([complaint("c1", "w1", "2026-01", "ward-care")])   # after the department was scored
        rows = {r["subject"]: r["score"] for r in engine.scores(period="2026-01")}
        assert rows == {"w1": Decimal("75.00"), "w2": Decimal("90.00"), "medicine": Decimal("80.00")}
        why = engine.explain("ward-care", "medicine", "2026-01")
        assert "(w1)" in why["steps"][0]["formula"]
        engine.append([unit("w1", None, "2026-01", kind="ward")])  # w1 leaves the department
        rows = {r["subject"]: r["score"] for r in engine.scores(period="2026-01")}
        assert rows == {"w1": Decimal("75.00"), "w2": Decimal("90.00"), "medicine": Decimal("90.00")}
        incremental = published(db)
        engine.rebuild()
    assert published(db) == incremental
