"""supplier-400 — supplier rating: four dimensions of 100 points by deduction, a weighted composite.

Source: seed 001 (供应商等级评定评分标准); spec ``rulesets.md`` §5. Rating
departments send each supplier's monthly counts and rates, one response per
dimension (``form``); complaints about the supplier in the month cost quality
points and rectifications due in the month that were late, never completed or
ineffective cost service points. Dimensions are means over departments (the
complaint and rectification parts counted once); the composite weighs them by
the supplier's category; three consecutive C months disqualify.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_CEILING, Decimal
from typing import Any

import msgspec

from csat.engine import periods
from csat.engine.events import ResponseRecorded
from csat.engine.numbers import CONTEXT, ZERO, dec, div, mean, mul, plain, publish, sub, total
from csat.engine.ruleset import (CaseEvent, Figure, LateAnswers, MinGrade, MonthInput, Problem, QuestionItem,
                                 Questionnaire, RuleSet, Trace, first_grade, mean_of_months, module_file,
                                 threshold_problems)
from csat.engine.params import outside
from csat.plugins import hookimpl

DIMENSIONS = ("delivery", "service", "quality", "price")
FIELDS = {
    "quality": ("lots_total", "lots_passed", "concessions", "defect_rate", "defect_limit"),
    "delivery": ("late_deliveries",),
    "service": ("poor_cooperation", "late_replies"),
    "price": ("late_adjustments", "price_gap", "invoice_issues"),
}
RATES = {"defect_rate", "defect_limit", "price_gap"}
#: what each count or rate is, as the rating departments' forms name it
LABELS = {"lots_total": "来料批次", "lots_passed": "检验合格批次", "concessions": "让步接收批次",
          "defect_rate": "制程不良率 %", "defect_limit": "不良率控制目标 %", "late_deliveries": "延期交货次数",
          "poor_cooperation": "配合不力次数", "late_replies": "回复不及时次数", "late_adjustments": "调价不及时次数",
          "price_gap": "价格高于市场 %", "invoice_issues": "发票问题次数"}
HUNDRED = Decimal(100)


class Quality(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    iqc_max: Decimal
    per_pass_rate_point: Decimal
    per_concession: Decimal
    defect_max: Decimal
    defect_step: Decimal
    per_defect_step: Decimal
    complaint_max: Decimal
    default_severity: str
    complaint_points: dict[str, Decimal]


class Delivery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max: Decimal
    per_late_delivery: Decimal


class Service(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cooperation_max: Decimal
    per_poor_cooperation: Decimal
    rectification_max: Decimal
    per_failed_rectification: Decimal
    replies_max: Decimal
    per_late_reply: Decimal


class GapStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_gap: Decimal
    penalty: Decimal


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max: Decimal
    per_late_adjustment: Decimal
    per_invoice_issue: Decimal
    gap_steps: list[GapStep]


class Status(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    disqualify_grade: str
    disqualify_months: int
    suspend_on_zero_dimension: bool


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    quality: Quality
    delivery: Delivery
    service: Service
    price: Price
    categories: dict[str, dict[str, Decimal]]
    default_category: str
    grades: list[MinGrade]
    status: Status
    precision: int = 2
    #: whether an answer recorded after its round's due date counts ("count") or not ("exclude")
    late_answers: LateAnswers = "count"


def floor0(x: Decimal) -> Decimal:
    return x if x > 0 else ZERO


def ceil(x: Decimal) -> Decimal:
    return x.to_integral_value(rounding=ROUND_CEILING, context=CONTEXT)


class Supplier400(RuleSet):
    id = "supplier-400"
    version = "1.0"
    title = "供应商等级评定 四维度 (supplier rating with complaints and rectifications)"
    metrics = ("composite", *DIMENSIONS)
    params_type = Params
    defaults_path = module_file(__file__, "supplier_400.toml")
    sequential = True
    uses_org = True      # the category is the supplier's unit kind
    uses_cases = True

    def check_params(self, params: Params) -> list[str]:
        problems = []
        for name, ratios in params.categories.items():
            if set(ratios) != set(DIMENSIONS):
                unknown = [k for k in ratios if k not in DIMENSIONS]
                problems += [f"key `categories.{name}.{k}`: no such dimension (dimensions: {', '.join(DIMENSIONS)})"
                             for k in unknown]
                missing = [k for k in DIMENSIONS if k not in ratios]
                if missing or not unknown:
                    problems.append(f"key `categories.{name}`: expected ratios for {', '.join(DIMENSIONS)}"
                                    + (f" (missing: {', '.join(missing)})" if missing else ""))
            elif total(ratios.values()) <= 0 or any(r < 0 for r in ratios.values()):
                problems.append(f"key `categories.{name}`: expected ratios ≥ 0 with a positive sum")
        if params.default_category not in params.categories:
            problems.append(f"key `default_category`: {params.default_category!r} is not a category")
        if params.quality.default_severity not in params.quality.complaint_points:
            problems.append("key `quality.default_severity`: not a key of quality.complaint_points")
        if params.quality.defect_step <= 0:
            problems.append("key `quality.defect_step`: expected > 0")
        problems += threshold_problems(params.grades)
        if params.status.disqualify_grade not in {g.id for g in params.grades}:
            problems.append("key `status.disqualify_grade`: not a grade id")
        steps = [s.min_gap for s in params.price.gap_steps]
        if steps != sorted(steps):
            problems.append("key `price.gap_steps`: expected ascending min_gap")
        return problems

    def check_ranges(self, params: Params) -> list[str]:
        """Maxima, deductions, penalties and gaps not negative; grade thresholds on the 100-point
        scale; a supplier disqualified after at least one month."""
        problems = []
        for name in ("quality", "delivery", "service", "price"):
            dimension = getattr(params, name)
            for f in msgspec.structs.fields(dimension):
                value = getattr(dimension, f.name)
                if isinstance(value, Decimal):
                    problems += outside(f"{name}.{f.name}", value, 0)
        for severity, points in params.quality.complaint_points.items():
            problems += outside(f"quality.complaint_points.{severity}", points, 0)
        for i, step in enumerate(params.price.gap_steps):
            problems += outside(f"price.gap_steps[{i}].min_gap", step.min_gap, 0)
            problems += outside(f"price.gap_steps[{i}].penalty", step.penalty, 0)
        for i, g in enumerate(params.grades):
            problems += outside(f"grades[{i}].min", g.min, 0, 100)
        return problems + outside("status.disqualify_months", params.status.disqualify_months, 1)

    def questionnaire(self, params: Params) -> Questionnaire:
        """One form per dimension (the response's ``form``), its counts (whole numbers ≥ 0) and
        rates (numbers ≥ 0), every one required: N/A is not an answer here."""
        return Questionnaire(tuple(QuestionItem(k, LABELS[k], kind="number", minimum=Decimal(0), whole=k not in RATES,
                                                na=False, form=form)
                                   for form, keys in FIELDS.items() for k in keys),
                             forms=tuple(FIELDS), rater_required=True)

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        if response.form not in FIELDS:
            return [Problem("form", f"expected the dimension ({', '.join(FIELDS)}), got {response.form!r}")]
        problems = []
        if not response.rater:
            problems.append(Problem("rater", "required by supplier-400: the rating department"))
        fields = FIELDS[response.form]
        for key, value in response.answers.items():
            if key not in fields:
                problems.append(Problem(f"answers.{key}", f"unknown for the {response.form} dimension "
                                        f"(expected {', '.join(fields)})"))
            elif isinstance(value, str) or value < 0:
                problems.append(Problem(f"answers.{key}", f"expected a number ≥ 0, got {value!r}"))
            elif key not in RATES and value != int(value):
                problems.append(Problem(f"answers.{key}", f"expected a whole count, got {value!r}"))
        for key in fields:
            if key not in response.answers:
                problems.append(Problem(f"answers.{key}", "missing (the dimension's counts and rates are all required)"))
        a = response.answers
        if response.form == "quality" and not problems and a["lots_passed"] > a["lots_total"]:
            problems.append(Problem("answers.lots_passed", f"expected ≤ lots_total ({a['lots_total']}), "
                                    f"got {a['lots_passed']}"))
        return problems

    # -- per department parts -------------------------------------------------------------

    def _parts(self, form: str, a: dict[str, Any], p: Params) -> dict[str, Decimal]:
        v = {k: dec(x) for k, x in a.items()}
        if form == "quality":
            q = p.quality
            if v["lots_total"] == 0:
                iqc = q.iqc_max
            else:
                rate = div(mul(v["lots_passed"], HUNDRED), v["lots_total"])
                iqc = floor0(q.iqc_max - mul(q.per_pass_rate_point, HUNDRED - rate) - mul(q.per_concession,
                                                                                          v["concessions"]))
            excess = sub(v["defect_rate"], v["defect_limit"])
            steps = ceil(div(excess, q.defect_step)) if excess > 0 else ZERO
            return {"iqc": iqc, "defect": floor0(q.defect_max - mul(q.per_defect_step, steps))}
        if form == "delivery":
            d = p.delivery
            return {"delivery": floor0(d.max - mul(d.per_late_delivery, v["late_deliveries"]))}
        if form == "service":
            s = p.service
            return {"cooperation": floor0(s.cooperation_max - mul(s.per_poor_cooperation, v["poor_cooperation"])),
                    "replies": floor0(s.replies_max - mul(s.per_late_reply, v["late_replies"]))}
        pr = p.price
        gap = next((st.penalty for st in reversed(pr.gap_steps) if v["price_gap"] >= st.min_gap), ZERO)
        return {"price": floor0(pr.max - mul(pr.per_late_adjustment, v["late_adjustments"]) - gap
                                - mul(pr.per_invoice_issue, v["invoice_issues"])), "gap_penalty": gap}

    # -- complaints and rectifications ----------------------------------------------------

    def _complaint_points(self, cases: list[CaseEvent], p: Params, trace: Trace | None) -> tuple[Decimal, list[str]]:
        points, ids = ZERO, []
        for c in cases:
            if c.kind != "complaint":
                continue
            if c.closure and c.closure[1] == "rejected":
                if trace:
                    trace.case(c.id, False, "closed as rejected (unfounded): costs nothing", "quality")
                    trace.case(c.closure[0], True, f"rejects {c.id}", "quality")
                continue
            severity = c.severity if c.severity in p.quality.complaint_points else p.quality.default_severity
            cost = p.quality.complaint_points[severity]
            points += cost
            ids.append(c.id)
            if trace:
                trace.case(c.id, True, f"complaint ({severity}) costs {plain(cost)} quality points", "quality")
        return points, ids

    def _failed_rectifications(self, cases: list[CaseEvent], trace: Trace | None) -> list[str]:
        failed = []
        for c in cases:
            if c.kind != "rectification":
                continue
            statuses = [(u[1], u[2]) for u in c.updates]
            if any(s == "cancelled" for s, _ in statuses):
                why, cost = "cancelled: costs nothing", False
            elif any(s == "ineffective" for s, _ in statuses):
                why, cost = "found ineffective", True
            elif any(s == "completed" and d <= (c.due or "") for s, d in statuses):
                why, cost = f"completed on time (due {c.due})", False
            elif any(s == "completed" for s, _ in statuses):
                why, cost = f"completed late (due {c.due})", True
            else:
                why, cost = f"not completed (due {c.due})", True
            if cost:
                failed.append(c.id)
            if trace:
                trace.case(c.id, cost, why + (": costs service points" if cost else ""), "service")
                for u in c.updates:
                    trace.case(u[0], cost or u[1] in ("completed", "cancelled"), f"{u[1]} on {u[2]}", "service")
        return failed

    # -- scoring ---------------------------------------------------------------------------

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        p: Params = month.params
        by_dim: dict[str, list[tuple[str, dict[str, Decimal]]]] = defaultdict(list)
        for c in month.counted:
            r = c.response
            parts = self._parts(r.form or "", r.answers, p)
            by_dim[r.form or ""].append((r.rater or "", parts))
            if trace:
                trace.step(f"{r.form} by {r.rater} ({r.id})", ", ".join(f"{k} {plain(v)}" for k, v in parts.items()),
                           total(v for k, v in parts.items() if k != "gap_penalty"), r.form)
        figures: dict[str, Figure] = {}
        complaint_pts, complaint_ids = self._complaint_points(month.cases, p, trace)
        failed = self._failed_rectifications(month.cases, trace)
        for dim in DIMENSIONS:
            rows = by_dim.get(dim)
            if not rows:
                continue
            names = [k for k in rows[0][1] if k != "gap_penalty"]
            means = {k: mean(parts[k] for _, parts in rows) for k in names}
            extras: dict[str, Any] = {k: publish(v, p.precision) for k, v in means.items()}
            score = total(means.values())
            if dim == "quality":
                part = floor0(p.quality.complaint_max - complaint_pts)
                score += part
                extras.update({"complaint": publish(part, p.precision), "complaints": complaint_ids})
                if trace:
                    trace.step("quality complaint part", f"max(0, {plain(p.quality.complaint_max)} − "
                               f"{plain(complaint_pts)}) for {', '.join(complaint_ids) or 'no complaint'}", part, dim)
            if dim == "service":
                part = floor0(p.service.rectification_max - mul(p.service.per_failed_rectification,
                                                                Decimal(len(failed))))
                score += part
                extras.update({"rectification": publish(part, p.precision), "rectifications": failed})
                if trace:
                    trace.step("service rectification part", f"max(0, {plain(p.service.rectification_max)} − "
                               f"{plain(p.service.per_failed_rectification)} × {len(failed)})", part, dim)
            extras["departments"] = len(rows)
            if trace:
                trace.step(dim, " + ".join(f"mean {k} {plain(v)}" for k, v in means.items())
                           + (f" over {len(rows)} departments" if len(rows) > 1 else "")
                           + (" + complaint part" if dim == "quality" else "")
                           + (" + rectification part" if dim == "service" else ""), score, dim)
            figures[dim] = Figure(metric=dim, score=score, responses=len(rows), extras=extras,
                                  state={"score": score})
        missing = [d for d in DIMENSIONS if d not in figures]
        if missing:
            if trace and figures:
                trace.step("composite", f"not computed for {month.month}: no {', '.join(missing)} response "
                           f"(missing dimension{'s' if len(missing) > 1 else ''})", None, "composite")
            return list(figures.values())
        category = month.kind if month.kind in p.categories else p.default_category
        ratios = p.categories[category]
        composite = div(total(mul(ratios[d], figures[d].score) for d in DIMENSIONS), total(ratios.values()))
        grade = first_grade(p.grades, composite)
        zero = any(figures[d].score == 0 for d in DIMENSIONS)
        if trace:
            trace.step("composite", f"category {category} ({':'.join(plain(ratios[d]) for d in DIMENSIONS)} as "
                       f"{':'.join(DIMENSIONS)}): (" + " + ".join(f"{plain(ratios[d])}×{plain(figures[d].score)}"
                                                                   for d in DIMENSIONS)
                       + f") / {plain(total(ratios.values()))}", composite, "composite")
            trace.step("grade", f"first grade whose min ≤ {plain(composite)} (unrounded): {grade.id} {grade.label}",
                       grade.id, "composite")
        status = "suspended" if zero and p.status.suspend_on_zero_dimension else "qualified"
        figures["composite"] = Figure(metric="composite", score=composite,
                                      responses=sum(f.responses for f in figures.values()), grade=grade.id,
                                      grade_label=grade.label, extras={"status": status, "category": category},
                                      state={"score": composite, "zero": zero})
        return list(figures.values())

    def sequence(self, months: list[tuple[str, Figure]], params_of: Any, trace: Trace | None = None,
                 focus: str | None = None) -> list[tuple[str, Figure]]:
        if not months or months[0][1].metric != "composite":
            return months
        out, run, previous = [], [], None
        for month, fig in months:
            p: Params = params_of(month)
            if fig.grade != p.status.disqualify_grade:
                run = []
            elif previous is not None and periods.consecutive(previous, month) and run:
                run.append(month)
            else:
                run = [month]
            zero = bool(fig.state.get("zero"))
            if len(run) >= p.status.disqualify_months:
                status = "disqualified"
            elif zero and p.status.suspend_on_zero_dimension:
                status = "suspended"
            else:
                status = "qualified"
            if trace and month == focus:
                trace.step("status", f"consecutive months graded {p.status.disqualify_grade}: "
                           f"{', '.join(run) or 'none'} ({len(run)}; disqualified from "
                           f"{p.status.disqualify_months}); a dimension at 0: {'yes' if zero else 'no'}",
                           status, "composite")
            out.append((month, msgspec.structs.replace(fig, extras={**fig.extras, "status": status})))
            previous = month
        return out

    def roll_up(self, period: str, metric: str, months: list[tuple[str, Figure]], params: Params,
                trace: Trace | None) -> Figure | None:
        fig = mean_of_months(period, metric, months, trace, params.precision)
        if fig is None or metric != "composite":
            return fig
        grade = first_grade(params.grades, fig.score)
        if trace:
            trace.step("grade", f"first grade whose min ≤ {plain(fig.score)} (unrounded): {grade.id} {grade.label}",
                       grade.id, "composite")
        return msgspec.structs.replace(fig, grade=grade.id, grade_label=grade.label,
                                       extras={"category": months[-1][1].extras.get("category")})


@hookimpl
def csat_rulesets() -> list[RuleSet]:
    return [Supplier400()]


@hookimpl
def csat_demo_files() -> list[str]:
    return [module_file(__file__, "examples/supplier-demo.jsonl")]
