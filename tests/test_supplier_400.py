"""supplier-400: each deduction and its floor, steps, ratios, means over departments, complaints,
rectifications on time / late / never / ineffective, statuses, a missing dimension; the closed loop views."""
from __future__ import annotations

from decimal import Decimal

import pytest

from csat.engine import IngestFailed

PERFECT = {
    "quality": {"lots_total": 10, "lots_passed": 10, "concessions": 0, "defect_rate": 0, "defect_limit": 1},
    "delivery": {"late_deliveries": 0},
    "service": {"poor_cooperation": 0, "late_replies": 0},
    "price": {"late_adjustments": 0, "price_gap": 0, "invoice_issues": 0},
}


def resp(sup, month, dim, rater="dept", **answers):
    return {"type": "response", "id": f"{sup}-{month}-{dim}-{rater}", "ruleset": "supplier-400", "period": month,
            "subject": sup, "form": dim, "rater": rater, "answers": {**PERFECT[dim], **answers}}


def month(sup, m, skip=(), **overrides):
    """A full month of perfect responses; overrides as dim={field: value}."""
    return [resp(sup, m, d, **overrides.get(d, {})) for d in PERFECT if d not in skip]


def row(engine, sup, m, metric):
    rows = engine.scores(ruleset="supplier-400", subject=sup, period=m, metric=metric)
    return rows[0] if rows else None


def dim(engine, sup, m, metric):
    return row(engine, sup, m, metric)["score"]


@pytest.mark.parametrize("answers, expected", [
    ({"lots_total": 10, "lots_passed": 9}, "70"),                      # 60 − 3 × 10 = 30, + 20 + 20
    ({"lots_total": 10, "lots_passed": 9, "concessions": 2}, "60"),    # 30 − 10
    ({"lots_total": 10, "lots_passed": 5}, "40"),                      # 60 − 150 → floored at 0
    ({"lots_total": 0, "lots_passed": 0, "concessions": 3}, "100"),    # no lots: the part is 60
    ({"defect_rate": 1.5, "defect_limit": 1}, "95"),                   # ⌈0.5 / 0.5⌉ = 1 step
    ({"defect_rate": 1.6, "defect_limit": 1}, "90"),                   # ⌈0.6 / 0.5⌉ = 2 steps
    ({"defect_rate": 1, "defect_limit": 1}, "100"),                    # at the limit: no deduction
    ({"defect_rate": 9, "defect_limit": 1}, "80"),                     # 16 steps → floored at 0
])
def test_quality_deductions_and_floors(engine, answers, expected):
    engine.append(month("s", "2026-01", quality=answers))
    assert dim(engine, "s", "2026-01", "quality") == Decimal(expected)


@pytest.mark.parametrize("field, count, dimension, expected", [
    ("late_deliveries", 1, "delivery", "75"), ("late_deliveries", 5, "delivery", "0"),
    ("poor_cooperation", 2, "service", "80"), ("poor_cooperation", 4, "service", "70"),
    ("late_replies", 1, "service", "90"), ("late_replies", 3, "service", "90"),
    ("late_adjustments", 2, "price", "80"), ("invoice_issues", 3, "price", "85"),
])
def test_other_deductions_and_floors(engine, field, count, dimension, expected):
    engine.append(month("s", "2026-01", **{dimension: {field: count}}))
    assert dim(engine, "s", "2026-01", dimension) == Decimal(expected)


@pytest.mark.parametrize("gap, expected", [(0.99, "100"), (1, "85"), (2.99, "85"), (3, "70"), (5.9, "70"),
                                           (6, "50"), (30, "50")])
def test_price_gap_steps(engine, gap, expected):
    engine.append(month("s", "2026-01", price={"price_gap": gap}))
    assert dim(engine, "s", "2026-01", "price") == Decimal(expected)


def test_price_floors_at_zero(engine):
    engine.append(month("s", "2026-01", price={"price_gap": 7, "late_adjustments": 4, "invoice_issues": 3}))
    assert dim(engine, "s", "2026-01", "price") == 0
    assert row(engine, "s", "2026-01", "composite")["status"] == "suspended"


@pytest.mark.parametrize("kind, composite", [("ic", "80.00"), ("pcb", "87.00"), ("consumables", "82.50"),
                                             (None, "80.00")])
def test_each_category_ratio(engine, kind, composite):
    units = [{"type": "unit", "id": "s", "kind": kind}] if kind else []
    # delivery 75, service 100, quality 100, price 70
    engine.append([*units, *month("s", "2026-01", delivery={"late_deliveries": 1}, price={"price_gap": 3})])
    r = row(engine, "s", "2026-01", "composite")
    assert (r["score"], r["category"]) == (Decimal(composite), kind or "ic")


