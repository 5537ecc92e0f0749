"""airline-1000 — internal customer satisfaction on a 1000-point questionnaire.

Source: seed 000 (深圳航空 内部客户满意度考核办法); spec ``rulesets.md`` §1.
Functional departments are rated monthly by the company's other units; each
rating unit's managers fill one questionnaire per assessed department.

questionnaire = Σ wᵢ·points(gradeᵢ) / Σ wᵢ over answered indicators;
rating unit = mean of its questionnaires; ``score`` = mean of rating units;
``final`` = score × department weight; quarters and years = mean of months.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from csat.engine.events import NA, ResponseRecorded
from csat.engine.numbers import ONE, div, mean, mul, plain, publish, total
from csat.engine.ruleset import (Choice, Figure, ItemPoints, LateAnswers, MonthInput, Problem, QuestionItem,
                                 Questionnaire, ResponseState, RuleSet, Trace, answers_key, mean_of_months,
                                 module_file)
from csat.engine.params import complete_closed, outside
from csat.plugins import hookimpl


class Grade(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    points: Decimal
    label: str
    reason_required: bool = False


class Department(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    weight: Decimal = ONE
    indicators: dict[str, Decimal] = {}


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grades: dict[str, Grade]
    precision: int = 2
    departments: dict[str, Department] = {}
    #: the questionnaire's indicators and their labels (an assessed department's own list, in
    #: ``departments``, decides which it answers)
    indicators: dict[str, str] = {}
    #: whether an answer recorded after its round's due date counts ("count") or not ("exclude")
    late_answers: LateAnswers = "count"


class Airline1000(RuleSet):
    id = "airline-1000"
    version = "1.0"
    title = "内部客户满意度 1000 分制 (airline internal customers)"
    metrics = ("satisfaction",)
    params_type = Params
    defaults_path = module_file(__file__, "airline_1000.toml")

    def complete_params(self, data: dict[str, Any], source: str = "params", base: dict[str, Any] | None = None,
                        replace: Sequence[str] = ()) -> dict[str, Any]:
        """As every rule set's, but an indicator merged into a department's list that the list in
        force does not have is refused by name (``efficency``: a typo, not a fourth indicator)
        unless that list is replaced whole."""
        base = self.default_params() if base is None else base
        lists = {f"departments.{d}.indicators": "indicator" for d, spec in (base.get("departments") or {}).items()
                 if isinstance(spec, dict) and spec.get("indicators")}
        return complete_closed(super().complete_params, base, data, source, replace, lists)

    def check_params(self, params: Params) -> list[str]:
        problems = []
        if not params.grades:
            problems.append("key `grades`: expected at least one grade")
        for dept, d in params.departments.items():
            if d.weight < 0:
                problems.append(f"key `departments.{dept}.weight`: expected ≥ 0, got {d.weight}")
            for ind, w in d.indicators.items():
                if w <= 0:
                    problems.append(f"key `departments.{dept}.indicators.{ind}`: expected > 0, got {w}")
        return problems

    def check_ranges(self, params: Params) -> list[str]:
        """Grade points on the 1000-point scale (``precision`` and the numbers' magnitude are the
        engine's common checks)."""
        return [p for letter, g in params.grades.items() for p in outside(f"grades.{letter}.points", g.points, 0, 1000)]

    def _grade_of(self, params: Params) -> dict[str, str]:
        """Letter or Chinese label -> letter."""
        return self.per_params("grades", params, lambda p: {
            **{letter: letter for letter in p.grades}, **{g.label: letter for letter, g in p.grades.items()}})

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        problems = []
        if not response.rater:
            problems.append(Problem("rater", "required by airline-1000: the rating unit (考核部门)"))
        if not response.answers:
            problems.append(Problem("answers", "expected at least one indicator"))
        grade_of = self._grade_of(params)
        dept = params.departments.get(response.subject)
        for item, answer in response.answers.items():
            if dept and dept.indicators and item not in dept.indicators:
                problems.append(Problem(f"answers.{item}", f"unknown indicator for department "
                                        f"{response.subject!r} (expected one of {', '.join(dept.indicators)})"))
                continue
            if answer == NA:
                continue
            letter = grade_of.get(answer) if isinstance(answer, str) else None
            if letter is None:
                expected = " / ".join(f"{k} {g.label}" for k, g in params.grades.items())
                problems.append(Problem(f"answers.{item}", f"expected a grade ({expected}) or N/A, got {answer!r}"))
            elif params.grades[letter].reason_required and not response.reasons.get(item, "").strip():
                problems.append(Problem(f"reasons.{item}", f"a reason is required for grade {letter} "
                                        f"{params.grades[letter].label} (须注明理由和事实依据)"))
        if dept and dept.indicators:
            for item in dept.indicators:
                if item not in response.answers:
                    problems.append(Problem(f"answers.{item}", "missing indicator (answer it or give \"N/A\")"))
        return problems

    def item_labels(self, params: Params) -> dict[str, str]:
        return dict(params.indicators)

    def questionnaire(self, params: Params) -> Questionnaire:
        """One item per indicator: a grade A–E (or its label), N/A allowed, a reason where the
        grade requires one (D, E: 须注明理由和事实依据)."""
        choices = tuple(Choice(k, f"{k} {g.label}") for k, g in params.grades.items())
        needs = tuple(k for k, g in params.grades.items() if g.reason_required)
        return Questionnaire(tuple(QuestionItem(i, label, choices=choices, reason_for=needs)
                                   for i, label in params.indicators.items()), rater_required=True)

    def item_points(self, response: ResponseState, params: Params) -> dict[str, ItemPoints]:
        """An indicator's grade points out of the best grade's (1000 by default)."""
        grade_of = self._grade_of(params)
        best = self.per_params("best", params, lambda p: max(g.points for g in p.grades.values()))
        dept = params.departments.get(response.subject)
        out = {}
        for item, answer in response.answers.items():
            letter = grade_of.get(answer) if isinstance(answer, str) else None
            if letter is not None and not (dept and dept.indicators and item not in dept.indicators):
                out[item] = ItemPoints(params.grades[letter].points, best)
        return out

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        params: Params = month.params
        grade_of = self._grade_of(params)
        dept = params.departments.get(month.subject)
        weights = dept.indicators if dept and dept.indicators else None
        by_rater: dict[str, list[Decimal]] = defaultdict(list)
        # a questionnaire's score depends on its answers (and its department's weights) alone:
        # each distinct set of answers is scored once per parameters — a month repeats a few
        # hundred patterns over thousands of questionnaires
        department = month.subject if weights is not None else None
        for counted in month.counted:
            r = counted.response
            terms, score = self.remembered("questionnaires", params, (department, answers_key(r.answers)),
                                           lambda: self._questionnaire_score(r.answers, grade_of, weights, params))
            if score is None:
                if trace:
                    trace.exclude(r, "no indicator answered with a grade of the parameters in force")
                continue
            by_rater[r.rater or ""].append(score)
            if trace:
                trace.step(f"questionnaire {r.id} ({r.rater})",
                           "Σ wᵢ·points / Σ wᵢ = (" + " + ".join(f"{plain(w)}×{plain(p)}" for _, w, p in terms)
                           + f") / {plain(total(w for _, w, _ in terms))}", score)
        if not by_rater:
            return []
        unit_scores = {}
        for rater, scores in sorted(by_rater.items()):
            unit_scores[rater] = mean(scores)
            if trace:
                trace.step(f"rating unit {rater}", f"mean of {len(scores)} questionnaire(s): ("
                           + " + ".join(map(plain, scores)) + f") / {len(scores)}", unit_scores[rater])
        score = mean(unit_scores.values())
        weight = dept.weight if dept else ONE
        final = mul(score, weight)
        if trace:
            trace.step("score (初始得分)", "mean of the rating-unit scores: ("
                       + " + ".join(map(plain, unit_scores.values())) + f") / {len(unit_scores)}", score)
            trace.step("final", f"score × weight = {plain(score)} × {plain(weight)}", final)
        return [Figure(metric="satisfaction", score=score, responses=sum(map(len, by_rater.values())),
                       extras={"final": publish(final, params.precision), "weight": weight,
                               "raters": len(unit_scores)},
                       state={"score": score, "final": final})]

    @staticmethod
    def _questionnaire_score(answers: dict, grade_of: dict[str, str], weights: dict[str, Decimal] | None,
                             params: Params) -> tuple[list[tuple[str, Decimal, Decimal]], Decimal | None]:
        """A questionnaire's terms (indicator, weight, points) and Σ wᵢ·pointsᵢ / Σ wᵢ (None: no term)."""
        terms: list[tuple[str, Decimal, Decimal]] = []
        for item, answer in answers.items():
            if answer == NA:
                continue
            letter = grade_of.get(answer) if isinstance(answer, str) else None
            w = weights.get(item) if weights is not None else ONE
            if letter is None or w is None:
                continue
            terms.append((item, w, params.grades[letter].points))
        if not terms:
            return terms, None
        return terms, div(total(mul(w, p) for _, w, p in terms), total(w for _, w, _ in terms))

    def roll_up(self, period: str, metric: str, months: list[tuple[str, Figure]], params: Params,
                trace: Trace | None) -> Figure | None:
        return mean_of_months(period, metric, months, trace, params.precision, keys=("final",))


@hookimpl
def csat_rulesets() -> list[RuleSet]:
    return [Airline1000()]


@hookimpl
def csat_demo_files() -> list[str]:
    return [module_file(__file__, "examples/airline-1000.jsonl")]


@hookimpl(trylast=True)
def csat_demo_explain() -> tuple[str, str, str, str | None]:
    return ("airline-1000", "finance", "2026-03", None)
