"""plant-50 edges: coefficient boundaries, each grade rule at its boundary, bonus runs, N/A forms, withdrawals."""
from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import write_jsonl

LEVEL = {"s": "满意", "a": "一般", "u": "不满意", "v": "很不满意", "n": "N/A"}


def form(dept, month, workshop, codes="sss", **kw):
    answers = {f"i{k}": LEVEL[c] for k, c in enumerate(codes)}
    reasons = {f"i{k}": "late" for k, c in enumerate(codes) if c in "uv"}
    ev = {"type": "response", "id": f"{dept}-{month}-{workshop}", "ruleset": "plant-50", "period": month,
          "subject": dept, "rater": workshop, "answers": answers}
    if reasons:
        ev["reasons"] = reasons
    ev.update(kw)
    return ev


def month_row(engine, dept, month):
    (row,) = engine.scores(ruleset="plant-50", subject=dept, period=month)
    return row


def forms_with(dept, month, workshops, bad=""):
    """`workshops` forms; the levels in `bad` spread one per form from the first."""
    return [form(dept, month, f"w{i}", (bad[i] if i < len(bad) else "s") + "ss") for i in range(workshops)]


@pytest.mark.parametrize("workshops, coefficient, deduction, score", [
    (5, "0.9", "1.11", "38.89"), (6, "1.1", "0.91", "39.09"), (10, "1.1", "0.91", "39.09"),
    (11, "1.3", "0.77", "39.23"),
])
def test_coefficient_boundaries(engine, workshops, coefficient, deduction, score):
    engine.append(forms_with("d", "2026-03", workshops, "uu"))  # weak: base deduction 1
    row = month_row(engine, "d", "2026-03")
    assert (row["grade"], row["workshops"]) == ("weak", workshops)
    assert (row["coefficient"], row["deduction"], row["score"]) == tuple(map(Decimal, (coefficient, deduction, score)))


@pytest.mark.parametrize("bad, grade, score", [
    ("uuuu", "very_poor", "26.67"),  # exactly 4 unsatisfied: 30 − 3 / 0.9 (3.33)
    ("vv", "very_poor", "26.67"),
    ("uuu", "poor", "32.78"),         # 35 − 2 / 0.9 (2.22)
    ("uuv", "poor", "32.78"),         # 2 unsatisfied + 1 very unsatisfied
    ("uu", "weak", "38.89"),
    ("v", "weak", "38.89"),
    ("u", "good", "44.44"),           # 45 − 0.5 / 0.9 (0.56)
    ("aa", "good", "44.44"),          # 2 average
    ("a", "excellent", "50.00"),      # 1 average stays excellent
    ("", "excellent", "50.00"),
])
def test_each_grade_rule_at_its_boundary(engine, bad, grade, score):
    engine.append(forms_with("d", "2026-03", 5, bad))
    row = month_row(engine, "d", "2026-03")
    assert (row["grade"], row["score"]) == (grade, Decimal(score))
    counts = row["counts"]
    assert (counts["average"], counts["unsatisfied"], counts["very_unsatisfied"]) == (
        bad.count("a"), bad.count("u"), bad.count("v"))


def test_score_never_leaves_its_band(engine, tmp_path):
    # a company gives `poor` a base deduction larger than its band: the score stops at the bottom
    engine.append([{"type": "adoption", "id": "harsh", "ruleset": "plant-50", "from": "2026-01",
                    "params": {"grades": [
                        {"id": "poor", "label": "差", "band": [31, 35], "deduction": 9, "when": [{"unsatisfied": 1}]},
                        {"id": "excellent", "label": "优秀", "band": [46, 50], "deduction": 0, "when": [{}]}]}}])
    engine.append(forms_with("d", "2026-03", 3, "u"))
    row = month_row(engine, "d", "2026-03")
    assert (row["grade"], row["deduction"], row["score"]) == ("poor", Decimal("10.00"), Decimal("31"))


def test_bonus_is_earned_twice_in_a_six_month_run(engine):
    months = [f"2026-{m:02d}" for m in range(1, 7)]
    engine.append([f for m in months for f in forms_with("d", m, 3)])
    rows = {m: month_row(engine, "d", m) for m in months}
    assert [rows[m]["bonus"] for m in months] == [Decimal(x) for x in ("0", "0", "3", "0", "0", "3")]
    assert [rows[m]["score"] for m in months] == [Decimal(x) for x in ("50", "50", "53", "50", "50", "53")]
    assert engine.scores(ruleset="plant-50", subject="d", period="2026-Q2")[0]["score"] == Decimal("51.00")