def test_a_supplier_changing_category_is_rescored(engine):
    engine.append(month("s", "2026-01", delivery={"late_deliveries": 1}, price={"price_gap": 3}))
    assert row(engine, "s", "2026-01", "composite")["score"] == Decimal("80.00")
    engine.append([{"type": "unit", "id": "s", "kind": "pcb"}])
    assert row(engine, "s", "2026-01", "composite")["score"] == Decimal("87.00")


def test_mean_over_two_rating_departments_with_the_complaint_part_once(engine):
    engine.append([*month("s", "2026-01", skip=("quality",)),
                   resp("s", "2026-01", "quality", rater="qa", lots_total=10, lots_passed=9),   # 30 + 20
                   resp("s", "2026-01", "quality", rater="rd", lots_total=10, lots_passed=10),  # 60 + 20
                   {"type": "complaint", "id": "k1", "subject": "s", "period": "2026-01", "text": "x"}])
    r = row(engine, "s", "2026-01", "quality")
    assert r["score"] == Decimal("80.00")  # (50 + 80) / 2 = 65, + (20 − 5) once
    assert (r["departments"], r["iqc"], r["complaint"], r["complaints"]) == (2, Decimal("45.00"), Decimal("15.00"),
                                                                            ["k1"])


def test_complaint_severities_and_rejected_complaints(engine):
    engine.append([*month("s", "2026-01")] + [
        {"type": "complaint", "id": f"k-{sev}", "subject": "s", "period": "2026-01", "text": "x", "severity": sev}
        for sev in ("minor", "major")] + [
        {"type": "complaint", "id": "k-none", "subject": "s", "period": "2026-01", "text": "x"},
        {"type": "complaint", "id": "k-crit", "subject": "s", "period": "2026-01", "text": "x", "severity": "critical"},
        {"type": "complaint_closed", "id": "c1", "complaint": "k-crit", "date": "2026-01-30", "outcome": "rejected"}])
    r = row(engine, "s", "2026-01", "quality")
    assert r["complaint"] == Decimal("0.00")  # 5 + 10 + 5 = 20 → 0; the rejected critical costs nothing
    assert r["complaints"] == ["k-minor", "k-major", "k-none"]
    engine.append([{"type": "complaint_closed", "id": "c2", "complaint": "k-major", "date": "2026-02-02",
                    "outcome": "rejected"}])
    assert row(engine, "s", "2026-01", "quality")["complaint"] == Decimal("10.00")
    x = engine.explain("supplier-400", "s", "2026-01", "quality")
    why = {e["id"]: (e["used"], e.get("why")) for e in x["events"]}
    assert why["k-minor"] == (True, "complaint (minor) costs 5 quality points")
    assert why["k-crit"] == (False, "closed as rejected (unfounded): costs nothing")


def rect(id_, due, *updates):
    evs = [{"type": "rectification", "id": id_, "subject": "s", "period": "2026-01", "issue": "8D", "due": due}]
    for i, (status, date) in enumerate(updates):
        evs.append({"type": "rectification_update", "id": f"{id_}-u{i}", "rectification": id_, "status": status,
                    "date": date})
    return evs


def test_rectifications_on_time_late_never_ineffective_cancelled(engine):
    engine.append([*month("s", "2026-02"),
                   *rect("on-time", "2026-02-10", ("completed", "2026-02-10")),
                   *rect("late", "2026-02-10", ("completed", "2026-02-11")),
                   *rect("never", "2026-02-20"),
                   *rect("ineffective", "2026-02-20", ("completed", "2026-02-01"), ("ineffective", "2026-03-05")),
                   *rect("cancelled", "2026-02-20", ("cancelled", "2026-02-25")),
                   *rect("next-month", "2026-03-01")])
    r = row(engine, "s", "2026-02", "service")
    assert r["rectifications"] == ["late", "never", "ineffective"]
    assert (r["rectification"], r["score"]) == (Decimal("0.00"), Decimal("40.00"))  # 60 − 3 × 20 → 0
    # a completion recorded later for "never", dated after due, still counts as late
    engine.append([{"type": "rectification_update", "id": "never-done", "rectification": "never",
                    "status": "completed", "date": "2026-03-15"}])
    assert row(engine, "s", "2026-02", "service")["rectifications"] == ["late", "never", "ineffective"]


def test_rectifications_view_as_of_a_date(engine):
    engine.append([*rect("r1", "2026-02-10", ("completed", "2026-02-12"), ("verified", "2026-02-20")),
                   *rect("r2", "2026-02-10")])
    before = {r["id"]: r for r in engine.rectifications(as_of="2026-02-11")}
    assert (before["r1"]["status"], before["r1"]["overdue"], before["r1"]["completed"]) == ("open", True, None)
    after = {r["id"]: r for r in engine.rectifications(as_of="2026-02-28")}
    assert (after["r1"]["status"], after["r1"]["late"], after["r1"]["overdue"]) == ("verified", True, False)
    assert after["r2"]["overdue"] is True
    assert [r["id"] for r in engine.rectifications(as_of="2026-02-28", overdue=True)] == ["r2"]
    assert engine.rectifications(as_of="2026-02-10", overdue=True) == []  # due that day is not yet overdue


