"""Score rows as people read them: subjects by name, a part of the org chart, one period against
another. Pure functions over the rows :meth:`csat.engine.Engine.scores` returns and the org chart
(``rm_units``); nothing here is stored."""
from __future__ import annotations

from typing import Any

from .. import periods
from ..scoring.numbers import sub
from .readmodel import Org


class Rows(list):  # type: ignore[type-arg]
    """Score rows (a list), with what the read models they come from did not reflect yet:
    ``unscored`` = (events logged but not yet applied, subject-months not yet rescored) because
    another process held the write lock; ``(0, 0)`` when they were current."""

    unscored: tuple[int, int] = (0, 0)


def last_month(period: str) -> str:
    """The month a period's org chart is read at: the period's last month."""
    return periods.months_of(period)[-1]


#: the keys :func:`csat.engine.app.announce.beside` adds where an announced figure moved since; every
#: score row carries them (None where nothing moved, or nothing was announced)
ANNOUNCED = ("announced", "announced_delta", "announced_on", "announced_events")


def complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score rows as :meth:`csat.engine.Engine.scores` returns them: each with ``kind`` (``month``,
    ``quarter`` or ``year``) after ``period``, and every key of :data:`ANNOUNCED` (None where the row
    has none), so that every row has the same keys whatever was announced."""
    kinds: dict[str, str] = {}
    out = []
    for r in rows:
        row: dict[str, Any] = {}
        for k, v in r.items():
            row[k] = v
            if k == "period":
                p = r["period"]
                row["kind"] = kinds.get(p) or kinds.setdefault(p, periods.kind(p))
        for k in ANNOUNCED:
            row.setdefault(k, None)
        out.append(row)
    return out


def with_names(rows: list[dict[str, Any]], org: Org) -> list[dict[str, Any]]:
    """Each row with ``subject_name`` (after ``subject``): the subject's name as of the period."""
    out = []
    for r in rows:
        named: dict[str, Any] = {}
        for k, v in r.items():
            named[k] = v
            if k == "subject":
                named["subject_name"] = org.name(v, last_month(r["period"]))
        out.append(named)
    return out


def under(rows: list[dict[str, Any]], org: Org, unit: str) -> list[dict[str, Any]]:
    """The rows of ``unit`` itself and of every unit below it in the org chart, as of each row's
    period (a unit that moved counts where it was then)."""
    return [r for r in rows if r["subject"] == unit or unit in org.chain(r["subject"], last_month(r["period"]))]


def versus(rows: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with ``before`` (the same rule set, subject and metric in the earlier period) and
    ``delta`` (score − before; None when either is missing)."""
    before = {(r["ruleset"], r["subject"], r["metric"]): r["score"] for r in earlier}
    out = []
    for r in rows:
        b = before.get((r["ruleset"], r["subject"], r["metric"]))
        out.append({**r, "before": b,
                    "delta": sub(r["score"], b) if b is not None and r["score"] is not None else None})
    return out


def whatif_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many figures and grades a what-if moves, and the largest move."""
    moved = [r for r in rows if r["before"] != r["after"]]
    largest = max((r for r in moved if r["delta"] is not None), key=lambda r: abs(r["delta"]), default=None)
    return {"figures_moved": len(moved), "grades_moved": sum(r["grade_before"] != r["grade_after"] for r in rows),
            "largest_delta": None if largest is None else {k: largest[k] for k in ("period", "subject", "metric",
                                                                                    "before", "after", "delta")}}
