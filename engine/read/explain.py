"""Explanations: how a published figure was derived, down to the events.

An explanation recomputes the figure with the same rule-set code that
published it, collecting each formula step, and lists every event read: the
responses (used, or excluded and why), their corrections and withdrawals, and
the adoption whose parameters were in force — each with its log position.

A step's ``value`` is exact (34 digits where a division does not end): JSON keeps it so, for
audit. For people, :func:`for_people` shows it at the rule set's precision plus
:data:`SHOWN_DIGITS` decimals, rounded half-up (``723.333333`` for a score published as
``723.33``), never the arithmetic's artefacts.
"""
from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

from .. import periods
from ..errors import NotFound
from ..scoring.guard import checked_figure, checked_figures, checked_sequence, guarded
from ..scoring.numbers import publish
from .projection import Projection
from .readmodel import Adoptions, Org
from ..scoring.ruleset import Adoption, Figure, MonthInput, RuleSet, Trace


def published_row(ruleset: str, period: str, subject: str, adoption: Adoption, figure: Figure) -> dict[str, Any]:
    """A figure as the public score row (``events.md`` §4)."""
    precision = getattr(adoption.params, "precision", 2)
    row: dict[str, Any] = {
        "ruleset": ruleset, "adoption": adoption.id, "period": period, "subject": subject,
        "metric": figure.metric,
        "score": publish(figure.score, precision) if figure.score is not None else None,
        "grade": figure.grade, "grade_label": figure.grade_label, "responses": figure.responses,
    }
    row.update(figure.extras)
    return row


#: decimals a step's value is shown with beyond the published precision (display only)
SHOWN_DIGITS = 4


def shown(value: Any, places: int) -> Any:
    """``value`` for people: a Decimal with more than ``places`` decimals rounded half-up to them;
    anything else (a shorter Decimal, None, text) as it is."""
    if not isinstance(value, Decimal) or not value.is_finite() or value.as_tuple().exponent >= -places:
        return value
    return value.quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP,
                          context=decimal.Context(prec=decimal.MAX_PREC))


def for_people(x: dict[str, Any]) -> dict[str, Any]:
    """An explanation with its steps' values shown at the rule set's precision (the places of
    the published score; 2 without one) plus :data:`SHOWN_DIGITS` — for the text of ``csat
    explain``; ``--format json`` keeps every digit."""
    score = x.get("score")
    places = -score.as_tuple().exponent if isinstance(score, Decimal) and score.is_finite() else 2
    places = max(places, 0) + SHOWN_DIGITS
    return {**x, "steps": [{**s, "value": shown(s.get("value"), places)} for s in x.get("steps", ())]}


def _events(inputs: list[MonthInput], trace: Trace, adoptions: list[Adoption], org: Org,
            metric: str) -> list[dict[str, Any]]:
    events: dict[tuple[int, str], dict[str, Any]] = {}

    def add(position: int, type_: str, id_: str, used: bool, why: str | None = None) -> None:
        entry: dict[str, Any] = {"position": position, "type": type_, "id": id_, "used": used}
        if why:
            entry["why"] = why
        events[(position, id_)] = entry

    for a in adoptions:
        add(a.position, "adoption", a.id, True, None)
    for inp in inputs:
        for c in inp.counted:
            r = c.response
            why = trace.why_not(r.id, metric)
            if why is None and c.credit.via:
                links = org.path(c.credit.via, c.credit.subject, inp.month)
                why = (f"credited through {c.credit.via} ({c.credit.role}): "
                       + "; ".join(link.describe() for link in links))
                add(r.position, "response", r.id, True, why)
            else:
                add(r.position, "response", r.id, why is None, why)
            for a in r.corrections:
                add(a.position, "correction", a.id, why is None, f"answers replaced: {a.reason}")
        for x in [*inp.excluded, *inp.withdrawn]:
            r, why = x.response, x.why
            add(r.position, "response", r.id, False, why)
            for a in r.corrections:
                add(a.position, "correction", a.id, False, f"answers replaced: {a.reason}")
            if r.withdrawn is not None:
                add(r.withdrawn.position, "withdrawal", r.withdrawn.id, True, f"voids {r.id}: {r.withdrawn.reason}")
        for case in inp.cases:
            for event_id, position, type_ in _case_events(case):
                used, why = trace.case_notes.get((metric, event_id)) or trace.case_notes.get(
                    (None, event_id)) or (False, "did not affect this figure")
                add(position, type_, event_id, used, why)
    return [events[k] for k in sorted(events)]