def test_life_cycle_violations_are_one_line_each(engine):
    engine.append(rect("r1", "2026-02-10"))
    with pytest.raises(IngestFailed) as e:
        engine.append([{"type": "rectification_update", "id": "u1", "rectification": "r1", "status": "verified",
                        "date": "2026-02-01"},
                       {"type": "rectification_update", "id": "u2", "rectification": "r1", "status": "cancelled",
                        "date": "2026-02-02"},
                       {"type": "rectification_update", "id": "u3", "rectification": "r1", "status": "completed",
                        "date": "2026-02-03"},
                       {"type": "rectification_update", "id": "u4", "rectification": "nope", "status": "completed",
                        "date": "2026-02-03"},
                       {"type": "rectification_update", "id": "u5", "rectification": "r1", "status": "completed",
                        "date": "2026-02-31"}])
    assert e.value.problems == [
        "events[0]: field `status`: rectification 'r1' is open; expected completed or cancelled, got 'verified'",
        "events[2]: field `status`: rectification 'r1' is cancelled; expected nothing more (the life cycle has "
        "ended), got 'completed'",
        "events[3]: field `rectification`: no rectification 'nope' in the log or earlier in the input",
        "events[4]: field `date`: expected a real date YYYY-MM-DD, got '2026-02-31'"]


def test_suspended_and_disqualified(engine):
    bad = {"delivery": {"late_deliveries": 4}, "price": {"price_gap": 7}}  # delivery 0 → suspended; C
    engine.append([*month("s", "2026-01", **bad), *month("s", "2026-02", **bad), *month("s", "2026-03", **bad),
                   *month("s", "2026-05", **bad)])
    status = {m: row(engine, "s", m, "composite")["status"] for m in ("2026-01", "2026-02", "2026-03", "2026-05")}
    assert status == {"2026-01": "suspended", "2026-02": "suspended", "2026-03": "disqualified",
                      "2026-05": "suspended"}  # April has no composite: the run breaks
    assert row(engine, "s", "2026-01", "composite")["grade"] == "C"
    assert "status" not in row(engine, "s", "2026-Q1", "composite")


def test_a_month_with_a_missing_dimension(engine):
    engine.append(month("s", "2026-01", skip=("price",)))
    assert row(engine, "s", "2026-01", "composite") is None
    assert dim(engine, "s", "2026-01", "quality") == 100
    from csat.engine import NotFound
    with pytest.raises(NotFound, match=r"not computed for 2026-01: no price response \(missing dimension\)"):
        engine.explain("supplier-400", "s", "2026-01", "composite")


def test_roll_up_means_of_months_and_grade_from_the_mean(engine):
    engine.append([*month("s", "2026-01"), *month("s", "2026-02", delivery={"late_deliveries": 4},
                                                    price={"price_gap": 6})])
    q = row(engine, "s", "2026-Q1", "composite")
    assert q["score"] == Decimal("77.50")  # (100 + 55) / 2 = 77.5 → B; months: A and C
    assert (q["grade"], q["grade_label"]) == ("B", "兰")
    assert row(engine, "s", "2026-Q1", "delivery")["score"] == Decimal("50.00")


def test_a_supplier_that_changes_category_from_a_month_keeps_its_earlier_months(engine):
    """A `unit` event giving a supplier another kind (category) from March re-weighs March on, and
    the months before keep their category: the published figures equal a rebuild's (the org chart
    kept only a unit's latest kind, so a rebuild re-weighed January and February too)."""
    from conftest import EXAMPLES  # noqa: F401
    from pathlib import Path
    engine.ingest([Path(__file__).resolve().parents[1] / "rulesets" / "examples" / "supplier-demo.jsonl"])
    engine.scores()
    engine.append([{"type": "unit", "id": "sup-pcb", "name": "深联", "kind": "ic", "from": "2026-03"}])
    key = lambda r: (r["subject"], r["period"], r["metric"])  # noqa: E731
    published = {key(r): (r["score"], r["grade"]) for r in engine.scores(ruleset="supplier-400")}
    january = engine.explain("supplier-400", "sup-pcb", "2026-01", "composite")
    march = engine.explain("supplier-400", "sup-pcb", "2026-03", "composite")
    assert "category pcb" in str(january["steps"]) and "category ic" in str(march["steps"])
    assert engine.units("2026-01", "sup-pcb")[0]["kind"] == "pcb" and engine.units("2026-03", "sup-pcb")[0]["kind"] == "ic"
    engine.rebuild()
    assert {key(r): (r["score"], r["grade"]) for r in engine.scores(ruleset="supplier-400")} == published