def test_a_month_without_forms_breaks_the_run(engine):
    months = ["2026-01", "2026-02", "2026-04", "2026-05", "2026-06"]
    engine.append([f for m in months for f in forms_with("d", m, 3)])
    bonus = {m: month_row(engine, "d", m)["bonus"] for m in months}
    assert bonus == {"2026-01": 0, "2026-02": 0, "2026-04": 0, "2026-05": 0, "2026-06": Decimal("3")}


def test_a_late_form_that_fills_the_gap_moves_later_bonuses(engine):
    months = ["2026-01", "2026-02", "2026-04", "2026-05", "2026-06"]
    engine.append([f for m in months for f in forms_with("d", m, 3)])
    engine.append(forms_with("d", "2026-03", 3))  # now Jan..Jun is one run: bonus in March and June
    bonus = {m: month_row(engine, "d", m)["bonus"] for m in [*months, "2026-03"]}
    assert bonus["2026-03"] == 3 and bonus["2026-06"] == 3 and bonus["2026-05"] == 0


def test_a_withdrawal_that_changes_a_grade(engine):
    engine.append(forms_with("d", "2026-03", 4, "uu"))
    assert month_row(engine, "d", "2026-03")["grade"] == "weak"
    engine.append([{"type": "withdrawal", "id": "wd", "response": "d-2026-03-w1", "reason": "wrong department"}])
    row = month_row(engine, "d", "2026-03")
    assert (row["grade"], row["workshops"], row["responses"], row["score"]) == ("good", 3, 3, Decimal("44.44"))
    x = engine.explain("plant-50", "d", "2026-03")
    assert {e["id"]: e["used"] for e in x["events"]}["d-2026-03-w1"] is False


def test_an_all_na_form_does_not_count_the_workshop(engine):
    forms = forms_with("d", "2026-03", 6, "uu")
    forms[5] = form("d", "2026-03", "w5", "nnn")
    engine.append(forms)
    row = month_row(engine, "d", "2026-03")
    assert (row["workshops"], row["coefficient"], row["responses"]) == (5, Decimal("0.9"), 5)
    why = {e["id"]: e.get("why") for e in engine.explain("plant-50", "d", "2026-03")["events"]}
    assert why["d-2026-03-w5"] == "every answer is N/A"


def test_validation_lines(cli, tmp_path):
    bad = [form("d", "2026-03", "w1", "us"), {**form("d", "2026-03", "w2"), "rater": None},
           form("d", "2026-03", "w3", "ss", answers={"i0": "还行"})]
    bad[0].pop("reasons")
    r = cli("ingest", write_jsonl(tmp_path / "bad.jsonl", bad), expect=1)
    lines = r.stderr.splitlines()
    assert lines[0].endswith(":1: field `reasons.i0`: a reason is required for 不满意 (存在异议的应写明详细原因)")
    assert lines[1].endswith(":2: field `rater`: required by plant-50: the workshop (车间) that rated")
    assert ":3: field `answers.i0`: expected a level (满意 / satisfied / 一般" in lines[2]
    assert len(lines) == 4


def test_explain_shows_counts_rule_coefficient_and_arithmetic(engine):
    engine.append(forms_with("d", "2026-03", 7, "uv"))
    steps = {s["label"]: s for s in engine.explain("plant-50", "d", "2026-03")["steps"]}
    assert "d-2026-03-w0:i0" in steps["count unsatisfied"]["formula"]
    assert "(unsatisfied ≥ 2 and very_unsatisfied ≥ 1)" not in steps["grade"]["formula"]  # 1 u + 1 v is weak
    assert steps["grade"]["value"] == "weak" and "very_unsatisfied ≥ 1" in steps["grade"]["formula"]
    assert "7 distinct workshop(s)" in steps["coefficient (考核系数)"]["formula"]
    assert steps["deduction (实扣)"]["formula"] == "round-half-up(1 ÷ 1.1, 2)"
    assert steps["deduction (实扣)"]["value"] == Decimal("0.91")
