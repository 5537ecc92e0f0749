"""What a monthly report to management holds (``csat report``), as plain data: for each rule set
of the period, the ranking by name with the change against the previous period, the trend over
the year, the grade distribution, the reasons and comments given (verbatim, never who gave them),
the complaint and rectification cases, each figure's explanation (redacted), and what the report
can be checked against later (log position, head hash, adoptions in force). Rendering is the
CLI's (``cli/report.py``)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from . import periods
from .errors import CsatError
from .redact import Pseudonyms

#: subjects drawn in the trend chart: the best and the worst few
TREND_EACH_END = 5
#: the last steps of each explanation shown (the aggregation; `csat explain` shows every step):
#: a year of 50 subjects would otherwise put tens of thousands of per-response steps in the page
STEPS_SHOWN = 12


def previous(period: str) -> str:
    """The period before: last month, last quarter, last year."""
    k = periods.kind(period)
    year = int(period[:4])
    if k == "month":
        month = int(period[5:])
        return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"
    if k == "quarter":
        q = int(period[-1])
        return f"{year - 1:04d}-Q4" if q == 1 else f"{year:04d}-Q{q - 1}"
    return f"{year - 1:04d}"


def report_data(engine: Any, period: str, ruleset: str | None = None, under: str | None = None,
                min_responses: int = 0) -> dict[str, Any]:
    """The report of ``period`` (see the module). A figure from fewer than ``min_responses``
    responses is marked ``hidden`` (shown as "—"), so a small group's raters cannot be singled out."""
    periods.kind(period)
    rows = engine.scores(ruleset=ruleset, period=period, under=under, vs=previous(period))
    if not rows:
        raise CsatError(f"no scores for {period}" + (f" in {ruleset}" if ruleset else "")
                        + (f" under {under}" if under else ""))
    names = Pseudonyms()  # one output: the same rater is the same pseudonym in every table of the report
    for e in engine.log(type="response", period=period, ruleset=ruleset):
        names.event(e["event"])
    year = period[:4]
    months = [m for m in periods.months_of(year)]
    sections = []
    for rs in dict.fromkeys(r["ruleset"] for r in rows):
        mine = [r for r in rows if r["ruleset"] == rs]
        for r in mine:
            r["hidden"] = r["responses"] < min_responses
        ranking = sorted(mine, key=lambda r: (r["metric"], r["hidden"], -(r["score"] or 0), r["subject"]))
        shown = [r for r in ranking if not r["hidden"]]
        ends = {r["subject"] for r in shown[:TREND_EACH_END]} | {r["subject"] for r in shown[-TREND_EACH_END:]}
        yearly = engine.scores(ruleset=rs, period=None, under=under)
        trend: dict[str, dict[str, Any]] = {}
        for r in yearly:
            if r["period"] in months and r["subject"] in ends and r["responses"] >= min_responses:
                series = trend.setdefault(f"{r['subject_name'] or r['subject']} · {r['metric']}", {})
                series[r["period"]] = r["score"]
        grades = Counter(r["grade_label"] or r["grade"] for r in shown if r["grade"] is not None)
        explanations = {}
        for r in ranking:
            if not r["hidden"]:
                x = engine.explain(rs, r["subject"], period, r["metric"])
                steps = x["steps"][-STEPS_SHOWN:]
                explanations[(r["subject"], r["metric"])] = {
                    "steps": [{**st, "label": names.text(st["label"]), "formula": names.text(st["formula"])}
                              for st in steps],
                    "more": len(x["steps"]) - len(steps), "events": len(x["events"])}
        sections.append({"ruleset": rs, "ranking": ranking, "trend": trend, "months": months,
                         "grades": dict(grades), "explanations": explanations,
                         "reasons": _reasons(engine, rs, period, mine, names)})
    cases = [c for c in engine.complaints(period=period) if ruleset in (None, c["ruleset"])]
    end = _last_day(period)
    rectifications = [r for r in engine.rectifications(as_of=end) if r["period"] <= periods.months_of(period)[-1]]
    position, head = engine.head()
    adoptions = [{"ruleset": e["event"]["ruleset"], "id": e["id"], "from": e["event"]["from"],
                  "position": e["position"]} for e in engine.log(type="adoption")]
    return {"period": period, "previous": previous(period), "under": under, "min_responses": min_responses,
            "sections": sections, "complaints": cases,
            "rectifications": [r for r in rectifications if r["overdue"] or r["late"] or r["status"] == "open"],
            "log_position": position, "log_head": head, "adoptions": adoptions}


def _last_day(period: str) -> str:
    month = periods.months_of(period)[-1]
    nxt = periods.next_month(month)
    import datetime as dt
    return (dt.date(int(nxt[:4]), int(nxt[5:]), 1) - dt.timedelta(days=1)).isoformat()


def _reasons(engine: Any, ruleset: str, period: str, rows: list[dict[str, Any]],
             names: Pseudonyms) -> list[dict[str, Any]]:
    """The reasons and comments written in the period's responses, verbatim, with the subject
    and the item — never the rater or respondent (a name written into the text itself becomes
    its pseudonym); none for a subject whose figures are hidden."""
    visible = {r["subject"] for r in rows if not r["hidden"]}
    named = {r["subject"]: r["subject_name"] for r in rows}
    out = []
    for e in engine.log(type="response", period=period, ruleset=ruleset):
        ev = e["event"]
        if ev.get("subject") not in visible:
            continue
        for item, reason in sorted((ev.get("reasons") or {}).items()):
            out.append({"subject": ev["subject"], "subject_name": named.get(ev["subject"]), "item": item,
                        "answer": (ev.get("answers") or {}).get(item), "text": names.text(reason), "kind": "reason"})
        if ev.get("comment"):
            out.append({"subject": ev["subject"], "subject_name": named.get(ev["subject"]), "item": None,
                        "answer": None, "text": names.text(ev["comment"]), "kind": "comment"})
    return out
