"""callcentre-5: each successful OB callback ends with the customer's 1–5 rating of the
agent; an agent's month (and quarter, and year) is the mean of its ratings."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from csat.engine.events import NA, ResponseRecorded
from csat.engine.numbers import div
from csat.engine.ruleset import (Choice, Figure, ItemPoints, LateAnswers, MonthInput, Problem, Questionnaire,
                                 QuestionItem, ResponseState, RuleSet, Trace, module_file)
from csat.plugins import hookimpl


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lowest: int
    highest: int
    labels: dict[str, int] = {}
    precision: int = 2
    late_answers: LateAnswers = "count"  # a callback rated after its round's due date counts ("exclude": not)


class CallCentre5(RuleSet):
    id = "callcentre-5"
    version = "0.1.0"
    title = "OB 电访满意度评价 1–5 分 (call-centre callbacks)"
    metrics = ("rating",)
    params_type = Params
    defaults_path = module_file(__file__, "callcentre_5.toml")

    def check_params(self, params: Params) -> list[str]:
        problems = []
        if params.lowest >= params.highest:
            problems.append("key `lowest`: expected less than `highest`")
        for label, value in params.labels.items():
            if not params.lowest <= value <= params.highest:
                problems.append(f"key `labels.{label}`: expected {params.lowest} to {params.highest}, got {value}")
        return problems

    def rating(self, answer: object, params: Params) -> int | None:
        if isinstance(answer, str):
            return params.labels.get(answer)
        if isinstance(answer, int) and params.lowest <= answer <= params.highest:
            return answer
        return None

    def item_points(self, response: ResponseState, params: Params) -> dict[str, ItemPoints]:
        """The rating above the lowest, of the scale's span (5 → 4 of 4, 1 → 0 of 4)."""
        rating = self.rating(response.answers.get("rating"), params)
        if rating is None:
            return {}
        return {"rating": ItemPoints(Decimal(rating - params.lowest), Decimal(params.highest - params.lowest))}

    def questionnaire(self, params: Params) -> Questionnaire:
        """One question, the rating: its labels (非常满意 …) best first; N/A when the customer
        would not rate."""
        choices = tuple(Choice(label, f"{value} {label}")
                        for label, value in sorted(params.labels.items(), key=lambda kv: -kv[1]))
        return Questionnaire((QuestionItem("rating", "本次服务评分 (rating)", choices=choices),))

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        if set(response.answers) != {"rating"}:
            return [Problem("answers", "expected exactly one answer, `rating`")]
        answer = response.answers["rating"]
        if answer != NA and self.rating(answer, params) is None:
            return [Problem("answers.rating", f"expected a whole number {params.lowest}–{params.highest} or one of "
                            f"{', '.join(params.labels)}, got {answer!r}")]
        return []

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        params: Params = month.params
        counts = {n: 0 for n in range(params.lowest, params.highest + 1)}
        for c in month.counted:
            counts[self.rating(c.response.answers["rating"], params)] += 1
        if not any(counts.values()):
            return []
        return [self._figure(counts, params, trace)]

    def _figure(self, counts: dict[int, int], params: Params, trace: Trace | None) -> Figure:
        total_points = sum(n * k for n, k in counts.items())
        ratings = sum(counts.values())
        score = div(Decimal(total_points), Decimal(ratings))
        if trace:
            trace.step("rating", "(" + " + ".join(f"{k}×{n}" for n, k in counts.items()) + f") / {ratings}", score)
        return Figure(metric="rating", score=score, responses=ratings,
                      extras={"distribution": {str(n): k for n, k in counts.items()}},
                      state={"score": score, "counts": {str(n): k for n, k in counts.items()}})

    def roll_up(self, period, metric, months, params: Params, trace):
        counts = {n: 0 for n in range(params.lowest, params.highest + 1)}
        for month, f in months:
            for n, k in f.state["counts"].items():
                counts[int(n)] = counts.get(int(n), 0) + int(k)
            if trace:
                trace.step(month, "ratings " + ", ".join(f"{n}: {k}" for n, k in f.state["counts"].items()), None)
        return self._figure(counts, params, trace) if any(counts.values()) else None


@hookimpl
def csat_rulesets() -> list[RuleSet]:
    return [CallCentre5()]


@hookimpl
def csat_demo_files() -> list[str]:
    return [module_file(__file__, "examples/callcentre-5.jsonl")]
