"""What a monthly report to management holds (``csat report``), as plain data: for each rule set
of the period, the ranking by name with the change against the previous period, the trend over
the year (per metric), the grade distribution, the weakest items with the reasons given for them, the
other reasons and comments (verbatim, never who gave them),
the complaint and rectification cases, each figure's explanation (redacted), and what the report
can be checked against later (log position, head hash, adoptions in force). Rendering is the
CLI's (``cli/report.py``)."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from .. import periods

from ..read import scoreviews
from ..errors import CsatError
from .redact import Pseudonyms

#: subjects drawn in a metric's trend chart: the best and the worst few
TREND_EACH_END = 5
#: the last steps of each explanation shown (the aggregation; `csat explain` shows every step):
#: a year of 50 subjects would otherwise put tens of thousands of per-response steps in the page
STEPS_SHOWN = 12
#: the last events of each explanation listed (the same reason; `csat explain` lists them all)
EVENTS_SHOWN = 12
#: the weakest items shown per rule set, each with the reasons given for it
LOWEST_ITEMS = 5
#: the reasons listed under each of them (most recent last; the rest are counted, and
#: `csat log --type response --redact` lists every one)
REASONS_SHOWN = 30


#: times a report is begun again when the read models move while it is read (others ingesting)
ATTEMPTS = 5


class _Moved(Exception):
    """The read models moved while a report was being read."""


def report_data(engine: Any, period: str, ruleset: str | None = None, under: str | None = None,
                min_responses: int = 0) -> dict[str, Any]:
    """The report of ``period`` (see the module). A figure from fewer than ``min_responses``
    responses is marked ``hidden`` (shown as "—"), so a small group's raters cannot be singled out:
    a subject's score, an item's attainment, and the change against a previous figure that was
    itself from too few responses (the change would give it away).

    Every figure is read at one log position, the one the footer names: when another process
    moves the read models while the report is read, it is read again (``ATTEMPTS`` times)."""
    periods.kind(period)
    for _ in range(ATTEMPTS):
        try:
            return _report(engine, period, ruleset, under, min_responses)
        except _Moved:
            continue
    raise CsatError(f"the log moved {ATTEMPTS} times while the report was being read (others are ingesting): "
                    "run csat report again")


def _report(engine: Any, period: str, ruleset: str | None, under: str | None, min_responses: int) -> dict[str, Any]:
    before = periods.previous(period)
    start = engine.caught_up()
    earlier = engine.scores(ruleset=ruleset, period=before, under=under)
    rows = scoreviews.versus(engine.scores(ruleset=ruleset, period=period, under=under), earlier)
    few_before = {(r["ruleset"], r["subject"], r["metric"]) for r in earlier if r["responses"] < min_responses}
    for r in rows:
        r["before_hidden"] = (r["ruleset"], r["subject"], r["metric"]) in few_before
    if not rows:
        raise CsatError(f"no scores for {period}" + (f" in {ruleset}" if ruleset else "")
                        + (f" under {under}" if under else ""))
    names, written = _responses(engine, period, ruleset, start[0])
    last = periods.months_of(period)[-1]
    months = [m for m in periods.months_of(period[:4]) if m <= last]  # the trend ends at the period reported
    in_year = [r for r in engine.scores(ruleset=ruleset, under=under)
               if r["period"] in months and r["responses"] >= min_responses]
    units = {u["id"]: u for u in engine.units(last)}
    in_force = engine.projection.state()[0]
    sections = []
    for rs in dict.fromkeys(r["ruleset"] for r in rows):
        mine = [r for r in rows if r["ruleset"] == rs]
        levels: dict[int, set[str]] = {}
        for r in mine:
            r["hidden"] = r["responses"] < min_responses
            unit = units.get(r["subject"])
            r["level"] = len(unit["chain"]) if unit else 0
            if unit and unit["kind"]:
                levels.setdefault(r["level"], set()).add(unit["kind"])
        for r in mine:  # the kinds of units at the row's level of the org chart, for its group's heading
            r["kind"] = "/".join(sorted(levels.get(r["level"], ()))) or None
        # like with like: a dealer, its teams and its advisors ranked apart (by their level in the org
        # chart); within a group the ranked by score, then the hidden by name (their order would give
        # their figures away)
        ranking = sorted(mine, key=lambda r: (r["metric"], r["level"], r["hidden"],
                                              0 if r["hidden"] else -(r["score"] or 0),
                                              (r["subject_name"] or r["subject"]) if r["hidden"] else r["subject"]))
        shown = [r for r in ranking if not r["hidden"]]
        seen: Counter[tuple[str, int]] = Counter()
        placed: dict[tuple[str, int], tuple[Any, int]] = {}  # group -> (score, its rank)
        for r in ranking:  # ranked within each group, equal scores sharing a place (1, 2, 2, 4)
            group = r["group"] = (r["metric"], r["level"])
            if r["hidden"]:  # a hidden figure has no place
                r["rank"] = None
                continue
            seen[group] += 1
            score, rank = placed.get(group, (object(), 0))
            r["rank"] = rank if r["score"] == score else seen[group]
            placed[group] = (r["score"], r["rank"])
        trends: dict[str, dict[str, dict[str, Any]]] = {}  # group title -> line name -> month -> score
        for group in dict.fromkeys(r["group"] for r in shown):
            of_group = [r for r in shown if r["group"] == group and r["score"] is not None]
            ends = {r["subject"] for r in of_group[:TREND_EACH_END] + of_group[-TREND_EACH_END:]}
            metric, kind = group[0], of_group[0]["kind"] if of_group else None
            lines = trends[f"{metric} · {kind}" if kind else metric] = {}
            for r in in_year:
                if r["ruleset"] == rs and r["metric"] == metric and r["subject"] in ends and r["score"] is not None:
                    name = f"{r['subject_name']} ({r['subject']})" if r["subject_name"] else r["subject"]
                    lines.setdefault(name, {})[r["period"]] = r["score"]
        grades = _grade_counts(shown, in_force.in_force(rs, last))
        explanations = {}
        for r in shown:
            steps = engine.explain(rs, r["subject"], period, r["metric"])
            kept = steps["steps"][-STEPS_SHOWN:]
            events = steps["events"][-EVENTS_SHOWN:]
            explanations[(r["subject"], r["metric"])] = {
                "steps": names.steps(kept), "more": len(steps["steps"]) - len(kept),
                "events": [_event(e, names) for e in events], "more_events": len(steps["events"]) - len(events)}
        reasons = _reasons(written.get(rs, []), mine, names)
        lowest = engine.items(rs, period, subjects=[r["subject"] for r in shown])[:LOWEST_ITEMS]
        for item in lowest:
            del item["response_ids"]
            given = [x for x in reasons if x["item"] == item["item"]]
            item["hidden"] = item["responses"] < min_responses
            item["reasons"], item["more_reasons"] = given[-REASONS_SHOWN:], max(len(given) - REASONS_SHOWN, 0)
        ranked = {item["item"] for item in lowest}
        sections.append({"ruleset": rs, "ranking": ranking, "trends": trends, "months": months,
                         "grades": grades, "explanations": explanations, "items": lowest,
                         "reasons": [x for x in reasons if x["item"] not in ranked]})
    cases = [names.deep({**c, "text": c["text"] or ""}) for c in engine.complaints(period=period, under=under)
             if ruleset in (None, c["ruleset"])]
    # as of the period's last day: rectifications raised after it are not there yet
    rectifications = names.deep(engine.rectifications(as_of=periods.last_day(period), under=under))
    position, head = engine.head()
    if (position, head) != start:
        raise _Moved
    adoptions = []  # the parameters in force in the period's months, per rule set reported
    for section in sections:
        used = {a.id: a for m in periods.months_of(period)
                if (a := in_force.in_force(section["ruleset"], m)) is not None}
        adoptions += [{"ruleset": a.ruleset, "id": a.id, "from": a.from_, "position": a.position,
                       "params_hash": a.hash} for a in used.values()]
    return {"period": period, "previous": before, "under": under, "min_responses": min_responses,
            "sections": sections, "complaints": cases,
            "rectifications": [r for r in rectifications if r["overdue"] or r["late"] or r["status"] == "open"],
            "log_position": position, "log_head": head, "adoptions": adoptions}


def _grade_counts(shown: list[dict[str, Any]], adoption: Any) -> list[tuple[str, int, int, int]]:
    """``(label, subjects, place, grades)`` per grade reached, best first; ``place`` is the grade's
    place among the rule set's ``grades`` (its ``grades`` parameter, best first, where it has one; else by
    the best figure that reached it), so a grade keeps its colour in every chart."""
    listed = getattr(adoption.params, "grades", None) if adoption is not None else None
    order = [g.id for g in listed] if isinstance(listed, (list, tuple)) and all(
        hasattr(g, "id") for g in listed) else []
    floors = [getattr(g, "min", None) if getattr(g, "band", None) is None else g.band[0] for g in listed or ()]
    if order and all(isinstance(f, (int, Decimal)) for f in floors):  # listed worst first (plant-50's bands)
        order = [g for _, g in sorted(zip(floors, order), key=lambda x: -x[0])]
    graded = [r for r in shown if r["grade"] is not None]
    best = sorted({r["grade"] for r in graded} - set(order),
                  key=lambda g: -max(r["score"] or 0 for r in graded if r["grade"] == g))
    order += best
    counts = Counter(r["grade"] for r in graded)
    labels = {r["grade"]: r["grade_label"] or r["grade"] for r in graded}
    return [(labels[g], counts[g], order.index(g), len(order)) for g in order if counts[g]]


def _event(e: dict[str, Any], names: Pseudonyms) -> dict[str, Any]:
    """An event an explanation read, as the report lists it: ids and reasons that embed a rater's
    name (plant-2026-03-finance-workshop-1) carry the pseudonym instead."""
    return {"position": e["position"], "type": e["type"], "id": names.text(e["id"]), "used": e["used"],
            "why": names.text(e.get("why") or "")}


def _responses(engine: Any, period: str, ruleset: str | None, upto: int) -> tuple[Pseudonyms, dict[str, list[dict]]]:
    """One pass over the period's responses up to log position ``upto``: every rater and respondent
    gets their pseudonym (one output: the same person is the same pseudonym in every table of the
    report), and the responses that carry a reason or a comment are kept, by rule set."""
    names = engine.pseudonyms()
    written: dict[str, list[dict]] = {}
    for e in engine.log(type="response", period=period, ruleset=ruleset):
        if e["position"] > upto:  # appended since the read models were read: not in this report
            break
        ev = names.event(e["event"])
        if ev.get("reasons") or ev.get("comment"):
            written.setdefault(ev["ruleset"], []).append(ev)
    return names, written


def _reasons(written: list[dict[str, Any]], rows: list[dict[str, Any]], names: Pseudonyms) -> list[dict[str, Any]]:
    """The reasons and comments written in the period's responses, verbatim, with the subject
    and the item — never the rater or respondent (a name written into the text itself becomes
    its pseudonym); none for a subject whose figures are hidden."""
    visible = {r["subject"] for r in rows if not r["hidden"]}
    named = {r["subject"]: r["subject_name"] for r in rows}
    out = []
    for ev in written:
        if ev.get("subject") not in visible:
            continue
        for item, reason in sorted((ev.get("reasons") or {}).items()):
            out.append({"subject": ev["subject"], "subject_name": named.get(ev["subject"]), "item": item,
                        "answer": (ev.get("answers") or {}).get(item), "text": names.text(reason), "kind": "reason"})
        if ev.get("comment"):
            out.append({"subject": ev["subject"], "subject_name": named.get(ev["subject"]), "item": None,
                        "answer": None, "text": names.text(ev["comment"]), "kind": "comment"})
    return out
