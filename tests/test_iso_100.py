"""iso-100 edges: rescaling, grades on unrounded scores, pooled roll-ups, validation, other parameters."""
from __future__ import annotations

from decimal import Decimal

from conftest import write_jsonl

FULL = {"quality": 30, "delivery": 20, "service": 15, "after_sales": 20, "price": 15}


def resp(id_, month="2026-11", subject="company", comment=None, **answers):
    ev = {"type": "response", "id": id_, "ruleset": "iso-100", "period": month, "subject": subject,
          "rater": f"c-{id_}", "answers": {**FULL, **answers}}
    if comment is not None:
        ev["comment"] = comment
    return ev


def test_grade_compares_the_unrounded_score(engine):
    engine.append([resp("r1", quality=19.99), resp("r2", quality=20)])  # 89.99 and 90 → 89.995
    (row,) = engine.scores(ruleset="iso-100", period="2026-11")
    assert row["score"] == Decimal("90.00")          # published half-up
    assert (row["grade"], row["grade_label"]) == ("B", "乙")  # but 89.995 < 90
    assert row["grades"] == {"A": 1, "B": 1, "C": 0, "D": 0}


def test_na_rescales_and_quarters_pool_responses(engine):
    engine.append([resp("a", month="2026-10", after_sales="N/A", price=0),   # 65 of 80 → 81.25
                   resp("b", month="2026-11", quality=0, comment="更快交货"),  # 70
                   resp("c", month="2026-11", quality=0, delivery=0, comment=" "),  # 50
                   ])
    rows = {r["period"]: r for r in engine.scores(ruleset="iso-100")}
    assert rows["2026-10"]["score"] == Decimal("81.25") and rows["2026-10"]["grade"] == "B"
    assert rows["2026-11"]["score"] == Decimal("60.00") and rows["2026-11"]["suggestions"] == 1
    # pooled: (81.25 + 70 + 50) / 3 = 67.08, not the mean of months (81.25 + 60) / 2 = 70.63
    assert rows["2026-Q4"]["score"] == Decimal("67.08") and rows["2026-Q4"]["grade"] == "D"
    assert rows["2026-Q4"]["grades"] == {"A": 0, "B": 1, "C": 1, "D": 1}
    assert rows["2026"]["responses"] == 3
    steps = [s["formula"] for s in engine.explain("iso-100", "company", "2026-10")["steps"]]
    assert "100 × 65 / 80 (N/A rescaled)" in steps


def test_validation_one_line_each(cli, tmp_path):
    bad = [resp("r1", quality=31), resp("r2", bonus=5), {**resp("r3"), "answers": {"quality": 10}},
           resp("r4", price="good")]
    r = cli("ingest", write_jsonl(tmp_path / "bad.jsonl", bad), expect=1)
    lines = r.stderr.splitlines()
    assert lines[0].endswith(':1: field `answers.quality`: expected points 0 to 30 or "N/A", got 31')
    assert lines[1].endswith(":2: field `answers.bonus`: unknown item (expected one of quality, delivery, "
                             "service, after_sales, price)")
    assert lines[2].endswith(':3: field `answers.delivery`: missing item (answer it with points or "N/A")')
    assert sum(":3:" in line for line in lines) == 4  # four missing items, one line each
    assert lines[-2].endswith(":4: field `answers.price`: expected points 0 to 15 or \"N/A\", got 'good'")


def test_an_adoption_with_other_maxima_and_grades(engine):
    engine.append([{"type": "adoption", "id": "reweighted", "ruleset": "iso-100", "from": "2026-01",
                    "params": {"items": {"quality": {"max": 40}, "delivery": {"max": 10}},
                               "grades": [{"id": "pass", "label": "合格", "min": 60},
                                          {"id": "fail", "label": "不合格", "min": 0}]}}])
    engine.append([resp("r1", quality=40, delivery=10, service=0, after_sales=0, price=0),   # 50 → fail
                   resp("r2", quality=30, delivery=10, service=15, after_sales=20, price=15)])  # 90 → pass
    (row,) = engine.scores(ruleset="iso-100", period="2026-11")
    assert (row["score"], row["grade"], row["grade_label"]) == (Decimal("70.00"), "pass", "合格")
    assert row["grades"] == {"pass": 1, "fail": 1} and row["adoption"] == "reweighted"


def test_adoption_tables_merge_key_by_key_over_the_defaults(engine):
    """events.md §2: tables merge key by key, so the shipped items stay unless replaced."""
    from csat.engine import IngestFailed
    try:
        engine.append([{"type": "adoption", "id": "bad-sum", "ruleset": "iso-100", "from": "2026-01",
                        "params": {"items": {"quality": {"max": 60}}}}])
    except IngestFailed as e:
        assert e.problems == ["events[0]: params: key `items`: the maxima must sum to 100, got 130"]
    else:
        raise AssertionError("maxima summing to 130 accepted")
