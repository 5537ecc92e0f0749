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

from . import periods
from .guard import checked_item_points, checked_labels, guarded
from .numbers import div, mul, publish, total
from .ruleset import RuleSet

HUNDRED = Decimal(100)


def item_rows(projection: Any, rs: RuleSet, period: str, subjects: Iterable[str]) -> list[dict[str, Any]]:
    """The items of ``rs`` over ``period`` for ``subjects``, lowest attainment first: ``ruleset``,
    ``period``, ``item``, ``label``, ``attainment``, ``points``, ``possible``, ``responses`` (how many
    answered the item) and ``response_ids`` (which, in log order)."""
    adoptions, org = projection.state()
    wanted = sorted(set(subjects))
    seen: set[str] = set()
    pooled: dict[str, tuple[list, list, list]] = {}  # item -> (points, possible, response ids)
    labels: dict[str, str] = {}
    for month in periods.months_of(period):
        inputs = projection.month_inputs(rs, month, wanted, adoptions, org) if wanted else {}
        for subject in wanted:
            inp = inputs.get(subject)
            if inp is None:
                continue
            where = f"ranking the items of {subject} {month}"
            labels.update(checked_labels(rs, where, guarded(rs, where, rs.item_labels, inp.params)))
            for counted in inp.counted:
                r = counted.response
                if r.id in seen:
                    continue
                seen.add(r.id)
                points = checked_item_points(rs, where, guarded(rs, where, rs.item_points, r, inp.params))
                for item, ip in points.items():
                    acc = pooled.setdefault(item, ([], [], []))
                    acc[0].append(ip.points)
                    acc[1].append(ip.possible)
                    acc[2].append(r.id)
    rows = []
    for item, (points, possible, ids) in pooled.items():
        p, most = total(points), total(possible)  # exact sums: the same whatever the order
        rows.append({"ruleset": rs.id, "period": period, "item": item, "label": labels.get(item),
                     "attainment": publish(div(mul(HUNDRED, p), most), 2), "points": p, "possible": most,
                     "responses": len(ids), "response_ids": ids})
    rows.sort(key=lambda r: (r["attainment"], r["item"]))
    return rows
