"""iso-100 — customer satisfaction survey on 100 points, graded 甲/乙/丙/丁.

Source: seed 000 (顾客满意度评分准则); spec ``rulesets.md`` §4. A response
scores 100 × Σ points / Σ max over its answered items (N/A rescales); a
period's score is the pooled mean of its responses (months, quarters and
years alike), graded on the unrounded mean.
"""
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from csat.engine.events import NA, ResponseRecorded
from csat.engine.numbers import ZERO, add, dec, div, mul, plain, total
from csat.engine.ruleset import (Figure, ItemPoints, LateAnswers, MinGrade, MonthInput, Problem, QuestionItem,
                                 Questionnaire, ResponseState, RuleSet, Trace, first_grade, module_file,
                                 threshold_problems)
from csat.engine.params import complete_closed, outside
from csat.plugins import hookimpl

HUNDRED = Decimal(100)


class Item(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max: Decimal
    label: str = ""


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    items: dict[str, Item]
    grades: list[MinGrade]
    precision: int = 2
    #: whether an answer recorded after its round's due date counts ("count") or not ("exclude")
    late_answers: LateAnswers = "count"


class Iso100(RuleSet):
    id = "iso-100"
    version = "1.0"
    title = "顾客满意度调查 100 分制 甲乙丙丁 (ISO 9001 customer survey)"
    metrics = ("satisfaction",)
    params_type = Params
    defaults_path = module_file(__file__, "iso_100.toml")

    def questionnaire(self, params: Params) -> Questionnaire:
        """One item per entry of ``[items]``: points from 0 to its maximum, or N/A (the item's
        points are then spread over the answered ones)."""
        return Questionnaire(tuple(QuestionItem(i, spec.label or i, kind="number", minimum=ZERO, maximum=spec.max)
                                   for i, spec in params.items.items()))

    def complete_params(self, data: dict[str, Any], source: str = "params", base: dict[str, Any] | None = None,
                        replace: Sequence[str] = ()) -> dict[str, Any]:
        """As every rule set's, but an item the parameters in force do not have is refused by name
        (``items.after_sale``: a typo, not a sixth item) unless ``items`` is replaced whole."""
        return complete_closed(super().complete_params, self.default_params() if base is None else base, data,
                               source, replace, {"items": "item"})

    def check_params(self, params: Params) -> list[str]:
        problems = []
        if not params.items:
            problems.append("key `items`: expected at least one item")
        for item, spec in params.items.items():
            if spec.max <= 0:
                problems.append(f"key `items.{item}.max`: expected > 0, got {spec.max}")
        maxima = total(i.max for i in params.items.values())
        if params.items and maxima != HUNDRED:
            problems.append(f"key `items`: the maxima must sum to 100, got {plain(maxima)}")
        problems += threshold_problems(params.grades)
        return problems

    def check_ranges(self, params: Params) -> list[str]:
        """Grade thresholds on the 100-point scale."""
        return [p for i, g in enumerate(params.grades) for p in outside(f"grades[{i}].min", g.min, 0, 100)]

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        problems = []
        for item, answer in response.answers.items():
            spec = params.items.get(item)
            if spec is None:
                problems.append(Problem(f"answers.{item}", "unknown item (expected one of "
                                        f"{', '.join(params.items)})"))
            elif answer != NA and (isinstance(answer, str) or not 0 <= dec(answer) <= spec.max):
                problems.append(Problem(f"answers.{item}", f"expected points 0 to {plain(spec.max)} or \"N/A\", "
                                        f"got {answer!r}"))
        for item in params.items:
            if item not in response.answers:
                problems.append(Problem(f"answers.{item}", "missing item (answer it with points or \"N/A\")"))
        return problems

    def item_points(self, response: ResponseState, params: Params) -> dict[str, ItemPoints]:
        """An item's points out of its maximum."""
        return self._answered(response.answers, params)

    @staticmethod
    def _answered(answers: dict, params: Params) -> dict[str, ItemPoints]:
        """The answered known items: (points, max) each."""
        return {i: ItemPoints(dec(a), params.items[i].max) for i, a in answers.items()
                if a != NA and i in params.items and not isinstance(a, str)}

    def response_score(self, answers: dict, params: Params) -> tuple[Decimal, Decimal, Decimal] | None:
        """(score, Σ points, Σ max) over the answered known items, or None when none is answered."""
        got = list(self._answered(answers, params).values())
        if not got:
            return None
        points, maxima = total(p for p, _ in got), total(m for _, m in got)
        return div(mul(HUNDRED, points), maxima), points, maxima

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        params: Params = month.params
        scores = []
        suggestions = 0
        for c in month.counted:
            r = c.response
            result = self.response_score(r.answers, params)
            if result is None:
                if trace:
                    trace.exclude(r, "no item of the parameters in force is answered")
                continue
            score, points, maxima = result
            scores.append(score)
            suggestions += bool((r.comment or "").strip())
            if trace:
                how = (f"Σ points = {plain(points)}" if maxima == HUNDRED else
                       f"100 × {plain(points)} / {plain(maxima)} (N/A rescaled)")
                trace.step(f"response {r.id} ({r.rater or '-'})", how, score)
        if not scores:
            return []
        return [self._figure(params, "satisfaction", total(scores), len(scores),
                             [first_grade(params.grades, s).id for s in scores], suggestions, trace)]

    def _figure(self, params: Params, metric: str, sum_: Decimal, count: int, response_grades: list[str] | dict,
                suggestions: int, trace: Trace | None) -> Figure:
        mean = div(sum_, Decimal(count))
        grade = first_grade(params.grades, mean)
        if isinstance(response_grades, dict):
            counts = {g.id: int(response_grades.get(g.id, 0)) for g in params.grades}
        else:
            counts = {g.id: response_grades.count(g.id) for g in params.grades}
        if trace:
            trace.step("score", f"pooled mean of the response scores: {plain(sum_)} / {count}", mean)
            trace.step("grade", f"first grade whose min ≤ {plain(mean)} (unrounded): {grade.id} {grade.label}",
                       grade.id)
        return Figure(metric=metric, score=mean, responses=count, grade=grade.id, grade_label=grade.label,
                      extras={"grades": counts, "suggestions": suggestions},
                      state={"score": mean, "sum": sum_, "count": count, "grades": counts,
                             "suggestions": suggestions})

    def roll_up(self, period: str, metric: str, months: list[tuple[str, Figure]], params: Params,
                trace: Trace | None) -> Figure | None:
        if not months:
            return None
        sum_, count, suggestions = ZERO, 0, 0
        grades: dict[str, int] = {}
        for month, f in months:
            sum_ = add(sum_, dec(f.state["sum"]))
            count += int(f.state["count"])
            suggestions += int(f.state["suggestions"])
            for g, n in f.state["grades"].items():
                grades[g] = grades.get(g, 0) + int(n)
            if trace:
                trace.step(f"{month}", f"{f.state['count']} response(s), Σ scores {plain(dec(f.state['sum']))}",
                           dec(f.state["sum"]))
        return self._figure(params, metric, sum_, count, grades, suggestions, trace)


@hookimpl
def csat_rulesets() -> list[RuleSet]:
    return [Iso100()]


@hookimpl
def csat_demo_files() -> list[str]:
    return [module_file(__file__, "examples/iso-100.jsonl")]