def _case_events(case: Any) -> list[tuple[str, int, str]]:
    out = [(case.id, case.position, case.kind)]
    if case.closure:
        out.append((case.closure[0], case.closure[3], "complaint_closed"))
    out += [(u[0], u[3], "rectification_update") for u in case.updates]
    return out


def explain(projection: Projection, rs: RuleSet, subject: str, period: str, metric: str | None = None) -> dict[str, Any]:
    """The explanation of one score row; raises NotFound when there is none."""
    kind = periods.kind(period)
    adoptions, org = projection.state()
    trace = Trace()
    inputs: list[MonthInput] = []
    withdrawn_only: list[MonthInput] = []
    months = periods.months_of(period)
    month_figures: dict[str, list[Figure]] = {}
    for month in months:
        inp = projection.scorer.month_input(rs, subject, month, adoptions, org)
        if inp is None or not (inp.counted or inp.excluded):
            if inp is not None and inp.withdrawn:
                withdrawn_only.append(inp)
            continue
        inputs.append(inp)
        trace.prefix = "" if kind == "month" else f"{month} "
        where = f"explaining {subject} {month}"
        month_figures[month] = checked_figures(rs, where, guarded(rs, where, rs.score_month, inp, trace), inp.params)
    trace.prefix = ""
    if not inputs:
        if withdrawn_only:
            raise NotFound(f"{rs.id}: every response for {subject!r} in {period} was withdrawn: "
                           + ", ".join(x.response.id for i in withdrawn_only for x in i.withdrawn))
        raise NotFound(f"no responses of {rs.id} for {subject!r} in {period}")
    if kind == "month":
        figures = month_figures[period]
        if rs.sequential and figures:
            figures = _sequenced(projection, rs, subject, period, figures, adoptions, trace)
        adoption = inputs[0].adoption
    else:
        stored = projection.scorer.month_figures(rs, subject, months)
        adoption = adoptions.in_force(rs.id, max(m for rows in stored.values() for m, _ in rows)) \
            if stored else inputs[-1].adoption
        where = f"explaining {subject} {period}"
        figures = [f for met, rows in sorted(stored.items())
                   if (f := checked_figure(rs, where, guarded(rs, where, rs.roll_up, period, met, rows,
                                                              adoption.params, trace), adoption.params)) is not None]
    try:
        figure = _pick(figures, metric, rs, subject, period)
    except NotFound as e:
        why = [s.formula for s in trace.steps if metric is not None and s.metric == metric and s.value is None]
        raise NotFound(f"{e}: {'; '.join(why)}" if why else str(e)) from None
    used_adoptions = {(i.adoption.ruleset, i.adoption.id): i.adoption for i in inputs}
    used_adoptions[(adoption.ruleset, adoption.id)] = adoption
    out = published_row(rs.id, period, subject, adoption, figure)
    out["params_hash"] = adoption.hash
    out["adoption_from"] = adoption.from_
    if adoption.upgraded_from is not None:  # stored for an older version of the rule set, upgraded on reading
        out["params_upgraded_from"] = adoption.upgraded_from
    out["steps"] = [{"label": s.label, "formula": s.formula, "value": s.value} for s in trace.steps
                    if s.metric in (None, figure.metric)]
    out["events"] = _events(inputs, trace, list(used_adoptions.values()), org, figure.metric)
    return out


def _sequenced(projection: Projection, rs: RuleSet, subject: str, month: str, figures: list[Figure],
               adoptions: Adoptions, trace: Trace) -> list[Figure]:
    out = []
    stored = projection.scorer.month_figures(rs, subject)
    for fig in figures:
        rows = [(m, f) for m, f in stored.get(fig.metric, []) if m != month]
        rows.append((month, fig))
        rows.sort(key=lambda x: x[0])
        where = f"explaining {subject} {month}"
        seq = checked_sequence(rs, where, guarded(rs, where, rs.sequence, rows,
                                                  lambda m: adoptions.in_force(rs.id, m).params, trace, month),
                               [m for m, _ in rows])
        out.append(next(f for m, f in seq if m == month))
    return out


def _pick(figures: list[Figure], metric: str | None, rs: RuleSet, subject: str, period: str) -> Figure:
    if not figures:
        raise NotFound(f"{rs.id}: {subject!r} has no score in {period} (every response was excluded)")
    if metric is None:
        if len(figures) == 1:
            return figures[0]
        raise NotFound(f"{rs.id}: {subject!r} has several metrics in {period}; name one with --metric: "
                       + ", ".join(f.metric for f in figures))
    for f in figures:
        if f.metric == metric:
            return f
    raise NotFound(f"{rs.id}: {subject!r} has no metric {metric!r} in {period} (has: "
                   + ", ".join(f.metric for f in figures) + ")")
