"""plant-50 — internal service satisfaction on 50 points, by deduction.

Source: seed 000, last part (内部客户服务满意度考核标准); spec ``rulesets.md`` §2.
Counts of 一般 / 不满意 / 很不满意 items over a month's forms → grade (worst
first) → coefficient by distinct workshops → deduction = base ÷ coefficient,
rounded half-up → score = top of the grade's band − deduction, never below its
bottom → +bonus in the month completing a run of excellent months.
"""
from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import msgspec

from csat.engine import periods
from csat.engine.events import NA, ResponseRecorded
from csat.engine.numbers import ZERO, add, dec, div, plain, publish, sub
from csat.engine.params import outside
from csat.engine.ruleset import (Choice, Figure, ItemPoints, LateAnswers, MonthInput, Problem, QuestionItem,
                                 Questionnaire, ResponseState, RuleSet, Trace, mean_of_months, module_file)
from csat.plugins import hookimpl


class Grade(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    label: str
    band: tuple[Decimal, Decimal]
    deduction: Decimal
    when: list[dict[str, int]]


class Coefficient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    value: Decimal
    max_workshops: int | None = None


class Bonus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grade: str
    months: int
    points: Decimal


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    levels: dict[str, list[str]]
    grades: list[Grade]
    coefficients: list[Coefficient]
    bonus: Bonus
    precision: int = 2
    reason_required: list[str] = []
    #: the questionnaire's items and their labels (a workshop may answer others too)
    items: dict[str, str] = {}
    #: whether an answer recorded after its round's due date counts ("count") or not ("exclude")
    late_answers: LateAnswers = "count"


def _counted_levels(params: Params) -> list[str]:
    """The levels whose counts grade a month (those named in a grade condition), in level order."""
    named = {level for g in params.grades for cond in g.when for level in cond}
    return [level for level in params.levels if level in named]


def _describe(cond: dict[str, int]) -> str:
    return " and ".join(f"{k} ≥ {v}" for k, v in cond.items()) or "otherwise"


class Plant50(RuleSet):
    id = "plant-50"
    version = "1.0"
    title = "内部客户服务满意度 50 分扣分制 (plant functional departments)"
    metrics = ("service",)
    params_type = Params
    defaults_path = module_file(__file__, "plant_50.toml")
    sequential = True

    def check_params(self, params: Params) -> list[str]:
        problems = []
        labels: dict[str, str] = {}
        for level, answers in params.levels.items():
            for a in answers:
                if a in labels and labels[a] != level:
                    problems.append(f"key `levels.{level}`: answer {a!r} is already a label of {labels[a]!r}")
                labels[a] = level
        for level in params.reason_required:
            if level not in params.levels:
                problems.append(f"key `reason_required`: unknown level {level!r}")
        ids = [g.id for g in params.grades]
        for i, g in enumerate(params.grades):
            if g.band[0] > g.band[1]:
                problems.append(f"key `grades[{i}].band`: expected [low, high] with low ≤ high")
            for cond in g.when:
                for level, n in cond.items():
                    if level not in params.levels:
                        problems.append(f"key `grades[{i}].when`: unknown level {level!r}")
                    if n < 0:
                        problems.append(f"key `grades[{i}].when`: expected counts ≥ 0")
        if not params.grades or {} not in params.grades[-1].when:
            problems.append("key `grades`: the last grade must match every month (when = [{}])")
        if not params.coefficients or params.coefficients[-1].max_workshops is not None:
            problems.append("key `coefficients`: the last row must have no max_workshops (it takes the rest)")
        maxima = [c.max_workshops for c in params.coefficients[:-1]]
        if any(m is None for m in maxima) or maxima != sorted(maxima):
            problems.append("key `coefficients`: expected ascending max_workshops on every row but the last")
        if any(c.value <= 0 for c in params.coefficients):
            problems.append("key `coefficients`: expected every value > 0")
        if params.bonus.grade not in ids:
            problems.append(f"key `bonus.grade`: unknown grade {params.bonus.grade!r} (grades: {', '.join(ids)})")
        if params.bonus.months < 1:
            problems.append("key `bonus.months`: expected ≥ 1")
        return problems

    def check_ranges(self, params: Params) -> list[str]:
        """Bands on the 50-point scale, deductions and the bonus not negative, a workshop count ≥ 0."""
        problems = []
        for i, g in enumerate(params.grades):
            problems += outside(f"grades[{i}].band", g.band[0], 0) + outside(f"grades[{i}].band", g.band[1], None, 50)
            problems += outside(f"grades[{i}].deduction", g.deduction, 0, 50)
        for i, c in enumerate(params.coefficients):
            if c.max_workshops is not None:
                problems += outside(f"coefficients[{i}].max_workshops", c.max_workshops, 0)
        return problems + outside("bonus.points", params.bonus.points, 0, 50)

    def _level_of(self, params: Params) -> dict[str, str]:
        return self.per_params("levels", params, lambda p: {a: lvl for lvl, answers in p.levels.items() for a in answers})

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        problems = []
        if not response.rater:
            problems.append(Problem("rater", "required by plant-50: the workshop (车间) that rated"))
        if not response.answers:
            problems.append(Problem("answers", "expected at least one item"))
        level_of = self._level_of(params)
        for item, answer in response.answers.items():
            if answer == NA:
                continue
            level = level_of.get(answer) if isinstance(answer, str) else None
            if level is None:
                accepted = " / ".join(a for answers in params.levels.values() for a in answers)
                problems.append(Problem(f"answers.{item}", f"expected a level ({accepted}) or N/A, got {answer!r}"))
            elif level in params.reason_required and not response.reasons.get(item, "").strip():
                problems.append(Problem(f"reasons.{item}", f"a reason is required for {answer} "
                                        "(存在异议的应写明详细原因)"))
        return problems

    def item_labels(self, params: Params) -> dict[str, str]:
        return dict(params.items)

    def questionnaire(self, params: Params) -> Questionnaire:
        """One item per entry of ``[items]``: a level (满意 … 很不满意, the first answer each level
        accepts), N/A allowed (a department that did not serve the workshop), a reason for the
        levels in ``reason_required`` (存在异议的应写明详细原因)."""
        choices = tuple(Choice(answers[0], answers[0]) for answers in params.levels.values())
        needs = tuple(params.levels[lvl][0] for lvl in params.reason_required if lvl in params.levels)
        return Questionnaire(tuple(QuestionItem(i, label, choices=choices, reason_for=needs)
                                   for i, label in params.items.items()), rater_required=True)

    def item_points(self, response: ResponseState, params: Params) -> dict[str, ItemPoints]:
        """An item's level on an even scale: the first level of ``[levels]`` (满意) all points, the
        last (很不满意) none — with four levels 3, 2, 1, 0 of 3."""
        level_of = self._level_of(params)
        scale = self.per_params("scale", params, lambda p: {
            level: Decimal(len(p.levels) - 1 - i) for i, level in enumerate(p.levels)})
        top = Decimal(max(len(params.levels) - 1, 1))
        return {item: ItemPoints(scale[level], top) for item, answer in response.answers.items()
                if isinstance(answer, str) and (level := level_of.get(answer)) is not None}

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        if not month.counted:
            return []
        params: Params = month.params
        level_of = self._level_of(params)
        counts: Counter[str] = Counter()
        sources: dict[str, list[str]] = {}
        workshops: set[str] = set()
        for c in month.counted:
            r = c.response
            workshops.add(r.rater or "")
            for item, answer in r.answers.items():
                level = level_of.get(answer) if isinstance(answer, str) else None
                if level is not None:
                    counts[level] += 1
                    sources.setdefault(level, []).append(f"{r.id}:{item}")
        counted_levels = _counted_levels(params)
        if trace:
            for level in counted_levels:
                trace.step(f"count {level}", "items at this level: " + (", ".join(sources.get(level, [])) or "none"),
                           counts[level])
        grade = next(g for g in params.grades if any(all(counts[k] >= v for k, v in cond.items()) for cond in g.when))
        matched = next(cond for cond in grade.when if all(counts[k] >= v for k, v in cond.items()))
        n = len(workshops)
        coef = next(c for c in params.coefficients if c.max_workshops is None or n <= c.max_workshops)
        deduction = publish(div(grade.deduction, coef.value), params.precision)
        top, bottom = grade.band[1], grade.band[0]
        base = max(sub(top, deduction), bottom)
        if trace:
            trace.step("grade", f"first grade whose condition holds, worst first: {grade.id} {grade.label} "
                       f"({_describe(matched)})", grade.id)
            row = f"max_workshops {coef.max_workshops}" if coef.max_workshops is not None else "the rest"
            trace.step("coefficient (考核系数)", f"{n} distinct workshop(s) ({', '.join(sorted(workshops))}) → row "
                       f"{row}", coef.value)
            trace.step("deduction (实扣)", f"round-half-up({plain(grade.deduction)} ÷ {plain(coef.value)}, "
                       f"{params.precision})", deduction)
            trace.step("score before bonus", f"top of band {plain(top)} − {plain(deduction)}, not below "
                       f"{plain(bottom)}", base)
        return [Figure(metric="service", score=base, responses=len(month.counted), grade=grade.id,
                       grade_label=grade.label,
                       extras={"deduction": deduction, "coefficient": coef.value, "workshops": n,
                               "bonus": publish(ZERO, params.precision),
                               "counts": {k: counts[k] for k in counted_levels}},
                       state={"base": base, "score": base})]

    def sequence(self, months: list[tuple[str, Figure]], params_of: Any, trace: Trace | None = None,
                 focus: str | None = None) -> list[tuple[str, Figure]]:
        out = []
        run: list[str] = []  # the months of the current run
        previous = None
        for month, fig in months:
            params: Params = params_of(month)
            target = params.bonus
            if fig.grade != target.grade:
                run = []
            elif previous is not None and periods.consecutive(previous, month) and run:
                run.append(month)
            else:
                run = [month]
            bonus = ZERO
            if len(run) >= target.months:
                bonus = target.points
            base = dec(fig.state.get("base", fig.score))
            if trace and month == focus:
                trace.step("bonus run", f"consecutive months graded {target.grade} up to {month}: "
                           f"{', '.join(run) or 'none'} ({len(run)} of {target.months})"
                           + (f" → +{plain(bonus)}, the count starts again" if bonus else ""), bonus)
                trace.step("score", f"{plain(base)} + bonus {plain(bonus)}", add(base, bonus))
            if bonus:
                run = []
            extras = {**fig.extras, "bonus": publish(bonus, params.precision)}
            out.append((month, msgspec.structs.replace(fig, score=add(base, bonus), extras=extras,
                                                       state={"base": base, "score": add(base, bonus)})))
            previous = month
        return out

    def roll_up(self, period: str, metric: str, months: list[tuple[str, Figure]], params: Params,
                trace: Trace | None) -> Figure | None:
        return mean_of_months(period, metric, months, trace, params.precision)


@hookimpl
def csat_rulesets() -> list[RuleSet]:
    return [Plant50()]


@hookimpl
def csat_demo_files() -> list[str]:
    return [module_file(__file__, "examples/plant-50.jsonl")]
