"""A rule set described for people and programs (``csat rulesets NAME``): who provides it, the
parameters in force in a month, its questionnaire — items, labels, accepted answers, N/A and
reasons — as plain data."""
from __future__ import annotations

from typing import Any

from ..scoring.guard import checked_labels, guarded
from ..errors import RuleSetFailed
from ..scoring.params import canonical
from ..scoring.ruleset import Adoption, Questionnaire, RuleSet


def questionnaire_data(q: Questionnaire | None) -> dict[str, Any] | None:
    """A questionnaire as plain data: ``items`` (each with ``id``, ``label``, ``kind``,
    ``choices`` of ``{value, label}``, ``minimum``/``maximum``/``whole`` for numbers, ``na``,
    ``reason_for``, ``form``), ``forms`` and ``rater_required``."""
    if q is None:
        return None
    items = []
    for item in q.items:
        row: dict[str, Any] = {"id": item.id, "label": item.label, "kind": item.kind}
        if item.choices:
            row["choices"] = [{"value": c.value, "label": c.label} for c in item.choices]
        for key in ("minimum", "maximum"):
            if getattr(item, key) is not None:
                row[key] = getattr(item, key)
        if item.kind == "number":
            row["whole"] = item.whole
        row["na"] = item.na
        row["reason_for"] = list(item.reason_for)
        if item.form is not None:
            row["form"] = item.form
        items.append(row)
    return {"items": items, "forms": list(q.forms), "rater_required": q.rater_required}


def checked_questionnaire(rs: RuleSet, params: Any) -> Questionnaire | None:
    """``rs.questionnaire(params)``, plugin code guarded and its result checked at the boundary."""
    q = guarded(rs, "giving its questionnaire", rs.questionnaire, params)
    if q is not None and not isinstance(q, Questionnaire):
        raise RuleSetFailed(rs.id, "giving its questionnaire", f"expected a Questionnaire or None, got "
                            f"{type(q).__name__}")
    return q


def describe(rs: RuleSet, adoption: Adoption | None, source: str = "given", month: str | None = None) -> dict[str, Any]:
    """``rs`` with the parameters of ``adoption`` (None: its shipped defaults) as of ``month``."""
    if adoption is not None:
        params, data = adoption.params, adoption.data or {}
        adopted: dict[str, Any] | None = {"id": adoption.id, "from": adoption.from_, "position": adoption.position,
                                          "params_hash": adoption.hash, "upgraded_from": adoption.upgraded_from}
    else:
        data = guarded(rs, "completing its shipped parameters", rs.complete_params, {}, rs.defaults_path)
        params, adopted = rs.decode_params(data), None
    return {"id": rs.id, "version": rs.version, "title": rs.title, "source": source, "month": month,
            "metrics": list(guarded(rs, "declaring its metrics", rs.declared_metrics, params)),
            "adoption": adopted, "parameters": canonical(data) if data else data,
            "questionnaire": questionnaire_data(checked_questionnaire(rs, params)),
            "item_labels": checked_labels(rs, "reading item labels",
                                          guarded(rs, "reading item labels", rs.item_labels, params))}
