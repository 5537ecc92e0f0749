"""dealership-cs — sales and service callback CS, credited up the org chart.

Source: seed 003 (南方丰田 CS 考核方案); spec ``rulesets.md`` §3. Each callback
gives a value 0–100 per metric (Σ weight × points / 100). A unit's figure is
the mean over the callbacks credited to it in the period — its own, and for a
team every member's (a callback counts once per unit); quarters and years are
pooled over callbacks, never the mean of monthly means. Refused or unreachable
callbacks are kept, excluded, and counted in ``failed``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from csat.engine.events import NA, ResponseRecorded
from csat.engine.numbers import ZERO, add, dec, div, mul, plain, total
from csat.engine.params import outside, read_toml
from csat.engine.ruleset import (Choice, Credit, Figure, ItemPoints, LateAnswers, MonthInput, Problem, QuestionItem,
                                 Questionnaire, ResponseState, RuleSet, Trace, answers_key, module_file)
from csat.plugins import hookimpl

HUNDRED = Decimal(100)
FAILED = ("refused", "unreachable")


class Level(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    points: Decimal
    answers: list[str]


class Metric(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    weights: dict[str, Decimal]
    credit: str = "subject"


class Form(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    items: list[str]
    metrics: dict[str, Metric] = {}
    labels: dict[str, str] = {}  # item -> the question as the callback asks it


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    levels: dict[str, Level]
    forms: dict[str, Form]
    precision: int = 2
    remedy_levels: list[str] = []
    #: whether an answer recorded after its round's due date counts ("count") or not ("exclude")
    late_answers: LateAnswers = "count"


def _units(state: ResponseState, credit: str) -> list[str]:
    if credit == "subject":
        return [state.subject]
    return list(state.roles.get(credit.removeprefix("roles."), ()))


class DealershipCS(RuleSet):
    id = "dealership-cs"
    version = "1.0"
    title = "经销商 CS 回访考核 (dealership sales & service callbacks)"
    params_type = Params
    defaults_path = module_file(__file__, "dealership_cs.toml")
    uses_org = True
    metrics = tuple(m for f in read_toml(defaults_path)["forms"].values() for m in f.get("metrics", {}))

    def declared_metrics(self, params: Params) -> tuple[str, ...]:
        """The metrics of the forms in the parameters in force."""
        return tuple(m for f in params.forms.values() for m in f.metrics)

    def check_params(self, params: Params) -> list[str]:
        problems = []
        seen: dict[str, str] = {}
        for level, spec in params.levels.items():
            if not 0 <= spec.points <= 100:
                problems.append(f"key `levels.{level}.points`: expected 0 to 100, got {spec.points}")
            for a in spec.answers:
                if a in seen and seen[a] != level:
                    problems.append(f"key `levels.{level}.answers`: {a!r} is already an answer of {seen[a]!r}")
                seen[a] = level
        for level in params.remedy_levels:
            if level not in params.levels:
                problems.append(f"key `remedy_levels`: unknown level {level!r}")
        owner: dict[str, str] = {}
        for form, f in params.forms.items():
            for item in f.labels:
                if item not in f.items:
                    problems.append(f"key `forms.{form}.labels`: {item!r} is not an item of form {form!r}")
            for metric, m in f.metrics.items():
                if metric in owner:
                    problems.append(f"key `forms.{form}.metrics.{metric}`: metric also defined by form {owner[metric]!r}")
                owner[metric] = form
                if m.credit != "subject" and not (m.credit.startswith("roles.") and len(m.credit) > 6):
                    problems.append(f"key `forms.{form}.metrics.{metric}.credit`: expected \"subject\" or "
                                    f"\"roles.<role>\", got {m.credit!r}")
                for item in m.weights:
                    if item not in f.items:
                        problems.append(f"key `forms.{form}.metrics.{metric}.weights`: {item!r} is not an item "
                                        f"of form {form!r}")
        return problems

    def check_ranges(self, params: Params) -> list[str]:
        """A metric's weights not negative (the level points, 0 to 100, are checked always)."""
        return [p for form, f in params.forms.items() for metric, m in f.metrics.items()
                for item, w in m.weights.items() for p in outside(f"forms.{form}.metrics.{metric}.weights.{item}", w, 0)]

    def _level_of(self, params: Params) -> dict[str, str]:
        return self.per_params("levels", params, lambda p: {a: lvl for lvl, spec in p.levels.items()
                                                             for a in spec.answers})

    def points(self, answer: Any, params: Params) -> Decimal | None:
        """The points of an answer (a level's answer, or a number 0–100); None for N/A or unknown."""
        if isinstance(answer, str):
            level = self._level_of(params).get(answer)
            return params.levels[level].points if level else None
        return dec(answer)

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        if response.form is None:
            return [Problem("form", f"missing (a sheet needs a `form` or 表单 column): expected one of "
                            f"{', '.join(params.forms)} for dealership-cs")]
        if response.form not in params.forms:
            return [Problem("form", f"expected one of {', '.join(params.forms)} for dealership-cs, "
                            f"got {response.form!r}")]
        form = params.forms[response.form]
        problems = []
        level_of = self._level_of(params)
        for item, answer in response.answers.items():
            if item not in form.items:
                problems.append(Problem(f"answers.{item}", f"unknown item of the {response.form} form "
                                        f"(expected one of {', '.join(form.items)})"))
            elif answer == NA:
                continue
            elif isinstance(answer, str) and answer not in level_of:
                accepted = " / ".join(a for spec in params.levels.values() for a in spec.answers)
                problems.append(Problem(f"answers.{item}", f"expected an answer ({accepted}), points 0–100 "
                                        f"or N/A, got {answer!r}"))
            elif not isinstance(answer, str) and not 0 <= dec(answer) <= 100:
                problems.append(Problem(f"answers.{item}", f"expected points 0–100, got {answer!r}"))
        if response.status == "completed":
            for item in form.items:
                if item not in response.answers:
                    problems.append(Problem(f"answers.{item}", "missing item (answer it or give \"N/A\")"))
        return problems

    def credits(self, response: ResponseState, params: Params, chain: Any) -> list[Credit]:
        form = params.forms.get(response.form or "") if params else None
        if form is None:
            return [Credit(response.subject)]
        out: dict[Credit, None] = {}
        for credit in dict.fromkeys(m.credit for m in form.metrics.values()):
            for unit in _units(response, credit):
                out[Credit(unit, credit)] = None
                for ancestor in chain(unit, response.period):
                    out[Credit(ancestor, credit, unit)] = None
        return list(out)

    def credit_params(self, params: Params) -> Any:
        return tuple((form, tuple(sorted({m.credit for m in f.metrics.values()}))) for form, f in params.forms.items())

    def remedy(self, response: ResponseState, params: Params) -> str | None:
        level_of = self._level_of(params)
        ceiling = max((params.levels[lv].points for lv in params.remedy_levels), default=None)
        for item, answer in response.answers.items():
            if isinstance(answer, str):
                level = level_of.get(answer)
                if level in params.remedy_levels:
                    return f"{item}: {answer} ({level})"
            elif ceiling is not None and dec(answer) <= ceiling:
                return f"{item}: {answer} points (≤ {plain(ceiling)})"
        return None

    def questionnaire(self, params: Params) -> Questionnaire:
        """Each form's questions (its ``labels``), answered at a level (the first answer each
        level accepts) or N/A; no reason is required."""
        choices = tuple(Choice(lvl.answers[0], lvl.answers[0]) for lvl in params.levels.values() if lvl.answers)
        return Questionnaire(tuple(QuestionItem(i, f.labels.get(i, i), choices=choices, form=name)
                                   for name, f in params.forms.items() for i in f.items), forms=tuple(params.forms))

    def item_points(self, response: ResponseState, params: Params) -> dict[str, ItemPoints]:
        """An item's points (its level's, or the number given) out of 100."""
        form = params.forms.get(response.form or "")
        if form is None:
            return {}
        out = {}
        for item, answer in response.answers.items():
            points = self.points(answer, params) if item in form.items else None  # None: N/A or unknown
            if points is not None:
                out[item] = ItemPoints(points, HUNDRED)
        return out

    def _values(self, r: ResponseState, form: Form, params: Params) -> dict[str, tuple[list, Decimal | None]]:
        """Each metric of the response's form: its (item, weight, points) terms and value (None: N/A).
        They depend on the form and the answers alone — the same for every unit the callback is
        credited to, and for every callback answered alike — so each pattern is computed once."""
        return self.remembered("patterns", params, (r.form, answers_key(r.answers)),
                               lambda: self._pattern_values(r, form, params))

    def _pattern_values(self, r: ResponseState, form: Form, params: Params) -> dict[str, tuple[list, Decimal | None]]:
        level_of = self._level_of(params)
        points: dict[str, Decimal | None] = {}
        for item, answer in r.answers.items():
            if isinstance(answer, str):
                level = level_of.get(answer)
                points[item] = params.levels[level].points if level else None
            else:
                points[item] = dec(answer)
        out = {}
        for metric, m in form.metrics.items():
            pts = [(item, w, points.get(item)) for item, w in m.weights.items()]
            value = None if any(p is None for _, _, p in pts) else div(total(mul(w, p) for _, w, p in pts), HUNDRED)
            out[metric] = (pts, value)
        return out

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        params: Params = month.params
        values: dict[str, list[Decimal]] = {}
        credited: dict[str, dict[str, Credit]] = {}
        for c in month.counted:
            r = c.response
            form = params.forms.get(r.form or "")
            if form is None:
                continue
            per_metric = self._values(r, form, params)
            for metric, m in form.metrics.items():
                if m.credit != c.credit.role:
                    continue
                seen = credited.setdefault(metric, {})
                if r.id in seen:
                    continue  # once per unit, however many members it credits
                seen[r.id] = c.credit
                pts, value = per_metric[metric]
                if value is None:
                    if trace:
                        trace.exclude(r, f"N/A in {', '.join(i for i, _, p in pts if p is None)}: does not "
                                      f"count for {metric}", metric)
                    continue
                values.setdefault(metric, []).append(value)
                if trace:
                    via = f" via {c.credit.via}" if c.credit.via else ""
                    trace.step(f"{metric} callback {r.id}{via}", "Σ weight × points / 100 = (" + " + ".join(
                        f"{plain(w)}×{plain(p)}" for _, w, p in pts) + ") / 100", value, metric)
        if trace:
            for c in month.counted:
                for form_id, form in params.forms.items():
                    if c.response.form != form_id:
                        for metric in form.metrics:
                            trace.exclude(c.response, f"a {c.response.form} callback: {metric} comes from the "
                                          f"{form_id} form", metric)
        figures = []
        for form_id, form in params.forms.items():
            for metric, m in form.metrics.items():
                vals = values.get(metric, [])
                failed = len({x.response.id for x in month.excluded if x.response.form == form_id
                              and x.response.status in FAILED and x.credit.role == m.credit and not x.credit.via})
                if not vals and not failed:
                    continue
                direct = failed > 0 or any(not c.via for c in credited.get(metric, {}).values())
                figures.append(self._figure(metric, total(vals), len(vals),
                                            "unit" if direct else (month.kind or "group"),
                                            failed if direct else None, trace))
        return figures

    def _figure(self, metric: str, sum_: Decimal, count: int, level: str, failed: int | None,
                trace: Trace | None) -> Figure:
        score = div(sum_, Decimal(count)) if count else None
        if trace:
            trace.step(f"{metric}", f"mean over the callbacks (pooled): {plain(sum_)} / {count}" if count else
                       "no completed callback: no CS figure", score, metric)
            if failed:
                trace.step(f"{metric} failed", "refused or unreachable callbacks (kept, not scored)", failed, metric)
        extras: dict[str, Any] = {"level": level}
        if failed is not None:
            extras["failed"] = failed
        return Figure(metric=metric, score=score, responses=count, extras=extras,
                      state={"score": score, "sum": sum_, "count": count, "level": level, "failed": failed})

    def roll_up(self, period: str, metric: str, months: list[tuple[str, Figure]], params: Params,
                trace: Trace | None) -> Figure | None:
        if not months:
            return None
        sum_, count, failed = ZERO, 0, None
        for month, f in months:
            sum_ = add(sum_, dec(f.state["sum"]))
            count += int(f.state["count"])
            if f.state.get("failed") is not None:
                failed = (failed or 0) + int(f.state["failed"])
            if trace:
                trace.step(f"{month}", f"{f.state['count']} callback(s), Σ {plain(dec(f.state['sum']))}",
                           dec(f.state["sum"]), metric)
        return self._figure(metric, sum_, count, months[-1][1].state["level"], failed, trace)


@hookimpl
def csat_rulesets() -> list[RuleSet]:
    return [DealershipCS()]


@hookimpl
def csat_demo_files() -> list[str]:
    return [module_file(__file__, "examples/dealership-demo.jsonl")]
