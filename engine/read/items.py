"""The weakest items: each questionnaire item pooled over a period's counted responses.

A rule set says what one answer is worth on its item's own scale
(:meth:`~csat.engine.ruleset.RuleSet.item_points`); here the answers of every
response that counts for the chosen subjects in the period are pooled, each
response once however many subjects it is credited to (a callback counts for
its consultant, team and dealer alike)::

    attainment = 100 × Σ points / Σ possible      (rounded half-up to 2 places)

The attainment ranks items — lowest first — for ``csat items`` and the report;
it is never a published score, and nothing here is stored.
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .. import periods
from ..scoring.guard import checked_item_points, checked_labels, guarded
from ..scoring.numbers import div, mul, publish, total
from ..scoring.ruleset import ItemPoints, RuleSet

HUNDRED = Decimal(100)


def item_rows(projection: Any, rs: RuleSet, period: str, subjects: Iterable[str]) -> list[dict[str, Any]]:
    """The items of ``rs`` over ``period`` for ``subjects``, lowest attainment first: ``ruleset``,
    ``period``, ``item``, ``label``, ``attainment``, ``points``, ``possible``, ``responses`` (how many
    answered the item) and ``response_ids`` (which, in log order)."""
    adoptions, org = projection.state()
    wanted = sorted(set(subjects))
    seen: set[str] = set()
    answers: dict[str, list[tuple[int, str, ItemPoints]]] = {}  # item -> (position, response id, points)
    labels: dict[str, str] = {}
    for month in periods.months_of(period):
        adoption = adoptions.in_force(rs.id, month)
        if adoption is None or not wanted:
            continue
        where = f"ranking the items of {period} ({month})"
        labels.update(checked_labels(rs, where, guarded(rs, where, rs.item_labels, adoption.params)))
        for subject, inp in projection.scorer.month_inputs(rs, month, wanted, adoptions, org).items():
            for counted in inp.counted:
                r = counted.response
                if r.id in seen:
                    continue
                seen.add(r.id)
                where = f"ranking the items of {subject} {month}"
                points = checked_item_points(rs, where, guarded(rs, where, rs.item_points, r, adoption.params))
                for item, ip in points.items():
                    answers.setdefault(item, []).append((r.position, r.id, ip))
    rows = []
    for item, given in answers.items():
        given.sort(key=lambda a: a[0])
        p, most = total(a[2].points for a in given), total(a[2].possible for a in given)  # exact: any order
        rows.append({"ruleset": rs.id, "period": period, "item": item, "label": labels.get(item),
                     "attainment": publish(div(mul(HUNDRED, p), most), 2), "points": p, "possible": most,
                     "responses": len(given), "response_ids": [a[1] for a in given]})
    rows.sort(key=lambda r: (r["attainment"], r["item"]))
    return rows
