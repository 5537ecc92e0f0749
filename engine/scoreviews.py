"""Score rows as people read them: subjects by name, a part of the org chart, one period against
another. Pure functions over the rows :meth:`csat.engine.Engine.scores` returns and the org chart
(``rm_units``); nothing here is stored."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import periods
from .numbers import sub
from .readmodel import Org


def last_month(period: str) -> str:
    """The month a period's org chart is read at: the period's last month."""
    return periods.months_of(period)[-1]


class Names:
    """Unit names as of a month: the name given by the latest ``unit`` event in force then (a
    renamed department shows its old name in the months before the rename), else the first name
    it was ever given (a subject scored before its unit was declared)."""

    def __init__(self, rows: Iterable[tuple[str, str, str | None]]):
        self._names: dict[str, list[tuple[str, str]]] = {}
        for unit, from_, name in rows:
            if name:
                self._names.setdefault(unit, []).append((from_ or "", name))
        for lst in self._names.values():
            lst.sort(key=lambda x: x[0])

    @classmethod
    def load(cls, conn: Any) -> "Names":
        return cls(conn.execute("SELECT id, from_, name FROM rm_units WHERE name IS NOT NULL ORDER BY position"))

    def at(self, unit: str, month: str) -> str | None:
        lst = self._names.get(unit)
        if not lst:
            return None
        found = lst[0][1]
        for from_, name in lst:
            if from_ <= month:
                found = name
            else:
                break
        return found


def with_names(rows: list[dict[str, Any]], names: Names) -> list[dict[str, Any]]:
    """Each row with ``subject_name`` (after ``subject``): the subject's name as of the period."""
    out = []
    for r in rows:
        named: dict[str, Any] = {}
        for k, v in r.items():
            named[k] = v
            if k == "subject":
                named["subject_name"] = names.at(v, last_month(r["period"]))
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
